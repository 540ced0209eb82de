"""Data drift: every feature, the prediction and the label of a window against the
reference's profiles.

The default verdict, PSI, Jensen–Shannon, chi-square and L∞ need only the window's counts on
the reference's cells, so a check reduces the window to counts first
(:mod:`feedback_loop.collect.drift_counts`) and compares counts. Over whole hours those counts
come from the hourly drift summaries instead of the rows (``monitor.window.summarised_window``);
the two give the same counts, hence the same report. Segments and the methods that need the
values themselves (``ks``, ``cramer_von_mises``, ``wasserstein``) read the rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from feedback_loop.collect.drift_counts import CATEGORICAL, NUMERIC, ColumnCells
from feedback_loop.collect.handle import ModelHandle
from feedback_loop.collect.recording import ModelState
from feedback_loop.core.timeutil import Window, from_us
from feedback_loop.errors import ValidationError
from feedback_loop.monitor.drift_report import DriftReport
from feedback_loop.monitor.references import stored_reference
from feedback_loop.monitor.window import (
    WindowCounts,
    count_window,
    keys_of_codes,
    summarised_window,
    window_features,
    window_filter,
)
from feedback_loop.stats.drift import compare, dataset_drift, profile_from_dict
from feedback_loop.stats.drift.categorical import CategoryCounts, compare_counts
from feedback_loop.stats.drift.profile import (
    ALL_THRESHOLDS,
    CALIBRATED,
    CATEGORICAL_METHODS,
    NUMERIC_METHODS,
    CategoricalProfile,
    NumericProfile,
    Profile,
    calibrated_counts,
    default_alpha,
)
from feedback_loop.stats.drift.result import DriftResult
from feedback_loop.stats.reference import LABEL, PREDICTION, categorical_values
from feedback_loop.store.features import WindowFeatures
from feedback_loop.store.reader import WindowFilter
from feedback_loop.store.summaries import Summary

RAW_METHODS = ("ks", "cramer_von_mises", "wasserstein")
"""Methods that test the values themselves, not counts on the reference's cells."""


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
    """Every profiled column of the window's rows against the reference, and the dataset
    verdict: on the window's counts (:func:`check_counts`), unless a chosen method tests the
    values themselves or some values cannot be counted alike in every window."""
    if not reads_values(methods):
        counts = count_window(state, reference["data"], data)
        if not counts.summary.unstable:
            return check_counts(
                state,
                reference,
                counts,
                window,
                methods=methods,
                share_threshold=share_threshold,
                correction=correction,
            )
    return _check_values(
        state,
        reference,
        data,
        window,
        methods=methods,
        share_threshold=share_threshold,
        correction=correction,
    )


def reads_values(methods: dict[str, str] | None) -> bool:
    """Whether a chosen method needs the window's values rather than its counts."""
    return any(method in RAW_METHODS for method in (methods or {}).values())


def check_counts(
    state: ModelState,
    reference: dict[str, Any],
    counts: WindowCounts,
    window: WindowFilter,
    *,
    methods: dict[str, str] | None,
    share_threshold: float,
    correction: str,
) -> DriftReport:
    """:func:`check_drift` on a window's counts (rows or merged hourly summaries alike)."""
    stored = reference["data"]
    summary = counts.summary
    columns: dict[str, DriftResult] = {}
    missing: list[str] = []
    chosen = methods or {}
    present = [cells for cells in counts.layout.features if cells.not_null(summary) > 0]
    model_columns = [
        (cells, part)
        for cells, part in (
            (counts.layout.prediction, summary),
            counts.label or (None, summary),
        )
        if cells is not None and cells.name in stored and cells.not_null(part) > 0
    ]
    split = len(present) + len(model_columns) if correction == "none" else 1
    names = {cells.name for cells in present}
    for name, profile_dict in stored["features"].items():
        if name not in names:
            missing.append(name)
            continue
        cells = next(c for c in present if c.name == name)
        profile = profile_from_dict(profile_dict)
        current = _current(state, cells, summary)
        columns[name] = _compare_counted(profile, current, name, chosen.get(name), split)
    features_only = dict(columns)
    for cells, part in model_columns:
        profile = profile_from_dict(stored[cells.name])
        current = _current(state, cells, part)
        columns[cells.name] = _compare_counted(
            profile, current, cells.name, chosen.get(cells.name), split
        )
    return _report(
        state,
        reference,
        window,
        columns,
        features_only,
        missing,
        summary.n_rows,
        share_threshold=share_threshold,
        correction=correction,
    )


Counted = tuple[np.ndarray, int] | CategoryCounts


class _Other:
    """The label of the pooled unprofiled categories of a truncated profile."""

    def __repr__(self) -> str:
        return "<other>"


_OTHER = _Other()


def _current(state: ModelState, cells: ColumnCells, summary: Summary) -> Counted:
    """A column's counts as the comparison takes them: numeric cells with the missing count,
    or category counts (profiled categories, then unseen ones in sorted order)."""
    if cells.kind == NUMERIC:
        return np.asarray(cells.cells(summary), dtype=np.int64), cells.missing(summary)
    extras = summary.extras.get(cells.name, {})
    if cells.kind == CATEGORICAL:
        assert cells.index is not None
        fixed = cells.cells(summary).tolist()
        labels: list[Any] = list(cells.index)
        tally: list[int] = fixed[: len(labels)]
        if cells.truncated:
            labels.append(_OTHER)
            tally.append(fixed[-1])
        for label in sorted(extras):
            labels.append(label)
            tally.append(extras[label])
        return CategoryCounts(tuple(labels), tuple(tally), cells.missing(summary))
    # class codes: labels as the model stores them; a code without one is missing
    lookup = {code: key for key, code in state.codes.items()}
    by_key: dict[str, int] = {}
    unknown = 0
    for code, count in extras.items():
        key = lookup.get(int(code))
        if key is None:
            unknown += count
        else:
            by_key[key] = by_key.get(key, 0) + count
    ordered = sorted(by_key)
    return CategoryCounts(tuple(ordered), tuple(by_key[k] for k in ordered), unknown)


def _compare_counted(
    profile: Profile, current: Counted, name: str, method: str | None, split: int
) -> DriftResult:
    """:func:`_compare` on counts."""
    if method is None:
        return _from_counts(profile, current, CALIBRATED, default_alpha(CALIBRATED, split))
    suited = NUMERIC_METHODS if profile.kind == "numeric" else CATEGORICAL_METHODS
    if method not in suited:
        raise ValidationError(
            f"column {name!r} is {profile.kind}: use one of {', '.join(suited)}", field="method"
        )
    try:
        return _from_counts(profile, current, method, default_alpha(method, split))
    except ValueError as exc:
        raise ValidationError(
            f"{method!r} cannot test column {name!r}: {exc}", field="method"
        ) from exc


def _from_counts(profile: Profile, current: Counted, method: str, alpha: float) -> DriftResult:
    """What ``compare`` answers on the values, from their counts on the profile's cells."""
    cut = ALL_THRESHOLDS.get(method, 0.0)
    if isinstance(profile, NumericProfile):
        assert isinstance(current, tuple)
        cells, missing = current
        if not cells.sum():
            raise ValueError("current has no finite values")
        if method == CALIBRATED:
            return calibrated_counts(
                profile, profile.bin_counts, cells, alpha, profile.missing, missing
            )
        return compare_counts(
            method,
            profile.bin_counts,
            cells,
            threshold=cut,
            missing_reference=profile.missing,
            missing_current=missing,
        )
    assert isinstance(profile, CategoricalProfile) and isinstance(current, CategoryCounts)
    if current.total == 0:
        raise ValueError("current has no non-missing values")
    ref, cur = profile.align(current)
    if method == CALIBRATED:
        return calibrated_counts(profile, ref, cur, alpha, profile.missing, current.missing)
    return compare_counts(
        method,
        ref,
        cur,
        alpha=alpha,
        threshold=cut,
        missing_reference=profile.missing,
        missing_current=current.missing,
    )


def _report(
    state: ModelState,
    reference: dict[str, Any],
    window: WindowFilter,
    columns: dict[str, DriftResult],
    features_only: dict[str, DriftResult],
    missing: list[str],
    n_current: int,
    *,
    share_threshold: float,
    correction: str,
) -> DriftReport:
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
        n_current=n_current,
        columns=columns,
        dataset=verdict,
        missing=missing,
    )


def _check_values(
    state: ModelState,
    reference: dict[str, Any],
    data: WindowFeatures,
    window: WindowFilter,
    *,
    methods: dict[str, str] | None,
    share_threshold: float,
    correction: str,
) -> DriftReport:
    """The check on the window's values: every profiled column against the reference, and the
    dataset verdict.

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
    return _report(
        state,
        reference,
        window,
        columns,
        features_only,
        missing,
        len(data.features),
        share_threshold=share_threshold,
        correction=correction,
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
    counts = (
        None if reads_values(methods) else summarised_window(handle, state, stored["data"], flt)
    )
    if counts is not None and not counts.summary.unstable:
        report = check_counts(
            state,
            stored,
            counts,
            flt,
            methods=methods,
            share_threshold=share_threshold,
            correction=correction,
        )
    else:
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
