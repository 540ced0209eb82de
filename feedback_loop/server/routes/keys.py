"""API keys over HTTP, for admins whose key has no model limits (a limited admin could
otherwise mint itself a key without limits)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from feedback_loop.server.context import AdminAll, Context
from feedback_loop.server.errors import ApiError
from feedback_loop.server.responses import Reply, reply
from feedback_loop.server.schemas import KeyList, KeyOut, KeyRequest, NewKeyOut

router = APIRouter(prefix="/v1/keys", tags=["keys"])


@router.post("", status_code=201, response_model=NewKeyOut, summary="Create a key")
def create_key(body: KeyRequest, ctx: Context, _: AdminAll) -> Reply:
    """The answer holds the key itself; it is not stored and cannot be shown again."""
    record, key = ctx.keys.create(
        body.name, list(body.scopes), models=body.models, now_us=ctx.now_us()
    )
    return reply({**record.to_dict(), "key": key}, 201)


@router.get("", response_model=KeyList, summary="Every key, without secrets")
def list_keys(ctx: Context, _: AdminAll) -> Reply:
    return reply({"keys": [k.to_dict() for k in ctx.keys.list_keys()]})


@router.delete("/{key_id}", response_model=KeyOut, summary="Revoke a key")
def revoke_key(
    key_id: Annotated[int, Path(ge=1, le=2**31 - 1)], ctx: Context, _: AdminAll
) -> Reply:
    revoked = ctx.keys.revoke(key_id, now_us=ctx.now_us())
    if revoked is None:
        raise ApiError(404, "not_found", f"no API key with id {key_id}", field="key_id")
    return reply(revoked.to_dict())
