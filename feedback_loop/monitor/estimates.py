"""Label-free estimates: a binary classifier's expected quality from its scores alone,
calibrated on the reference."""

from __future__ import annotations

from typing import Any

import numpy as np

from feedback_loop.collect.handle import ModelHandle
from feedback_loop.collect.recording import ModelState
from feedback_loop.core.timeutil import Window
from feedback_loop.errors import ValidationError
from feedback_loop.monitor.metrics import LOWER_IS_BETTER, primary_metric
from feedback_loop.monitor.references import stored_reference
from feedback_loop.monitor.window import window_filter, window_scores
from feedback_loop.stats.estimation import ScoreCalibrator, estimate_binary


def estimate(
    state: ModelState, reference: dict[str, Any] | None, window_score: np.ndarray
) -> dict[str, Any]:
    """Label-free estimate of a binary classifier's quality over the window's predictions."""
    if state.spec.task != "binary":
        raise ValidationError(
            "label-free estimation needs a binary classifier with scores", field="task"
        )
    if window_score.size == 0:
        raise ValidationError("the window holds no predictions", field="window")
    scores = window_score[np.isfinite(window_score)]
    if scores.size == 0:
        raise ValidationError("no prediction in the window logged a score", field="prediction")
    calibrator = None
    if reference is not None and "calibrator" in reference["data"]:
        calibrator = ScoreCalibrator.from_dict(reference["data"]["calibrator"])
    result: dict[str, Any] = dict(estimate_binary(scores, calibrator=calibrator))
    result["calibrated"] = calibrator is not None
    return result


def estimate_window(
    handle: ModelHandle,
    window: Window = "7d",
    reference: str = "default",
    *,
    threshold: float | None = None,
    record: bool = True,
    actor: str = "feedback-loop",
) -> dict[str, Any]:
    """The estimate over ``window``; an ``estimate_breach`` event when the primary metric's
    estimate breaches ``threshold`` (unless ``record=False``)."""
    state = handle.read_state()
    try:
        stored: dict[str, Any] | None = stored_reference(handle, reference, None)
    except ValidationError:
        stored = None
    result = estimate(state, stored, window_scores(handle.engine, window_filter(handle, window)))
    metric = primary_metric(handle)
    value = result.get(metric)
    if record and threshold is not None and value is not None:
        breached = value > threshold if metric in LOWER_IS_BETTER else value < threshold
        if breached:
            handle.write_event(
                "estimate_breach",
                reason=f"estimated {metric} {value:.4g} breaches {threshold}",
                evidence={"window": str(window), **result},
                actor=actor,
            )
    return result
