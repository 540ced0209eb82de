"""Windowed quality metrics read from the prediction log."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import Engine

from feedback_loop.collect.handle import ModelHandle
from feedback_loop.core.limits import NUL_MESSAGE
from feedback_loop.core.tasks import TaskSpec, label_key
from feedback_loop.core.timeutil import Window, from_us, resolve_window
from feedback_loop.errors import ValidationError
from feedback_loop.stats.metrics import (
    classification_metrics,
    delay_percentiles,
    regression_metrics,
)
from feedback_loop.store.blocks import read_window
from feedback_loop.store.reader import WindowFilter, read_proba

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "brier")
REGRESSION_METRICS = ("mae", "rmse", "mape", "r2")
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "mae", "rmse", "mape"})


def default_primary_metric(spec: TaskSpec) -> str:
    return "r2" if spec.task == "regression" else "accuracy"


def window_metrics(
    engine: Engine, model: str, spec: TaskSpec, codes: dict[str, int], window: WindowFilter
) -> dict[str, Any]:
    """The metrics dict of ``get_metrics``: counts, label delay and quality metrics."""
    regression = spec.task == "regression"
    total, rows = read_window(engine, window, regression=regression)
    out: dict[str, Any] = {
        "model": model,
        "task": spec.task,
        "window_start": from_us(max(window.start_us, 0)).isoformat(),
        "window_end": from_us(window.end_us).isoformat(),
        "version": window.version,
        "segment": window.segment,
        "predictions": total,
        "labeled": len(rows),
        "label_coverage": len(rows) / total if total else None,
    }
    out.update(delay_percentiles(np.maximum(rows.delay_us, 0) / 1e6))
    if regression:
        out.update(regression_metrics(rows.b, rows.a))
        return out
    out.update(classification_from_codes(spec, codes, rows.b, rows.a, rows.score))
    if spec.task == "multiclass" and len(rows):
        out.update(_multiclass_probability_metrics(engine, window, codes))
    return out


def _multiclass_probability_metrics(
    engine: Engine, window: WindowFilter, codes: dict[str, int]
) -> dict[str, Any]:
    """ROC AUC, log loss and Brier of the rows that logged class probabilities."""
    n_classes = max(codes.values(), default=-1) + 1
    with engine.connect() as conn, conn.begin():
        actual, proba = read_proba(conn, window, n_classes)
    known = actual >= 0  # thumbs-down feedback names no true class
    if not known.any():
        return {}
    scored = classification_metrics(
        actual[known], proba[known].argmax(axis=1), n_classes, proba=proba[known]
    )
    return {k: scored[k] for k in ("roc_auc", "log_loss", "brier")}


def classification_from_codes(
    spec: TaskSpec,
    codes: dict[str, int],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    score: np.ndarray,
) -> dict[str, Any]:
    """Classification metrics from stored label codes (-1: thumbs-down, "some other class")."""
    if spec.task == "binary":
        positive_code = codes.get(label_key(spec.positive))
        pred_pos = y_pred == positive_code
        # thumbs-down (-1) on a binary prediction means the other class
        true_pos = np.where(y_true == -1, ~pred_pos, y_true == positive_code)
        return classification_metrics(
            true_pos.astype(np.int64),
            pred_pos.astype(np.int64),
            2,
            positive=1,
            score=score,
        )
    n_classes = max(codes.values(), default=-1) + 1
    if (y_true == -1).any():
        y_true = np.where(y_true == -1, n_classes, y_true)
        n_classes += 1
    return classification_metrics(y_true, y_pred, max(n_classes, 1), positive=None)


def primary_metric(handle: ModelHandle) -> str:
    """The metric the loop watches: the declared one, else the task's default."""
    spec = handle.read_state().spec
    return spec.primary_metric or default_primary_metric(spec)


def metrics_over(
    handle: ModelHandle,
    window: Window = "7d",
    version: str | int | None = None,
    segment: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Quality over a window of prediction times (see ``FeedbackLoop.get_metrics``)."""
    state = handle.read_state()
    start, end = resolve_window(window, handle.clock.now())
    if segment is not None and not isinstance(segment, dict):
        raise ValidationError("must be a dict of tag values", field="segment")
    if segment and any("\x00" in str(item) for pair in segment.items() for item in pair):
        raise ValidationError(NUL_MESSAGE, field="segment")
    if version is not None and not str(version).isprintable():
        raise ValidationError("must be printable text", field="version")
    flt = WindowFilter(
        model_id=state.id,
        start_us=start,
        end_us=end,
        version=None if version is None else str(version),
        segment=segment,
    )
    spec = state.spec if state.spec.task else TaskSpec(task="binary")
    return window_metrics(handle.engine, handle.name, spec, state.codes, flt)
