"""The retrain step's data: the labeled rows of the log, as the trainer sees them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from feedback_loop.collect.handle import ModelHandle
from feedback_loop.monitor.window import window_features
from feedback_loop.retrain.dataset import Dataset, DatasetSpec, assemble
from feedback_loop.store.reader import WindowFilter


def labeled_dataset(handle: ModelHandle, spec: DatasetSpec) -> tuple[Dataset, list[str]]:
    """Labeled predictions with the features logged at prediction time (and their tags, for
    the gate's segment checks: they follow every row selection and the holdout split).

    A sliding window reads its span of time; when that holds fewer than ``spec.min_rows``
    labeled rows (a few rows a day), the whole history is read and the window reaches back to
    ``min_rows`` rows instead of failing."""
    now = handle.now_us()
    start = 0
    if spec.strategy == "sliding_window" and spec.window is not None:
        start = max(now - int(spec.window.total_seconds() * 1e6), 0)
    model_id = handle.read_state().id
    rows = labeled_rows(handle, WindowFilter(model_id, start, now + 1))
    if start > 0 and len(rows[1]) < spec.min_rows:
        rows = labeled_rows(handle, WindowFilter(model_id, 0, now + 1))
    features, y, ts, tags, served = rows
    dataset = assemble(features, y, ts, spec, now, tags=tags, served_error=served)
    return dataset, [str(c) for c in features.columns]


def labeled_rows(
    handle: ModelHandle, flt: WindowFilter
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, pd.DataFrame | None, np.ndarray]:
    """The labeled rows of a window: logged features, labels (as the user gave them), event
    times (µs), tags, and the served prediction's error (1/0, or the absolute error; NaN
    where the prediction has no label or value to compare)."""
    state = handle.read_state()
    regression = state.spec.task == "regression"
    data = window_features(handle.engine, flt, regression=regression)
    keep = data.labeled & (data.actual_code != -1)
    if regression:
        y = data.actual_value[keep]
        served = np.abs(data.pred_value[keep] - data.actual_value[keep]).astype(np.float64)
    else:
        values = {code: key for key, code in state.codes.items()}
        y = np.array([json.loads(values[int(c)]) for c in data.actual_code[keep]], dtype=object)
        kinds = {type(v) for v in y}
        if len(kinds) == 1:  # one label type (a multiclass target too): sklearn needs a dtype
            y = y.astype(kinds.pop())
        pred = data.pred_code[keep]
        served = np.where(pred < 0, np.nan, (pred != data.actual_code[keep]).astype(np.float64))
    features = data.features.loc[keep].reset_index(drop=True)
    tags = data.tags.loc[keep].reset_index(drop=True) if len(data.tags.columns) else None
    return features, y, data.ts[keep], tags, served
