"""Declaring and listing models."""

from __future__ import annotations

from fastapi import APIRouter

from feedback_loop.server.context import Admin, Context, Read
from feedback_loop.server.responses import Reply, reply
from feedback_loop.server.schemas import ModelDeclaration, ModelList, ModelOut

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.put("/{model}", response_model=ModelOut, summary="Create a model or declare its task")
def declare_model(model: str, body: ModelDeclaration, ctx: Context, _: Admin) -> Reply:
    """Fields left out are inferred from the first prediction; a declaration that contradicts
    what is stored for the model is refused (422)."""
    loop = ctx.loops.declare(model, body.model_dump())
    return reply({"model": model, "task": loop.task})


@router.get("", response_model=ModelList, summary="Models this key may see")
def list_models(ctx: Context, who: Read) -> Reply:
    found = [{"name": name, "task": task} for name, task in ctx.loops.names() if who.may_use(name)]
    return reply({"models": found})
