"""Logging predictions and outcomes: 201 once committed; and reading back what was logged.

A batch is one transaction; single predictions arriving together share one.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import AfterValidator

from feedback_loop.collect.recording import LogResult
from feedback_loop.server.context import Context, Ingest, Read
from feedback_loop.server.errors import ApiError
from feedback_loop.server.responses import Reply, reply
from feedback_loop.server.schemas import (
    LogResultOut,
    OutcomeResultOut,
    OutcomeRow,
    OutcomeRows,
    PredictionOut,
    PredictionRow,
    PredictionRows,
    UnmatchedOut,
    refuse_nul,
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
    # the moment in one transaction (see ``feedback_loop.collect.group_commit``), no
    # thread-pool hop.
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


@router.get(
    "/predictions/{prediction_id:path}",
    response_model=PredictionOut,
    summary="One logged prediction and its current actual",
)
def get_prediction(
    model: str,
    prediction_id: Annotated[str, AfterValidator(refuse_nul), Path(description="May hold '/'.")],
    ctx: Context,
    _: Read,
) -> Reply:
    """What was logged (features, prediction, tags, ...) with the actual joined so far, to
    check one case by hand."""
    found = ctx.loops.get(model).get_prediction(prediction_id)
    if found is None:
        raise ApiError(
            404, "not_found", f"no prediction with id {prediction_id!r}", field="prediction_id"
        )
    return reply(found)


@router.get(
    "/outcomes/unmatched",
    response_model=UnmatchedOut,
    summary="How many outcomes wait for their prediction",
)
def unmatched_outcomes(model: str, ctx: Context, _: Read) -> Reply:
    """A count that keeps growing means outcomes are logged under ids no prediction uses."""
    return reply({"unmatched": ctx.loops.get(model).unmatched_outcomes()})
