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

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> Dataset:
        """The rows at ``index``: features, labels, weights and tags alike."""
        weight = None if self.sample_weight is None else self.sample_weight[index]
        tags = None if self.tags is None else self.tags.iloc[index].reset_index(drop=True)
        return Dataset(
            self.X.iloc[index].reset_index(drop=True), self.y[index], self.ts[index], weight, tags
        )

    def split(self, holdout: float) -> tuple[Dataset, Dataset]:
        """The oldest rows for training, the most recent ``holdout`` share for testing."""
        if not 0.0 < holdout < 1.0:
            raise ValidationError("must be between 0 and 1", field="holdout")
        cut = round(len(self) * (1.0 - holdout))
        order = np.arange(len(self))
        return self.take(order[:cut]), self.take(order[cut:])


@dataclass(frozen=True)
class DatasetSpec:
    """How to assemble a training set.

    ``sliding_window``: the last ``window`` of time and/or the last ``max_rows`` rows;
    ``all``: all labeled history; ``recency_weighted``: all history, each row weighted
    ``0.5 ** (age / half_life)`` so that recent behaviour dominates without forgetting.
    """

    strategy: Strategy = "sliding_window"
    window: timedelta | None = timedelta(days=30)
    max_rows: int | None = None
    half_life: timedelta = timedelta(days=14)
    holdout: float = 0.2
    min_rows: int = 100


def assemble(
    features: pd.DataFrame,
    y: np.ndarray,
    ts: np.ndarray,
    spec: DatasetSpec,
    now_us: int,
    tags: pd.DataFrame | None = None,
) -> Dataset:
    """Apply the strategy to labeled rows (already restricted to labeled predictions); ``tags``
    row for row with ``features``."""
    order = np.argsort(ts, kind="stable")
    data = Dataset(features.reset_index(drop=True), y, ts, tags=tags).take(order)
    if spec.strategy == "sliding_window":
        keep = np.ones(len(data), dtype=bool)
        if spec.window is not None:
            keep &= data.ts >= now_us - int(spec.window.total_seconds() * 1e6)
        data = data.take(np.flatnonzero(keep))
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
