"""Who may call what: API keys checked before the body is read, scopes checked per route.

``Authenticate`` (middleware) turns ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``
into a :class:`Principal`, or answers 401 before a single body byte is read. ``authorize``
(a dependency) checks the route's scope and the key's model limits through ``check_access``,
answering 403; the dashboard checks its pages and actions with the same ``check_access``.
The dashboard under ``/ui`` signs browsers in with sessions of its own
(``feedback_loop.dashboard.sessions``): this middleware leaves ``/ui`` to it, and no cookie is
ever accepted for the API.
Scopes: ``ingest`` logs predictions and outcomes, ``read`` reads, ``admin`` changes models,
aliases and keys and implies the other two.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from feedback_loop.core.clock import Clock
from feedback_loop.core.timeutil import to_us
from feedback_loop.server.errors import ApiError, error_reply
from feedback_loop.server.keys import ANONYMOUS, KeyStore, Principal

logger = logging.getLogger("feedback_loop.server")

ScopeName = Literal["ingest", "read", "admin"]
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/docs"})
PUBLIC_PATHS |= {"/openapi.json"}
DASHBOARD = "/ui"
AUTH_DISABLED_HEADER = (b"x-feedback-loop-auth", b"disabled")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}

# Declared for the OpenAPI document (the "Authorize" button); the middleware does the work.
bearer_scheme = HTTPBearer(auto_error=False, description="`Authorization: Bearer fl_...`")
header_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: fl_...`")


def is_dashboard(path: str) -> bool:
    return path == DASHBOARD or path.startswith(DASHBOARD + "/")


def presented_key(headers: dict[bytes, bytes]) -> str | None:
    authorization = headers.get(b"authorization", b"").decode("latin-1").strip()
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    header = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    return header or None


class Authenticate:
    """ASGI middleware: find the caller's principal, or refuse with 401."""

    def __init__(self, app: ASGIApp, keys: KeyStore, clock: Clock):
        self.app = app
        self.keys = keys
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS or is_dashboard(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        key = presented_key(headers)
        if key is None:
            reply = error_reply(
                401,
                "unauthorized",
                "an API key is required: send `Authorization: Bearer <key>` or `X-API-Key`",
                headers=_CHALLENGE,
            )
            await reply(scope, receive, send)
            return
        principal = self.keys.recently_verified(key)
        try:
            if principal is None:
                now_us = to_us(self.clock.now())
                principal = await run_in_threadpool(self.keys.verify, key, now_us=now_us)
        except OperationalError:
            reply = error_reply(503, "database_unavailable", "the database cannot be reached")
            await reply(scope, receive, send)
            return
        if principal is None:
            reply = error_reply(
                401, "unauthorized", "the API key is unknown or revoked", headers=_CHALLENGE
            )
            await reply(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


class AuthDisabled:
    """ASGI middleware for ``--no-auth``: every caller is an admin, and every response says
    so in ``X-Feedback-Loop-Auth: disabled``."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = ANONYMOUS

        async def mark(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), AUTH_DISABLED_HEADER]
            await send(message)

        await self.app(scope, receive, mark)


def check_access(
    principal: Principal, scope: ScopeName, *, model: str | None = None, all_models: bool = False
) -> None:
    """Raise a 403 ``ApiError`` unless ``principal`` has ``scope`` and may use ``model``
    (``all_models``: only keys without model limits, for what spans every model)."""
    if not principal.has_scope(scope):
        raise ApiError(403, "forbidden", f"this API key lacks the {scope!r} scope")
    if all_models and principal.models is not None:
        raise ApiError(403, "forbidden", "this route needs a key without model limits")
    if model is not None and not principal.may_use(model):
        raise ApiError(403, "forbidden", f"this API key may not use model {model!r}", field="model")


def authorize(scope: ScopeName, *, all_models: bool = False) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller, if its key has ``scope`` and may use the path's model
    (``all_models``: only keys without model limits, for routes that span every model)."""

    async def check(
        request: Request,
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
        _header: Annotated[str | None, Security(header_scheme)],
    ) -> Principal:
        principal = request.scope.get("state", {}).get("principal")
        if not isinstance(principal, Principal):  # the middleware always sets one
            raise ApiError(401, "unauthorized", "an API key is required", headers=_CHALLENGE)
        model = request.path_params.get("model")
        check_access(principal, scope, model=model, all_models=all_models)
        return principal

    return check


@dataclass(frozen=True)
class Evaluation:
    """A caller of an evaluation route (should-retrain, drift, estimate, segments, concept
    drift) and whether its outcome is recorded: a ``GET`` reads and writes nothing; a ``POST``
    records what it found as events by the caller."""

    principal: Principal
    record: bool

    @property
    def actor(self) -> str:
        return self.principal.actor


_READ = authorize("read")
_ADMIN = authorize("admin")


async def evaluation(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    header: Annotated[str | None, Security(header_scheme)],
) -> Evaluation:
    """The read scope to evaluate (``GET``); ``admin`` to record (``POST``). Recording needs
    admin, not ingest: the answer shows the model's quality, which an ingest key may not read,
    and a recorded decision sends webhooks and feeds the retraining policy's cooldown."""
    record = request.method == "POST"
    principal = await (_ADMIN if record else _READ)(request, bearer, header)
    return Evaluation(principal, record)
