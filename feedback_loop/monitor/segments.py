"""Quality per slice of a window (by tags or features), worst first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from feedback_loop.collect.handle import ModelHandle
from feedback_loop.collect.recording import ModelState
from feedback_loop.core.timeutil import Window
from feedback_loop.errors import ValidationError
from feedback_loop.monitor.metrics import LOWER_IS_BETTER, classification_from_codes, primary_metric
from feedback_loop.monitor.window import read_window
from feedback_loop.stats.metrics import regression_metrics
from feedback_loop.stats.segments import segment_metrics
from feedback_loop.store.features import WindowFeatures


def segments(
    state: ModelState,
    data: WindowFeatures,
    by: list[str],
    *,
    metric: str,
    min_support: int,
) -> list[dict[str, Any]]:
    """Metrics per slice of tags or features, over the window's labeled predictions."""
    labeled = data.labeled
    keys = pd.DataFrame(index=pd.RangeIndex(int(labeled.sum())))
    for name in by:
        if name in data.tags:
            keys[name] = data.tags[name].to_numpy()[labeled]
        elif name in data.features:
            keys[name] = data.features[name].to_numpy()[labeled]
        else:
            raise ValidationError(
                f"{name!r} is neither a tag nor a feature of this window", field="by"
            )
    if state.spec.task == "regression":
        truth, guess = data.actual_value[labeled], data.pred_value[labeled]

        def score_regression(index: np.ndarray) -> dict[str, Any]:
            return regression_metrics(truth[index], guess[index])

        scorer = score_regression
    else:
        truth_codes, pred_codes = data.actual_code[labeled], data.pred_code[labeled]
        score = data.score[labeled]

        def score_classes(index: np.ndarray) -> dict[str, Any]:
            return classification_from_codes(
                state.spec, state.codes, truth_codes[index], pred_codes[index], score[index]
            )

        scorer = score_classes
    return segment_metrics(
        keys,
        scorer,
        metric=metric,
        lower_is_better=metric in LOWER_IS_BETTER,
        min_support=min_support,
    )


MAX_SEGMENTS = 10_000


def weakest_segments(
    handle: ModelHandle,
    window: Window = "7d",
    by: Sequence[str] = (),
    *,
    metric: str | None = None,
    min_support: int = 30,
    limit: int = 100,
    threshold: float | None = None,
    record: bool = True,
    actor: str = "feedback-loop",
) -> list[dict[str, Any]]:
    """At most ``limit`` slices, worst first; a ``weak_segments`` event when slices breach
    ``threshold`` (unless ``record=False``)."""
    if not by:
        raise ValidationError("name at least one tag or feature", field="by")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SEGMENTS:
        raise ValidationError("must be a whole number from 1 to 10000", field="limit")
    state = handle.read_state()
    chosen = metric or primary_metric(handle)
    rows = segments(
        state, read_window(handle, window), list(by), metric=chosen, min_support=min_support
    )
    if record and threshold is not None:
        lower = chosen in LOWER_IS_BETTER
        weak = [
            r
            for r in rows
            if r.get(chosen) is not None
            and ((r[chosen] > threshold) if lower else (r[chosen] < threshold))
        ]
        if weak:
            handle.write_event(
                "weak_segments",
                reason=f"{len(weak)} segment(s) breach {chosen} {threshold} over {window}",
                evidence={"metric": chosen, "segments": weak[:20]},
                actor=actor,
            )
    return rows[:limit]
