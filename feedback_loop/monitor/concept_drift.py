"""Concept drift: a streaming detector run over a window's errors in time order."""

from __future__ import annotations

from typing import Any

import numpy as np

from feedback_loop.collect.handle import ModelHandle
from feedback_loop.collect.recording import ModelState
from feedback_loop.core.timeutil import Window, from_us
from feedback_loop.errors import ValidationError
from feedback_loop.monitor.window import read_window
from feedback_loop.stats.drift.detectors import (
    ADWIN,
    DDM,
    EDDM,
    HDDM_A,
    DriftDetector,
    PageHinkley,
    run,
)
from feedback_loop.store.features import WindowFeatures

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


def detect(
    handle: ModelHandle,
    window: Window = "30d",
    detector: str = "adwin",
    *,
    record: bool = True,
    actor: str = "feedback-loop",
) -> dict[str, Any]:
    """The detector's change points over ``window``; a ``concept_drift`` event when it found
    one (unless ``record=False``)."""
    result = concept_drift(handle.read_state(), read_window(handle, window), detector)
    if record and result["change_points"]:
        handle.write_event(
            "concept_drift",
            reason=f"{detector} found {len(result['change_points'])} change(s) in the error "
            f"rate over {window}",
            evidence=result,
            actor=actor,
        )
    return result
