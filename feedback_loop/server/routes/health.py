"""Liveness, readiness and the Prometheus scrape."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy.exc import SQLAlchemyError

from feedback_loop.server.context import Context, ReadAll
from feedback_loop.server.errors import error_reply
from feedback_loop.server.responses import Reply, reply
from feedback_loop.store.migrate import current_revision

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> Reply:
    return reply({"status": "ok"})


@router.get(
    "/readyz",
    summary="The database answers and its schema is current",
    responses={503: {"description": "Not ready"}},
)
def readyz(ctx: Context) -> Reply:
    try:
        with ctx.engine.connect() as conn:
            revision = current_revision(conn)
    except SQLAlchemyError as exc:
        return error_reply(
            503, "not_ready", f"the database cannot be reached ({type(exc).__name__})"
        )
    if revision != ctx.schema_head:
        return error_reply(
            503,
            "not_ready",
            f"the schema is at {revision}, not {ctx.schema_head}: run `feedback-loop db upgrade`",
        )
    return reply({"status": "ready", "schema": revision})


@router.get(
    "/metrics",
    summary="Prometheus metrics (a read key without model limits)",
    response_class=Response,
)
def prometheus(ctx: Context, _: ReadAll) -> Response:
    return Response(ctx.metrics.exposition(), media_type=ctx.metrics.content_type)
