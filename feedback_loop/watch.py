"""Monitoring services over the log: references, drift checks, label-free estimates, segments.

Each function reads what it needs from storage and hands arrays to the pure computation in
``feedback_loop.drift``, ``feedback_loop.metrics`` and ``feedback_loop.segments``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from feedback_loop.drift import compare, dataset_drift, profile_from_dict
from feedback_loop.drift.detectors import ADWIN, DDM, EDDM, HDDM_A, DriftDetector, PageHinkley, run
from feedback_loop.drift.estimation import ScoreCalibrator, estimate_binary
from feedback_loop.drift.profile import CATEGORICAL_METHODS, NUMERIC_METHODS
from feedback_loop.drift.result import DriftResult
from feedback_loop.drift_report import DriftReport
from feedback_loop.errors import ValidationError
from feedback_loop.metrics import regression_metrics
from feedback_loop.monitoring import LOWER_IS_BETTER, classification_from_codes
from feedback_loop.recording import ModelState
from feedback_loop.reference import LABEL, PREDICTION, build_reference, categorical_values
from feedback_loop.segments import segment_metrics
from feedback_loop.store.features import WindowFeatures, read_features
from feedback_loop.store.reader import WindowFilter, read_rows
from feedback_loop.store.references import load_reference
from feedback_loop.tasks import label_key
from feedback_loop.timeutil import from_us


def _keys_of_codes(state: ModelState, codes: np.ndarray) -> np.ndarray:
    """Label codes back to their stored keys (``'"cat"'``, ``'1'``); -1 (thumbs down) is None."""
    lookup = {code: key for key, code in state.codes.items()}
    return np.array([lookup.get(int(c)) for c in codes], dtype=object)


def window_features(engine: Engine, window: WindowFilter, *, regression: bool) -> WindowFeatures:
    with engine.connect() as conn, conn.begin():
        return read_features(conn, window, regression=regression)


def reference_from_window(state: ModelState, data: WindowFeatures) -> dict[str, Any]:
    """A reference from logged predictions (a chosen serving window)."""
    task = state.spec.task
    labeled = data.labeled & (data.actual_code != -1)
    if task == "regression":
        prediction, kind = data.pred_value, "numeric"
        label: np.ndarray | None = data.actual_value[labeled]
    elif task == "binary":
        prediction, kind = data.score[np.isfinite(data.score)], "numeric"
        label = _keys_of_codes(state, data.actual_code[labeled])
    else:
        prediction, kind = _keys_of_codes(state, data.pred_code), "categorical"
        label = _keys_of_codes(state, data.actual_code[labeled])
    calibration = None
    if task == "binary":
        positive = state.codes.get(label_key(state.spec.positive))
        calibration = (data.score[labeled], data.actual_code[labeled] == positive)
    return build_reference(
        data.features,
        prediction=prediction,
        prediction_kind=kind,
        label=label,
        calibration=calibration,
    )


def reference_from_frame(
    state: ModelState,
    features: pd.DataFrame,
    predictions: Any,
    actuals: Any,
) -> dict[str, Any]:
    """A reference from training or validation data given by the user."""
    task = state.spec.task
    prediction = None if predictions is None else np.asarray(predictions)
    label = None if actuals is None else np.asarray(actuals)
    if prediction is not None and len(prediction) != len(features):
        raise ValidationError("must have one value per reference row", field="predictions")
    if label is not None and len(label) != len(features):
        raise ValidationError("must have one value per reference row", field="actuals")
    kind = "numeric" if task in ("binary", "regression") else "categorical"
    if prediction is not None and kind == "numeric":
        prediction = prediction.astype(np.float64)
    elif prediction is not None:
        prediction = np.array([label_key(v) for v in prediction.tolist()], dtype=object)
    calibration = None
    if label is not None and task != "regression":
        keys = np.array([label_key(v) for v in label.tolist()], dtype=object)
        if task == "binary" and prediction is not None:
            calibration = (prediction, keys == label_key(state.spec.positive))
        label = keys
    elif label is not None:
        label = label.astype(np.float64)
    return build_reference(
        features,
        prediction=prediction,
        prediction_kind=kind,
        label=label,
        calibration=calibration,
    )


def check_drift(
    state: ModelState,
    reference: dict[str, Any],
    data: WindowFeatures,
    window: WindowFilter,
    *,
    methods: dict[str, str] | None,
    share_threshold: float,
    correction: str,
) -> DriftReport:
    stored = reference["data"]
    columns: dict[str, DriftResult] = {}
    missing: list[str] = []
    chosen = methods or {}
    for name, profile_dict in stored["features"].items():
        if name not in data.features or data.features[name].isna().all():
            missing.append(name)
            continue
        profile = profile_from_dict(profile_dict)
        column = data.features[name]
        values: Any
        if profile_dict["kind"] == "numeric":
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        elif isinstance(column.dtype, pd.CategoricalDtype):
            values = column.array  # counted on its codes
        else:
            values = categorical_values(column)
        columns[name] = _compare(profile, values, name, chosen.get(name))
    features_only = dict(columns)
    for key, current in _model_columns(state, data).items():
        if key in stored and len(current):
            columns[key] = _compare(profile_from_dict(stored[key]), current, key, chosen.get(key))
    verdict = (
        dataset_drift(features_only, share_threshold=share_threshold, correction=correction)  # type: ignore[arg-type]
        if features_only
        else None
    )
    if verdict is not None:
        # the corrected verdicts replace the raw ones
        columns.update(verdict.features)
    return DriftReport(
        model=state.name,
        window_start=from_us(max(window.start_us, 0)).isoformat(),
        window_end=from_us(window.end_us).isoformat(),
        reference=(
            f"{reference['name']} (version {reference['version']}, {reference['n_rows']:,} rows)"
        ),
        n_current=len(data.features),
        columns=columns,
        dataset=verdict,
        missing=missing,
    )


def _compare(profile: Any, values: Any, name: str, method: str | None) -> DriftResult:
    """``compare``, with a method that does not suit the column reported as the user's error."""
    if method is None:
        return compare(profile, values, None)
    suited = NUMERIC_METHODS if profile.kind == "numeric" else CATEGORICAL_METHODS
    if method not in suited:
        raise ValidationError(
            f"column {name!r} is {profile.kind}: use one of {', '.join(suited)}", field="method"
        )
    try:
        return compare(profile, values, method)
    except ValueError as exc:
        raise ValidationError(
            f"{method!r} cannot test column {name!r}: {exc}", field="method"
        ) from exc


def _model_columns(state: ModelState, data: WindowFeatures) -> dict[str, np.ndarray]:
    labeled = data.labeled & (data.actual_code != -1)
    if state.spec.task == "regression":
        return {PREDICTION: data.pred_value, LABEL: data.actual_value[data.labeled]}
    if state.spec.task == "binary":
        score = data.score[np.isfinite(data.score)]
        return {PREDICTION: score, LABEL: _keys_of_codes(state, data.actual_code[labeled])}
    return {
        PREDICTION: _keys_of_codes(state, data.pred_code),
        LABEL: _keys_of_codes(state, data.actual_code[labeled]),
    }


def window_scores(engine: Engine, window: WindowFilter) -> np.ndarray:
    """The logged scores of a window (no features read)."""
    with engine.connect() as conn, conn.begin():
        return read_rows(conn, window, regression=False).score


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


DETECTORS: dict[str, type[DriftDetector]] = {
    "adwin": ADWIN,
    "ddm": DDM,
    "eddm": EDDM,
    "hddm_a": HDDM_A,
    "page_hinkley": PageHinkley,
}
BINARY_INPUT = frozenset({"ddm", "eddm"})


def concept_drift(state: ModelState, data: WindowFeatures, detector: str) -> dict[str, Any]:
    """Run a streaming detector over the window's error stream in prediction-time order.

    Classification feeds 1 for a wrong prediction and 0 for a right one; regression feeds the
    absolute error (ADWIN and Page–Hinkley only).
    """
    if detector not in DETECTORS:
        raise ValidationError(f"must be one of {', '.join(DETECTORS)}", field="detector")
    order = np.argsort(data.ts[data.labeled], kind="stable")
    ts = data.ts[data.labeled][order]
    if state.spec.task == "regression":
        if detector in BINARY_INPUT or detector == "hddm_a":
            raise ValidationError("regression errors need adwin or page_hinkley", field="detector")
        errors = np.abs(data.pred_value - data.actual_value)[data.labeled][order]
    else:
        truth = data.actual_code[data.labeled][order]
        errors = (truth != data.pred_code[data.labeled][order]).astype(np.float64)
    hits = run(DETECTORS[detector](), errors.tolist())
    last = hits[-1] if hits else None
    return {
        "detector": detector,
        "n": int(errors.size),
        "mean_error": float(errors.mean()) if errors.size else None,
        "change_points": [from_us(int(ts[i])).isoformat() for i in hits],
        "mean_error_before_last": float(errors[:last].mean()) if last else None,
        "mean_error_after_last": float(errors[last:].mean()) if last is not None else None,
    }


__all__ = [
    "check_drift",
    "estimate",
    "load_reference",
    "reference_from_frame",
    "reference_from_window",
    "segments",
    "window_features",
]
