"""Every error leaves the server as ``{"error": {"type", "message", "field", "row"}}``.

The library's own errors already name the field and row; request validation errors from
FastAPI are reduced to the first problem, with the row and field read from its location.
"""

from __future__ import annotations

import logging
from typing import Any

import adbc_driver_manager
import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from starlette.exceptions import HTTPException

from feedback_loop.errors import (
    DuplicatePredictionError,
    FeedbackLoopError,
    RejectedVersionError,
    UnknownModelError,
    ValidationError,
)
from feedback_loop.server.keys import redact
from feedback_loop.server.responses import Reply

logger = logging.getLogger("feedback_loop.server")

_HTTP_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    """An error the server answers with, as is."""

    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        *,
        field: str | None = None,
        row: int | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.field = field
        self.row = row
        self.headers = headers


def error_reply(
    status: int,
    kind: str,
    message: str,
    *,
    field: str | None = None,
    row: int | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Reply:
    """The error envelope; ``extra`` adds fields a client needs to rebuild the error."""
    error = {"type": kind, "message": redact(message), "field": field, "row": row, **extra}
    return Reply({"error": error}, status_code=status, headers=headers)


def not_found(model: str) -> ApiError:
    return ApiError(404, "not_found", f"no model named {model!r}", field="model")


def _where(loc: tuple[Any, ...]) -> tuple[str | None, int | None]:
    """``("body", "rows", 3, "prediction", ...)`` → field ``prediction``, row 3."""
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header") else list(loc)
    row = None
    if len(parts) >= 2 and parts[0] == "rows" and isinstance(parts[1], int):
        row = parts[1]
        parts = parts[2:]
    field = next((p for p in parts if isinstance(p, str)), None)
    return field, row


def _validation_message(error: dict[str, Any], total: int) -> str:
    kind = error.get("type")
    if kind == "json_invalid":
        return f"the body is not valid JSON: {error.get('ctx', {}).get('error', 'parse error')}"
    if kind == "extra_forbidden":
        message = "is not a known field"
    elif kind == "missing" and tuple(error.get("loc", ())) == ("body",):
        message = "a JSON body is required"
    elif kind == "value_error" and "error" in error.get("ctx", {}):
        message = str(error["ctx"]["error"])
    else:
        message = str(error.get("msg", "is not valid"))
    return message if total == 1 else f"{message} (and {total - 1} more problem(s))"


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into the error envelope."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> Reply:
        return error_reply(
            exc.status, exc.kind, exc.message, field=exc.field, row=exc.row, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_: Request, exc: RequestValidationError) -> Reply:
        errors = list(exc.errors())
        first = errors[0] if errors else {"msg": "invalid request", "loc": ()}
        field, row = _where(tuple(first.get("loc", ())))
        message = _validation_message(first, len(errors))
        return error_reply(422, "validation_error", message, field=field, row=row)

    @app.exception_handler(ValidationError)
    async def invalid(_: Request, exc: ValidationError) -> Reply:
        return error_reply(422, "validation_error", exc.message, field=exc.field, row=exc.row)

    @app.exception_handler(RejectedVersionError)
    async def rejected(_: Request, exc: RejectedVersionError) -> Reply:
        """A promotion (or a move of ``champion``) the gate's verdict refuses without force:
        the version and the verdict travel apart, so a client rebuilds the same error."""
        return error_reply(
            409,
            "rejected_version",
            str(exc),
            field="version",
            version=exc.version,
            verdict=redact(exc.verdict),
        )

    @app.exception_handler(DuplicatePredictionError)
    async def duplicate(_: Request, exc: DuplicatePredictionError) -> Reply:
        return error_reply(409, "duplicate_prediction", str(exc), field="prediction_id")

    @app.exception_handler(UnknownModelError)
    async def unknown_model(_: Request, exc: UnknownModelError) -> Reply:
        return error_reply(404, "not_found", str(exc), field="model")

    @app.exception_handler(FeedbackLoopError)
    async def library_error(_: Request, exc: FeedbackLoopError) -> Reply:
        return error_reply(400, "bad_request", str(exc))

    @app.exception_handler(OverflowError)
    async def overflow(_: Request, exc: OverflowError) -> Reply:
        return error_reply(422, "validation_error", "a number is out of range")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Reply:
        kind = _HTTP_TYPES.get(exc.status_code, "http_error")
        headers = None if exc.headers is None else dict(exc.headers)
        return error_reply(exc.status_code, kind, str(exc.detail), headers=headers)

    @app.exception_handler(OperationalError)
    async def database_down(_: Request, exc: OperationalError) -> Reply:
        logger.error("database error: %s", redact(str(exc.orig)))
        return error_reply(503, "database_unavailable", "the database cannot be reached")

    @app.exception_handler(DataError)
    @app.exception_handler(psycopg.DataError)
    @app.exception_handler(adbc_driver_manager.DataError)
    async def database_refused_value(_: Request, exc: Exception) -> Reply:
        # A value the database cannot hold (a NUL character in text on PostgreSQL, say) that
        # the library's own checks let through: the caller's input, so a 4xx.
        cause = exc.orig if isinstance(exc, DataError) else exc
        return error_reply(
            422, "validation_error", f"the database refused a value: {redact(str(cause))[:200]}"
        )

    @app.exception_handler(DBAPIError)
    async def database_error(_: Request, exc: DBAPIError) -> Reply:
        logger.error("database error: %s", redact(str(exc.orig)))
        return error_reply(500, "internal_error", "the database refused the operation")

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Reply:
        # Starlette re-raises after this reply, and the server logs the traceback once.
        return error_reply(500, "internal_error", "internal server error")
