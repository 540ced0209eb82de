"""``create_app``: the FastAPI application around one database.

Middleware, outermost first: request timing (Prometheus), then authentication (or the
``--no-auth`` marker), then the body-size cap, so an unauthenticated caller is refused before
any body is read. Endpoints are plain ``def`` functions: the library blocks on the database,
and FastAPI runs such endpoints in its thread pool.
"""

from __future__ import annotations

import gc
import importlib
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

import feedback_loop
from feedback_loop import dashboard
from feedback_loop.core.clock import Clock, SystemClock
from feedback_loop.server import docs, errors
from feedback_loop.server.auth import AuthDisabled, Authenticate
from feedback_loop.server.context import ServerContext
from feedback_loop.server.dispatcher import Dispatcher
from feedback_loop.server.keys import KeyStore
from feedback_loop.server.limits import BodyLimit
from feedback_loop.server.loops import ModelLoops
from feedback_loop.server.outbox import Outbox
from feedback_loop.server.prom import RequestTimer, ServerMetrics
from feedback_loop.server.responses import Reply
from feedback_loop.server.routes import ROUTERS
from feedback_loop.server.schemas import ErrorOut
from feedback_loop.server.settings import ENV_DB, Settings, auth_from_env
from feedback_loop.store.engine import make_engine
from feedback_loop.store.migrate import ensure_schema, head_revision

logger = logging.getLogger("feedback_loop.server")

AUTH_WARNING = (
    "AUTHENTICATION IS DISABLED: anyone who can reach this server may log, read, promote and "
    "roll back models. Use --no-auth only on a trusted machine."
)


def create_app(
    database_url: str | None = None,
    *,
    auth: bool = True,
    clock: Clock | None = None,
    settings: Settings | None = None,
) -> FastAPI:
    """The REST API over ``database_url`` (default: ``$FEEDBACK_LOOP_DB``, else a SQLite file).

    ``auth=False`` lets every caller act as an admin; it is meant for a trusted machine only,
    and the app logs a warning and marks every response with ``X-Feedback-Loop-Auth: disabled``.
    """
    settings = settings or Settings()
    clock = clock or SystemClock()
    engine = make_engine(database_url)
    context = ServerContext(
        settings=settings,
        engine=engine,
        loops=ModelLoops(database_url, engine, clock),
        keys=KeyStore(engine),
        metrics=ServerMetrics(),
        clock=clock,
        schema_head=head_revision(),
    )
    dispatcher = Dispatcher(Outbox(engine), settings) if settings.webhooks else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            ensure_schema(engine)
        except SQLAlchemyError as exc:  # serve anyway: /readyz reports it until the DB is back
            logger.error("database not ready at start: %s", type(exc).__name__)
        if dispatcher is not None:
            dispatcher.start()
        # The library, NumPy, pandas and scikit-learn leave a million long-lived objects behind;
        # a full collection scanning them all stops the process for 100 ms or more, while it may
        # hold the database's write lock. Frozen, they are never scanned again.
        gc.freeze()
        threading.Thread(target=_import_later, name="import-later", daemon=True).start()
        try:
            yield
        finally:
            if dispatcher is not None:
                dispatcher.stop()
            engine.dispose()

    app = FastAPI(
        title="feedback-loop",
        version=feedback_loop.__version__,
        summary="Log predictions and their ground truth; monitor, retrain, promote, roll back.",
        default_response_class=Reply,
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load from a CDN: docs.router serves /docs offline
        redoc_url=None,
        responses={
            401: {"model": ErrorOut, "description": "Missing or invalid API key"},
            403: {"model": ErrorOut, "description": "The key lacks the scope or the model"},
            422: {"model": ErrorOut, "description": "Invalid input, with its field and row"},
        },
    )
    app.state.context = context
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    dashboard.install(app)
    app.include_router(docs.router)
    # Added innermost first: the last one added runs first.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if auth:
        app.add_middleware(Authenticate, keys=context.keys, clock=clock)
    else:
        logger.warning(AUTH_WARNING)
        app.add_middleware(AuthDisabled)
    app.add_middleware(RequestTimer, metrics=context.metrics)
    return app


# Imported on first use (``stats.lazy``), so the server answers sooner after a start; imported
# just after it, so the first drift check or dashboard page does not wait for them either.
IMPORT_LATER = ("scipy.stats",)


def _import_later() -> None:
    for name in IMPORT_LATER:
        importlib.import_module(name)
    gc.freeze()  # what they left behind is long-lived too


def create_app_from_env() -> FastAPI:
    """The app as ``feedback-loop serve`` configures it, through ``FEEDBACK_LOOP_*`` variables
    (uvicorn workers call this in fresh processes)."""
    import os

    return create_app(
        os.environ.get(ENV_DB) or None, auth=auth_from_env(), settings=Settings.from_env()
    )
