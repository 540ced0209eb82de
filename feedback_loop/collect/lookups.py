"""Reading single things back from the log: a stored prediction, the unmatched outcomes."""

from __future__ import annotations

from typing import Any

from feedback_loop.collect.handle import ModelHandle
from feedback_loop.core.timeutil import from_us
from feedback_loop.store import models as model_store
from feedback_loop.store.engine import read_transaction
from feedback_loop.store.outcomes import unmatched_count
from feedback_loop.store.predictions import fetch_prediction


def unmatched_outcomes(handle: ModelHandle) -> int:
    """Outcomes whose prediction has not arrived (yet)."""
    state = handle.read_state()
    with read_transaction(handle.engine) as conn:
        return unmatched_count(conn, state.id)


def get_prediction(handle: ModelHandle, prediction_id: str) -> dict[str, Any] | None:
    """A stored prediction as logged, with its current actual; None for an unknown id."""
    state = handle.read_state()
    with read_transaction(handle.engine) as conn:
        found = fetch_prediction(conn, state.id, str(prediction_id))
        values = model_store.label_values(conn, state.id)
    if found is None:
        return None
    code = found.pop("actual_code")
    value = found.pop("actual_value")
    found["timestamp"] = from_us(found.pop("ts"))
    label_ts = found.pop("label_ts")
    found["labeled_at"] = None if label_ts is None else from_us(label_ts)
    if state.spec.task == "regression":
        found["actual"] = value
    elif code == -1:
        found["actual"] = {"correct": False}
    else:
        found["actual"] = None if code is None else values.get(code)
    return found
