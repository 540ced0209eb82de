"""Data drift: every feature, the prediction and the label of a window against the
reference's profiles."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from feedback_loop.collect.handle import ModelHandle
from feedback_loop.collect.recording import ModelState
from feedback_loop.core.timeutil import Window, from_us
from feedback_loop.errors import ValidationError
from feedback_loop.monitor.drift_report import DriftReport
from feedback_loop.monitor.references import stored_reference
from feedback_loop.monitor.window import keys_of_codes, window_features, window_filter
from feedback_loop.stats.drift import compare, dataset_drift, profile_from_dict
from feedback_loop.stats.drift.profile import (
    CALIBRATED,
    CATEGORICAL_METHODS,
    NUMERIC_METHODS,
    default_alpha,
)
from feedback_loop.stats.drift.result import DriftResult
from feedback_loop.stats.reference import LABEL, PREDICTION, categorical_values
from feedback_loop.store.features import WindowFeatures
from feedback_loop.store.reader import WindowFilter


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
    """Every profiled column of the window against the reference, and the dataset verdict.

    Columns without a chosen method get the calibrated verdict; its family-wise 1% is split
    over all the columns checked here (features, prediction and label: any of them drifting
    records ``drift_detected``), unless a correction is asked for, which then does the split.
    """
    stored = reference["data"]
    columns: dict[str, DriftResult] = {}
    missing: list[str] = []
    chosen = methods or {}
    present = [
        name
        for name in stored["features"]
        if name in data.features and not data.features[name].isna().all()
    ]
    model_columns = {
        key: current
        for key, current in _model_columns(state, data).items()
        if key in stored and len(current)
    }
    split = len(present) + len(model_columns) if correction == "none" else 1
    for name, profile_dict in stored["features"].items():
        if name not in present:
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
        columns[name] = _compare(profile, values, name, chosen.get(name), split)
    features_only = dict(columns)
    for key, current in model_columns.items():
        profile = profile_from_dict(stored[key])
        columns[key] = _compare(profile, current, key, chosen.get(key), split)
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


def _compare(profile: Any, values: Any, name: str, method: str | None, split: int) -> DriftResult:
    """``compare``, with a method that does not suit the column reported as the user's error;
    the calibrated verdict's level is split over ``split`` columns."""
    if method is None:
        return compare(profile, values, None, alpha=default_alpha(CALIBRATED, split))
    suited = NUMERIC_METHODS if profile.kind == "numeric" else CATEGORICAL_METHODS
    if method not in suited:
        raise ValidationError(
            f"column {name!r} is {profile.kind}: use one of {', '.join(suited)}", field="method"
        )
    try:
        return compare(profile, values, method, alpha=default_alpha(method, split))
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
        return {PREDICTION: score, LABEL: keys_of_codes(state, data.actual_code[labeled])}
    return {
        PREDICTION: keys_of_codes(state, data.pred_code),
        LABEL: keys_of_codes(state, data.actual_code[labeled]),
    }


CORRECTIONS = ("none", "bonferroni", "benjamini_hochberg")


def check_window(
    handle: ModelHandle,
    window: Window = "7d",
    reference: str = "default",
    *,
    version: str | int | None = None,
    methods: dict[str, str] | None = None,
    share_threshold: float = 0.5,
    correction: str = "none",
    record: bool = True,
    actor: str = "feedback-loop",
) -> DriftReport:
    """The drift report of ``window``; a ``drift_detected`` event when a column drifted
    (unless ``record=False``)."""
    if correction not in CORRECTIONS:
        raise ValidationError("must be none, bonferroni or benjamini_hochberg", field="correction")
    state = handle.read_state()
    stored = stored_reference(handle, reference, version)
    flt = window_filter(handle, window, version)
    data = window_features(handle.engine, flt, regression=state.spec.task == "regression")
    report = check_drift(
        state,
        stored,
        data,
        flt,
        methods=methods,
        share_threshold=share_threshold,
        correction=correction,
    )
    if record and report.drifted_columns:
        drifted = {c: report.columns[c].to_dict() for c in report.drifted_columns}
        handle.write_event(
            "drift_detected",
            reason=f"{len(drifted)} column(s) drifted over {window}: "
            + ", ".join(report.drifted_columns[:10]),
            evidence={
                "window": [report.window_start, report.window_end],
                "dataset_drift": report.drifted,
                "columns": drifted,
            },
            actor=actor,
        )
    return report
