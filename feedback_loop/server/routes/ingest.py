"""Logging predictions and outcomes: 201 once committed.

A batch is one transaction; single predictions arriving together share one.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from feedback_loop.recording import LogResult
from feedback_loop.server.context import Context, Ingest
from feedback_loop.server.responses import Reply, reply
from feedback_loop.server.schemas import (
    LogResultOut,
    OutcomeResultOut,
    OutcomeRow,
    OutcomeRows,
    PredictionRow,
    PredictionRows,
)
from feedback_loop.store.outcomes import OutcomeResult

router = APIRouter(prefix="/v1/models/{model}", tags=["ingest"])


def _logged(result: LogResult) -> dict[str, Any]:
    return {
        "inserted": result.inserted,
        "retried": result.retried,
        "outcomes": result.outcomes,
        "joined": result.joined,
        "prediction_ids": result.prediction_ids,
    }


def _stored(result: OutcomeResult) -> dict[str, Any]:
    return {"stored": result.stored, "matched": result.matched, "unmatched": result.unmatched}


@router.post(
    "/predictions",
    status_code=201,
    response_model=LogResultOut,
    summary="Log a batch of predictions (all rows or none)",
)
def log_predictions(model: str, body: PredictionRows, ctx: Context, _: Ingest) -> Reply:
    rows = [row.model_dump(exclude_unset=True) for row in body.rows]
    with ctx.loops.writing(model) as loop:
        result = loop.log_predictions(rows)
    ctx.metrics.predictions.labels(model=model).inc(result.inserted)
    return reply(_logged(result), 201)


@router.post(
    "/prediction", status_code=201, response_model=LogResultOut, summary="Log one prediction"
)
async def log_prediction(model: str, body: PredictionRow, ctx: Context, _: Ingest) -> Reply:
    # async: validated on the event loop, then written with the other single predictions of
    # the moment in one transaction (see ``feedback_loop.group_commit``), no thread-pool hop.
    async with ctx.loops.writing_async(model) as loop:
        result = await loop.log_prediction_async(**body.model_dump(exclude_unset=True))
    ctx.metrics.predictions.labels(model=model).inc(result.inserted)
    return reply(_logged(result), 201)


@router.post(
    "/outcomes",
    status_code=201,
    response_model=OutcomeResultOut,
    summary="Log a batch of outcomes (all rows or none)",
)
def log_outcomes(model: str, body: OutcomeRows, ctx: Context, _: Ingest) -> Reply:
    rows = [row.model_dump(exclude_unset=True) for row in body.rows]
    with ctx.loops.writing(model) as loop:
        result = loop.log_outcomes(rows)
    ctx.metrics.outcomes.labels(model=model).inc(result.stored)
    return reply(_stored(result), 201)


@router.post(
    "/outcome", status_code=201, response_model=OutcomeResultOut, summary="Log one outcome"
)
def log_outcome(model: str, body: OutcomeRow, ctx: Context, _: Ingest) -> Reply:
    with ctx.loops.writing(model) as loop:
        result = loop.log_outcomes([body.model_dump(exclude_unset=True)])
    ctx.metrics.outcomes.labels(model=model).inc(result.stored)
    return reply(_stored(result), 201)
