"""One ``FeedbackLoop`` per model, made on first use and shared by the request threads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from sqlalchemy import Engine

from feedback_loop.core.clock import Clock
from feedback_loop.loop import FeedbackLoop
from feedback_loop.server.errors import not_found
from feedback_loop.store import models as model_store
from feedback_loop.store.engine import read_transaction


class ModelLoops:
    """The app's loops by model name.

    A loop is built with what ``PUT /v1/models/{model}`` declared in this process (the task and
    label keys are also stored with the model, so a fresh process finds them there).
    """

    def __init__(self, database_url: str | None, engine: Engine, clock: Clock | None):
        self.database_url = database_url
        self.engine = engine
        self.clock = clock
        self._loops: dict[str, FeedbackLoop] = {}
        self._declared: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _build(self, model: str) -> FeedbackLoop:
        declared = self._declared.get(model, {})
        return FeedbackLoop(model, tracking_db=self.database_url, clock=self.clock, **declared)

    def exists(self, model: str) -> bool:
        with read_transaction(self.engine) as conn:
            return model_store.find_model(conn, model) is not None

    def get(self, model: str, *, create: bool = False) -> FeedbackLoop:
        """The model's loop; an unknown model is a 404 unless ``create`` (ingest makes it)."""
        loop = self._loops.get(model)
        if loop is not None:
            return loop
        if not create and not self.exists(model):
            raise not_found(model)
        loop = self._build(model)
        with self._lock:
            return self._loops.setdefault(model, loop)

    @contextmanager
    def writing(self, model: str) -> Iterator[FeedbackLoop]:
        """The loop for a write; dropped if the write fails, so the next request starts from
        what the database holds (a rolled-back batch may have left label codes in the loop's
        cache that were never committed)."""
        loop = self.get(model, create=True)
        try:
            yield loop
        except BaseException:
            self._forget(model, loop)
            raise

    @asynccontextmanager
    async def writing_async(self, model: str) -> AsyncIterator[FeedbackLoop]:
        """``writing`` for async routes: a loop not made yet is made in a worker thread (that
        reads the database)."""
        loop = self._loops.get(model)
        if loop is None:
            loop = await asyncio.to_thread(self.get, model, create=True)
        try:
            yield loop
        except BaseException:
            self._forget(model, loop)
            raise

    def _forget(self, model: str, loop: FeedbackLoop) -> None:
        with self._lock:
            if self._loops.get(model) is loop:
                del self._loops[model]

    def declare(self, model: str, spec: dict[str, Any]) -> FeedbackLoop:
        """Create the model if needed and store its declared task and label keys; a
        declaration contradicting what is stored raises ``ValidationError``."""
        given = {k: v for k, v in spec.items() if v is not None}
        with self._lock:
            merged = {**self._declared.get(model, {}), **given}
        loop = FeedbackLoop(model, tracking_db=self.database_url, clock=self.clock, **merged)
        _ = loop.task  # settles and stores the spec now, raising on a contradiction
        with self._lock:
            self._declared[model] = merged
            self._loops[model] = loop
        return loop

    def names(self) -> list[tuple[str, str | None]]:
        with read_transaction(self.engine) as conn:
            return [(r.name, r.spec.task) for r in model_store.list_models(conn)]
