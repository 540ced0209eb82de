"""The model a loop works for: its name, database, clock and declared task, its stored state,
and the audit trail's one write path.

Every stage's services take a :class:`ModelHandle` rather than the ``FeedbackLoop`` face, so
the services need nothing above them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from feedback_loop.collect.batches import resolve_task
from feedback_loop.collect.recording import ModelState, merge_spec
from feedback_loop.core.clock import Clock
from feedback_loop.core.limits import check_event
from feedback_loop.core.tasks import TaskSpec, dict_label_key, dict_score_key, task_of_model
from feedback_loop.core.timeutil import to_us
from feedback_loop.errors import ValidationError
from feedback_loop.store import models as model_store
from feedback_loop.store.artifacts import LocalArtifactStore
from feedback_loop.store.engine import Guard, read_transaction, write_transaction
from feedback_loop.store.events import Event, read_events, write_event


class ModelHandle:
    """One model in one database, shared by the services of every stage.

    The model's state (id, task, label codes) is cached once settled: label codes are
    append-only, so a settled state never goes stale."""

    def __init__(
        self,
        name: str,
        engine: Engine,
        clock: Clock,
        declared: TaskSpec,
        artifacts: LocalArtifactStore,
    ):
        self.name = name
        self.engine = engine
        self.clock = clock
        self.declared = declared
        self.artifacts = artifacts
        self._state: ModelState | None = None
        self._lock = threading.Lock()

    def now_us(self) -> int:
        return to_us(self.clock.now())

    # -- state -------------------------------------------------------------------------------

    @property
    def cached(self) -> ModelState | None:
        """The state already known, if any (reads nothing)."""
        return self._state

    def model_state(self, first_prediction: Any = None) -> ModelState:
        """The model's id, task and label codes, creating the model row if needed; the task is
        settled from the first prediction."""
        with self._lock:
            if self._settled():
                assert self._state is not None
                return self._state
            with write_transaction(self.engine) as conn:
                record = model_store.ensure_model(conn, self.name, self.now_us())
                spec = _inferred(
                    merge_spec(record.spec, self.declared, self.name), first_prediction
                )
                model_store.save_spec(conn, record.id, spec)
                codes = model_store.label_codes(conn, record.id)
            self._state = ModelState(record.id, self.name, spec, codes)
            return self._state

    def read_state(self) -> ModelState:
        """The model's state for a read, which writes nothing: an unknown model raises
        ``UnknownModelError`` (it is not created), and a declared task is used but not
        stored."""
        with self._lock:
            if self._state is not None and self._state.spec.task is not None:
                return self._state
        with read_transaction(self.engine) as conn:
            record = model_store.get_model(conn, self.name)
            codes = model_store.label_codes(conn, record.id)
        spec = merge_spec(record.spec, self.declared, self.name)
        state = ModelState(record.id, self.name, spec, codes)
        if spec.task is not None and spec == record.spec:  # nothing left to store: keep it
            with self._lock:
                if self._state is None:
                    self._state = state
        return state

    def writer_state(self, first_prediction: Any = None) -> ModelState:
        """The model's state for a writer, without writing: a model not stored yet (or whose
        task is not saved yet) comes back ``pending``, and the transaction that stores the rows
        creates it and saves its task, so a refused first request changes nothing."""
        with self._lock:
            if self._settled():
                assert self._state is not None
                return self._state
            with read_transaction(self.engine) as conn:
                record = model_store.find_model(conn, self.name)
                codes = {} if record is None else model_store.label_codes(conn, record.id)
            stored = TaskSpec() if record is None else record.spec
            spec = _inferred(merge_spec(stored, self.declared, self.name), first_prediction)
            saved = ("task", "label_key", "score_key", "positive_label", "primary_metric")
            pending = record is None or any(
                getattr(spec, f) is not None and getattr(stored, f) is None for f in saved
            )
            state = ModelState(-1 if record is None else record.id, self.name, spec, codes)
            state.pending = pending
            self._state = state
            return state

    def task_from_model(self, model: Any, *, required: bool) -> ModelState:
        """Settle an undeclared task from a model being registered (a reference profile
        needs it; otherwise the first prediction would settle it later)."""
        found = task_of_model(model)
        if found is None:
            if required:
                raise ValidationError(
                    "cannot tell the task from the model (no classes_ with predict_proba, not a "
                    "scikit-learn regressor): pass task= ('binary', 'multiclass' or "
                    "'regression') to FeedbackLoop",
                    field="task",
                )
            return self.model_state()
        task, positive = found
        with self._lock:
            with write_transaction(self.engine) as conn:
                record = model_store.ensure_model(conn, self.name, self.now_us())
                spec = merge_spec(record.spec, self.declared, self.name)
                if spec.task is None:
                    spec.task = task
                    if task == "binary" and spec.positive_label is None:
                        spec.positive_label = positive
                model_store.save_spec(conn, record.id, spec)
            self._state = None  # re-read with the label codes below
        return self.model_state()

    def _settled(self) -> bool:
        return (
            self._state is not None
            and self._state.spec.task is not None
            and not self._state.pending
        )

    # -- the audit trail ---------------------------------------------------------------------

    def write_event(
        self,
        kind: str,
        *,
        reason: str,
        actor: str,
        evidence: dict[str, Any] | None = None,
        version: str | None = None,
        guard: Guard | None = None,
    ) -> int:
        """Append an event, with ``guard`` run inside its transaction: the one place events
        are written, so each is checked against the audit trail's limits."""
        check_event(kind, reason=reason, actor=actor, version=version)
        state = self.model_state()  # the model row may be made here, before the transaction
        with write_transaction(self.engine) as conn:
            if guard is not None:
                guard(conn)
            return write_event(
                conn,
                ts_us=self.now_us(),
                kind=kind,
                model_id=state.id,
                version=version,
                actor=actor,
                reason=reason,
                evidence=evidence or {},
            )

    def events(
        self,
        *,
        kinds: Sequence[str] | None = None,
        since: Any = None,
        until: Any = None,
        limit: int | None = 100,
    ) -> list[Event]:
        """This model's events, newest first."""
        state = self.read_state()
        with read_transaction(self.engine) as conn:
            return read_events(
                conn,
                model_id=state.id,
                kinds=kinds,
                since_us=None if since is None else to_us(since, field="since"),
                until_us=None if until is None else to_us(until, field="until"),
                limit=limit,
            )


def _inferred(spec: TaskSpec, first_prediction: Any) -> TaskSpec:
    """``spec`` with its task (and a dict's label and score keys) read from the first
    prediction, when not known yet."""
    if spec.task is None and first_prediction is not None:
        spec = resolve_task(spec, first_prediction)
        if isinstance(first_prediction, dict) and spec.task != "regression":
            spec.label_key = spec.label_key or dict_label_key(first_prediction)
            spec.score_key = spec.score_key or dict_score_key(first_prediction)
    return spec
