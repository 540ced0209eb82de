"""References: what drift checks and label-free estimates compare a window against,
summarised once into profiles when set."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from feedback_loop.collect.batches import to_frame
from feedback_loop.collect.drift_counts import layout_of
from feedback_loop.collect.handle import ModelHandle
from feedback_loop.collect.recording import ModelState
from feedback_loop.core.tasks import label_key
from feedback_loop.core.timeutil import Window
from feedback_loop.errors import ValidationError
from feedback_loop.monitor.window import keys_of_codes, read_window
from feedback_loop.stats.reference import build_reference
from feedback_loop.store.engine import read_transaction, write_transaction
from feedback_loop.store.features import WindowFeatures
from feedback_loop.store.references import load_reference, save_reference
from feedback_loop.store.summaries import forget_layouts, stored_references


def reference_from_window(state: ModelState, data: WindowFeatures) -> dict[str, Any]:
    """A reference from logged predictions (a chosen serving window)."""
    task = state.spec.task
    labeled = data.labeled & (data.actual_code != -1)
    if task == "regression":
        prediction, kind = data.pred_value, "numeric"
        label: np.ndarray | None = data.actual_value[labeled]
    elif task == "binary":
        prediction, kind = data.score[np.isfinite(data.score)], "numeric"
        label = keys_of_codes(state, data.actual_code[labeled])
    else:
        prediction, kind = keys_of_codes(state, data.pred_code), "categorical"
        label = keys_of_codes(state, data.actual_code[labeled])
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


def set_reference(
    handle: ModelHandle,
    features: Any = None,
    *,
    predictions: Any = None,
    actuals: Any = None,
    window: Window = None,
    version: str | int | None = None,
    name: str = "default",
    actor: str = "feedback-loop",
) -> dict[str, Any]:
    """Store a reference from given data or from a window of the log, with its event."""
    state = handle.model_state()
    if state.spec.task is None:
        raise ValidationError("log a prediction or declare task= first", field="task")
    if (features is None) == (window is None):
        raise ValidationError("give either features or window", field="features")
    if window is not None:
        data = read_window(handle, window, version)
        if len(data.features) == 0:
            raise ValidationError("the window holds no predictions", field="window")
        stored = reference_from_window(state, data)
        n_rows, source = len(data.features), f"window {window}"
    else:
        frame = to_frame(features)
        stored = reference_from_frame(state, frame, predictions, actuals)
        n_rows, source = len(frame), "data"
    version_key = "" if version is None else str(version)
    with write_transaction(handle.engine) as conn:
        save_reference(
            conn,
            model_id=state.id,
            name=name,
            version=version_key,
            created_at=handle.now_us(),
            n_rows=n_rows,
            source=source,
            data=stored,
        )
        # summaries on cells that no reference uses any more are dead weight
        in_use = stored_references(conn, state.id)
        forget_layouts(conn, state.id, [layout_of(d, state.spec.task).digest for d in in_use])
    handle.write_event(
        "reference_set",
        reason=f"reference {name!r} from {source} ({n_rows:,} rows)",
        version=version_key or None,
        evidence={"name": name, "rows": n_rows, "columns": sorted(stored["features"])},
        actor=actor,
    )
    return {"name": name, "version": version_key, "rows": n_rows, "source": source}


def stored_reference(handle: ModelHandle, name: str, version: str | int | None) -> dict[str, Any]:
    """A stored reference, or a ``ValidationError`` saying how to make one."""
    state = handle.read_state()
    with read_transaction(handle.engine) as conn:
        found = load_reference(conn, state.id, name, None if version is None else str(version))
    if found is None:
        raise ValidationError(
            f"model {handle.name!r} has no reference {name!r}: call set_reference first",
            field="reference",
        )
    return found
