"""Building a model's reference: what monitoring compares every window against.

A reference is a set of column profiles (features, the prediction and the label) and, for a
binary classifier with labeled reference rows, a score calibrator for label-free estimation.
It is built once and stored as JSON, so monitoring never re-reads reference rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from feedback_loop.stats.drift import build_profile
from feedback_loop.stats.estimation import ScoreCalibrator

PREDICTION = "__prediction__"
LABEL = "__label__"


def column_kind(values: pd.Series) -> str:
    """Numbers are numeric, everything else (strings, booleans, mixed) categorical."""
    kind = values.dtype.kind
    if kind in "iuf":
        return "numeric"
    return "categorical"


def categorical_values(values: pd.Series) -> np.ndarray:
    """Category values as strings (None stays missing), so 1 and '1' profile alike."""
    array = values.to_numpy(dtype=object)
    missing = pd.isna(values).to_numpy()
    out = np.array(
        [None if m else str(v) for v, m in zip(array, missing, strict=True)], dtype=object
    )
    return out


def profile_columns(frame: pd.DataFrame) -> dict[str, Any]:
    """One profile per column, as JSON-ready dicts."""
    profiles: dict[str, Any] = {}
    for name in frame.columns:
        column = frame[name]
        if column.isna().all():
            continue
        if column_kind(column) == "numeric":
            profiles[str(name)] = _profile(column.to_numpy(dtype=np.float64), numeric=True)
        else:
            profiles[str(name)] = _profile(categorical_values(column), numeric=False)
    return profiles


def _profile(values: np.ndarray, *, numeric: bool) -> dict[str, Any]:
    if numeric:
        return build_profile(values.astype(np.float64), "numeric").to_dict()
    return build_profile(values.astype(object), "categorical").to_dict()


def build_reference(
    features: pd.DataFrame,
    *,
    prediction: np.ndarray | None,
    prediction_kind: str,
    label: np.ndarray | None,
    calibration: tuple[np.ndarray, np.ndarray] | None,
) -> dict[str, Any]:
    """The stored form of a reference.

    ``prediction`` is the positive-class score (binary), the predicted value (regression) or the
    predicted label key (multiclass); ``label`` the actual label keys or values; ``calibration``
    the ``(scores, is_positive)`` pairs of labeled reference rows.
    """
    data: dict[str, Any] = {
        "features": profile_columns(features),
        "columns": list(map(str, features.columns)),
    }
    if prediction is not None and len(prediction):
        data[PREDICTION] = _profile(prediction, numeric=prediction_kind == "numeric")
    if label is not None and len(label):
        data[LABEL] = _profile(label, numeric=label.dtype.kind == "f")
    if calibration is not None:
        scores, positive = calibration
        keep = np.isfinite(scores)
        if keep.sum() >= 20 and 0 < positive[keep].sum() < keep.sum():
            calibrator = ScoreCalibrator.fit(scores[keep], positive[keep].astype(np.int64))
            data["calibrator"] = calibrator.to_dict()
    return data
