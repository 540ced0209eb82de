"""Training sets assembled from the prediction log.

Each row is a labeled prediction with the features logged *at prediction time*, so nothing
that was learned later leaks into a training row. Rows are kept in time order, and the most
recent slice is held out for testing, as production will see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import numpy as np
import pandas as pd

from feedback_loop.errors import ValidationError

Strategy = Literal["sliding_window", "all", "recency_weighted"]


@dataclass
class Dataset:
    """Features, labels and (optional) sample weights, in time order.

    ``tags`` (the tags logged with each prediction, row for row with ``X``) are for the gate's
    segment and fairness checks, not for training: trainers see ``X`` only.
    """

    X: pd.DataFrame
    y: np.ndarray
    ts: np.ndarray  # int64 µs
    sample_weight: np.ndarray | None = None
    tags: pd.DataFrame | None = None
    served_error: np.ndarray | None = None  # the served prediction's error, row for row

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> Dataset:
        """The rows at ``index``: features, labels, weights and tags alike."""
        weight = None if self.sample_weight is None else self.sample_weight[index]
        tags = None if self.tags is None else self.tags.iloc[index].reset_index(drop=True)
        served = None if self.served_error is None else self.served_error[index]
        return Dataset(
            self.X.iloc[index].reset_index(drop=True),
            self.y[index],
            self.ts[index],
            weight,
            tags,
            served,
        )

    def split(self, holdout: float, max_rows: int | None = None) -> tuple[Dataset, Dataset]:
        """The oldest rows for training, the most recent ``holdout`` share for testing (at
        most ``max_rows`` of them: at high volume a few days are plenty to judge a candidate,
        and a shorter holdout lets a candidate learn more of what changed)."""
        if not 0.0 < holdout < 1.0:
            raise ValidationError("must be between 0 and 1", field="holdout")
        size = round(len(self) * holdout)
        if max_rows is not None:
            size = min(size, max_rows)
        cut = len(self) - size
        order = np.arange(len(self))
        return self.take(order[:cut]), self.take(order[cut:])

    def newest(self, share: float) -> Dataset:
        """The newest ``share`` of the rows (all of them for 1.0)."""
        if share >= 1.0:
            return self
        keep = max(round(len(self) * share), 1)
        return self.take(np.arange(len(self) - keep, len(self)))


@dataclass(frozen=True)
class DatasetSpec:
    """How to assemble a training set.

    ``sliding_window``: the last ``window`` of time and/or the last ``max_rows`` rows;
    ``all``: all labeled history; ``recency_weighted``: all history, each row weighted
    ``0.5 ** (age / half_life)`` so that recent behaviour dominates without forgetting.

    Rows and time agree (the units of the window): a sliding window holds the last ``window``
    of time, but never fewer than ``min_rows`` rows when the log has them (at a few rows a day
    it reaches further back instead of failing) and never more than ``max_rows`` (at high
    volume the newest rows suffice and training stays bounded).

    The gate's holdout is the newest ``holdout`` share, at most ``holdout_max_rows`` rows.
    ``recent_shares`` are the training windows tried as candidates: each share of the newest
    training rows (1.0: all of them) that holds at least ``min_rows`` rows is fitted, so that
    after an abrupt change a model of only the newest rows can win; the gate then counts how
    many candidates were tried. ``refit``: the candidate that passes the gate is fitted again
    on its whole window, holdout included, before it is registered and promoted (the gate
    judged its twin fitted without the holdout; the refit learns the newest rows too).
    """

    strategy: Strategy = "sliding_window"
    window: timedelta | None = timedelta(days=28)
    max_rows: int | None = 50_000
    half_life: timedelta = timedelta(days=14)
    holdout: float = 0.25
    min_rows: int = 100
    holdout_max_rows: int | None = 1_000
    recent_shares: tuple[float, ...] = (1.0, 0.5, 0.25)
    refit: bool = True

    def __post_init__(self) -> None:
        shares = tuple(float(s) for s in self.recent_shares)
        if not shares or any(not 0.0 < s <= 1.0 for s in shares):
            raise ValidationError("must be shares in (0, 1]", field="recent_shares")
        object.__setattr__(self, "recent_shares", tuple(sorted(set(shares), reverse=True)))


def assemble(
    features: pd.DataFrame,
    y: np.ndarray,
    ts: np.ndarray,
    spec: DatasetSpec,
    now_us: int,
    tags: pd.DataFrame | None = None,
    served_error: np.ndarray | None = None,
) -> Dataset:
    """Apply the strategy to labeled rows (already restricted to labeled predictions); ``tags``
    and ``served_error`` row for row with ``features``."""
    order = np.argsort(ts, kind="stable")
    data = Dataset(
        features.reset_index(drop=True), y, ts, tags=tags, served_error=served_error
    ).take(order)
    if spec.strategy == "sliding_window":
        first = 0
        if spec.window is not None:
            start = now_us - int(spec.window.total_seconds() * 1e6)
            first = int(np.searchsorted(data.ts, start, side="left"))
            first = min(first, max(len(data) - spec.min_rows, 0))  # at least min_rows rows
        data = data.take(np.arange(first, len(data)))
        if spec.max_rows is not None and len(data) > spec.max_rows:
            data = data.take(np.arange(len(data) - spec.max_rows, len(data)))
    elif spec.strategy == "recency_weighted":
        age = (now_us - data.ts) / 1e6
        data.sample_weight = 0.5 ** (age / spec.half_life.total_seconds())
    elif spec.strategy != "all":
        raise ValidationError("must be sliding_window, all or recency_weighted", field="strategy")
    if len(data) < spec.min_rows:
        raise ValidationError(
            f"only {len(data)} labeled rows for training; need {spec.min_rows}", field="dataset"
        )
    return data
