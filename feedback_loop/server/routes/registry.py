"""The model registry over HTTP: versions, aliases and their history, retraining requests,
promotion, rollback and the post-promotion watch.

Every change is recorded with the calling key's name as the actor, a rollback the watch makes
included (its reason and evidence say it was the watch's).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from feedback_loop.core.timeutil import from_us
from feedback_loop.server.context import Admin, Context, Read
from feedback_loop.server.errors import ApiError
from feedback_loop.server.responses import Reply, reply
from feedback_loop.server.schemas import (
    AliasHistory,
    AliasMap,
    AliasMove,
    AliasName,
    AliasOut,
    ChampionOut,
    EventReply,
    PromoteRequest,
    RetrainRequest,
    RollbackRequest,
    VersionList,
    WatchOut,
    WatchRequest,
)
from feedback_loop.store.events import Event

router = APIRouter(prefix="/v1/models/{model}", tags=["registry"])
AliasPath = Annotated[AliasName, Path()]


@router.get("/versions", response_model=VersionList, summary="Registered versions, oldest first")
def versions(model: str, ctx: Context, _: Read) -> Reply:
    found = [
        {
            "version": v.version,
            "created_at": from_us(v.created_at).isoformat(),
            "created_by": v.created_by,
            "sha256": v.sha256,
            "train_rows": v.train_rows,
            "metrics": v.metrics,
        }
        for v in ctx.loops.get(model).versions()
    ]
    return reply({"versions": found})


@router.get("/aliases", response_model=AliasMap, summary="Aliases and the versions they name")
def aliases(model: str, ctx: Context, _: Read) -> Reply:
    return reply({"aliases": ctx.loops.get(model).aliases()})


@router.put("/aliases/{alias}", response_model=AliasOut, summary="Point an alias at a version")
def set_alias(model: str, alias: AliasPath, body: AliasMove, ctx: Context, who: Admin) -> Reply:
    """Moving ``champion`` to a version the gate rejected answers 409 ``rejected_version``
    unless ``force`` is true (as ``promote`` does)."""
    previous = ctx.loops.get(model).set_alias(
        alias, body.version, actor=who.actor, reason=body.reason, force=body.force
    )
    return reply({"alias": alias, "version": body.version, "previous": previous})


@router.get(
    "/aliases/{alias}/history",
    response_model=AliasHistory,
    summary="Every move of one alias, oldest first",
)
def alias_history(model: str, alias: AliasPath, ctx: Context, _: Read) -> Reply:
    """Who pointed the alias where, when and why (an alias never set has no history)."""
    return reply({"history": ctx.loops.get(model).alias_history(alias)})


@router.get("/alias-history", response_model=AliasHistory, summary="Every alias move, oldest first")
def all_alias_history(model: str, ctx: Context, _: Read) -> Reply:
    return reply({"history": ctx.loops.get(model).alias_history()})


@router.post(
    "/retrain",
    status_code=202,
    response_model=EventReply,
    summary="Queue a retraining job for the worker",
)
def retrain(model: str, ctx: Context, who: Admin, body: RetrainRequest | None = None) -> Reply:
    reason = (body or RetrainRequest()).reason
    outcome = ctx.loops.get(model).trigger_retraining(reason, actor=who.actor)
    if not isinstance(outcome, Event):  # the server's loops have no trainer: they queue
        raise ApiError(500, "internal_error", "retraining ran in the server instead of a worker")
    return reply({"event": outcome.to_dict()}, 202)


@router.post("/promote", response_model=ChampionOut, summary="Make a version the champion")
def promote(model: str, body: PromoteRequest, ctx: Context, who: Admin) -> Reply:
    """A version the gate rejected answers 409 ``rejected_version`` unless ``force`` is true."""
    ctx.loops.get(model).promote(
        body.version, actor=who.actor, reason=body.reason, force=body.force
    )
    return reply({"champion": body.version})


@router.post("/rollback", response_model=ChampionOut, summary="Put the previous champion back")
def rollback(model: str, ctx: Context, who: Admin, body: RollbackRequest | None = None) -> Reply:
    reason = (body or RollbackRequest()).reason
    champion = ctx.loops.get(model).rollback(actor=who.actor, reason=reason)
    return reply({"champion": champion})


@router.post(
    "/watch",
    response_model=WatchOut,
    summary="Judge the newest champion live; roll it back if it regressed",
)
def watch_champion(model: str, ctx: Context, who: Admin, body: WatchRequest | None = None) -> Reply:
    """Admin only: a regression found here rolls the champion back (``auto_rollback``). A
    promotion is judged once; after that, and with none to judge, the verdict is null."""
    options = body or WatchRequest()
    verdict = ctx.loops.get(model).watch_champion(
        min_samples=options.min_samples,
        margin=options.margin,
        alpha=options.alpha,
        auto_rollback=options.auto_rollback,
        actor=who.actor,
    )
    return reply({"verdict": None if verdict is None else verdict.to_dict()})
