"""What the routes share: settings, the database, the loops, the keys and the metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine

from feedback_loop.core.clock import Clock
from feedback_loop.core.timeutil import to_us
from feedback_loop.server.auth import Evaluation, authorize, evaluation
from feedback_loop.server.keys import KeyStore, Principal
from feedback_loop.server.loops import ModelLoops
from feedback_loop.server.prom import ServerMetrics
from feedback_loop.server.settings import Settings


@dataclass
class ServerContext:
    settings: Settings
    engine: Engine
    loops: ModelLoops
    keys: KeyStore
    metrics: ServerMetrics
    clock: Clock
    schema_head: str | None

    def now_us(self) -> int:
        return to_us(self.clock.now())


async def get_context(request: Request) -> ServerContext:
    # ``async`` because it never blocks: a plain ``def`` dependency costs a thread-pool hop.
    context: ServerContext = request.app.state.context
    return context


Context = Annotated[ServerContext, Depends(get_context)]
Ingest = Annotated[Principal, Depends(authorize("ingest"))]
Read = Annotated[Principal, Depends(authorize("read"))]
Admin = Annotated[Principal, Depends(authorize("admin"))]
ReadAll = Annotated[Principal, Depends(authorize("read", all_models=True))]
AdminAll = Annotated[Principal, Depends(authorize("admin", all_models=True))]
Evaluator = Annotated[Evaluation, Depends(evaluation)]
