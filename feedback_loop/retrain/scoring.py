"""Scoring a model on a held-out set: per-row outcomes that the gate's tests pair up."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from feedback_loop.core.tasks import label_key
from feedback_loop.stats.metrics import classification_metrics, regression_metrics

LATENCY_SAMPLE = 100


@dataclass
class Scored:
    """One model on one held-out set, row by row."""

    truth: np.ndarray  # the held-out labels as keys (classification) or values (regression)
    pred: np.ndarray  # label keys (classification) or values (regression)
    score: np.ndarray | None  # binary classifiers: P(positive class)
    errors: np.ndarray  # 1.0/0.0 wrong/right (classification) or absolute error (regression)
    metrics: dict[str, Any]
    latency_ms: np.ndarray  # single-row prediction latencies on a sample of rows


def _keys(values: Any) -> np.ndarray:
    return np.array(
        [label_key(v.item() if isinstance(v, np.generic) else v) for v in values], dtype=object
    )


def score_model(
    model: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    task: str,
    positive: Any,
    measure_latency: bool = False,
) -> Scored:
    """Predict ``X`` with ``model`` and compare with ``y`` (labels or values); single-row
    latencies are timed only when asked (a latency budget is configured)."""
    columns = getattr(model, "feature_names_in_", None)
    frame = X[list(columns)] if columns is not None else X
    predicted = np.asarray(model.predict(frame))
    latency = _latency(model, frame) if measure_latency else np.empty(0)
    if task == "regression":
        truth = y.astype(np.float64)
        values = predicted.astype(np.float64)
        return Scored(
            truth, values, None, np.abs(values - truth), regression_metrics(truth, values), latency
        )
    truth_keys, pred_keys = _keys(y), _keys(predicted)
    wrong = (truth_keys != pred_keys).astype(np.float64)
    score = None
    if task == "binary" and hasattr(model, "predict_proba"):
        classes = [label_key(c.item() if isinstance(c, np.generic) else c) for c in model.classes_]
        if label_key(positive) in classes:
            score = np.asarray(model.predict_proba(frame))[:, classes.index(label_key(positive))]
    if task == "binary":
        is_pos_true = (truth_keys == label_key(positive)).astype(np.int64)
        is_pos_pred = (pred_keys == label_key(positive)).astype(np.int64)
        metrics = classification_metrics(is_pos_true, is_pos_pred, 2, positive=1, score=score)
    else:
        codes = {k: i for i, k in enumerate(sorted(set(truth_keys) | set(pred_keys)))}
        metrics = classification_metrics(
            np.array([codes[k] for k in truth_keys]),
            np.array([codes[k] for k in pred_keys]),
            max(len(codes), 1),
        )
    return Scored(truth_keys, pred_keys, score, wrong, metrics, latency)


def _latency(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """Wall time of single-row predictions on up to ``LATENCY_SAMPLE`` rows, in ms."""
    n = min(len(frame), LATENCY_SAMPLE)
    out = np.empty(n)
    for i in range(n):
        row = frame.iloc[i : i + 1]
        start = time.perf_counter()
        model.predict(row)
        out[i] = (time.perf_counter() - start) * 1e3
    return out
