"""A retraining asked for without a trainer at hand: recorded, and queued for a worker."""

from __future__ import annotations

from typing import Any

from feedback_loop.collect.handle import ModelHandle
from feedback_loop.store import jobs as jobs_store
from feedback_loop.store.engine import read_transaction, write_transaction
from feedback_loop.store.events import Event, get_event


def queue_retraining(
    handle: ModelHandle, *, reason: str, actor: str, evidence: dict[str, Any]
) -> Event:
    """A ``train`` job for ``feedback-loop worker`` and its ``retrain_requested`` event."""
    state = handle.read_state()  # a model nothing was logged to is not created by a request
    with write_transaction(handle.engine) as conn:
        job = jobs_store.enqueue(
            conn, state.id, "train", {"reason": reason, "actor": actor}, handle.now_us()
        )
    event_id = handle.write_event(
        "retrain_requested", reason=reason, actor=actor, evidence={**evidence, "job": job}
    )
    with read_transaction(handle.engine) as conn:
        return get_event(conn, event_id)
