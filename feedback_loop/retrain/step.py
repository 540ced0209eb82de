"""The retrain step's data: the labeled rows of the log, as the trainer sees them."""

from __future__ import annotations

import json

import numpy as np

from feedback_loop.collect.handle import ModelHandle
from feedback_loop.monitor.window import window_features
from feedback_loop.retrain.dataset import Dataset, DatasetSpec, assemble
from feedback_loop.store.reader import WindowFilter


def labeled_dataset(handle: ModelHandle, spec: DatasetSpec) -> tuple[Dataset, list[str]]:
    """Labeled predictions with the features logged at prediction time (and their tags, for
    the gate's segment checks: they follow every row selection and the holdout split)."""
    state = handle.read_state()
    regression = state.spec.task == "regression"
    now = handle.now_us()
    start = 0
    if spec.strategy == "sliding_window" and spec.window is not None:
        start = max(now - int(spec.window.total_seconds() * 1e6), 0)
    data = window_features(
        handle.engine, WindowFilter(state.id, start, now + 1), regression=regression
    )
    keep = data.labeled & (data.actual_code != -1)
    if regression:
        y = data.actual_value[keep]
    else:
        values = {code: key for key, code in state.codes.items()}
        y = np.array([json.loads(values[int(c)]) for c in data.actual_code[keep]], dtype=object)
        kinds = {type(v) for v in y}
        if len(kinds) == 1:  # one label type (a multiclass target too): sklearn needs a dtype
            y = y.astype(kinds.pop())
    features = data.features.loc[keep].reset_index(drop=True)
    tags = data.tags.loc[keep].reset_index(drop=True) if len(data.tags.columns) else None
    dataset = assemble(features, y, data.ts[keep], spec, now, tags=tags)
    return dataset, [str(c) for c in features.columns]
