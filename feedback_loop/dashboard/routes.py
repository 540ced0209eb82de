"""Dashboard pages under ``/ui``: models overview, a model's page (the report's charts, live),
and the admin actions (retrain, promote, roll back), each confirmed on a page of its own.

Who may see and do what is decided by the API's own ``check_access``: the read scope to view,
admin to act, and the key's model limits everywhere (the overview lists only the models the key
may use). Browsers sign in with a key and get a server-side session (``sessions``); every form
carries the session's CSRF token and every POST must come from this server's own pages. Every
page is rendered on the server with inline SVG: no script, no CDN.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import PackageLoader
from starlette.concurrency import run_in_threadpool

from feedback_loop.core.limits import MAX_REASON_LENGTH, check_reason
from feedback_loop.dashboard.sessions import (
    COOKIE,
    COOKIE_PATH,
    LIFETIME_S,
    Sessions,
    csrf_matches,
    csrf_token,
    same_origin,
)
from feedback_loop.deploy import promotion
from feedback_loop.errors import FeedbackLoopError, RejectedVersionError, ValidationError
from feedback_loop.report.build import environment, report_context
from feedback_loop.server.auth import ScopeName, check_access
from feedback_loop.server.errors import ApiError
from feedback_loop.server.keys import Principal

router = APIRouter(prefix="/ui", include_in_schema=False)
_env = environment(PackageLoader("feedback_loop.dashboard", "templates"))
# A model name as one path segment: the naming rule allows '?', '#', '%' and spaces.
_env.filters["segment"] = lambda value: quote(str(value), safe="")
# Pages built at once per worker process: the rest wait (without holding a thread) so that a
# burst of page loads leaves the thread pool to ingest, the API and /metrics.
PAGE_BUILDS = 2
PAGE_WAIT_S = 60.0  # a page not started within this answers 503
# A model page's charts: the most recent points only (each point reads its window, each drift
# column also runs a drift check), so a page stays well under a second.
CHART_POINTS = 60
DRIFT_POINTS = 14
ACTIONS = ("retrain", "promote", "rollback")


class Refused(Exception):
    """A request the dashboard answers with ``response`` as is (sign-in redirect, 403, 422)."""

    def __init__(self, response: Response):
        super().__init__(response.status_code)
        self.response = response


def install(app: FastAPI) -> None:
    """Mount the dashboard on ``app``: its routes, its session store and its page limit."""
    context = app.state.context
    app.state.dashboard_sessions = Sessions(context.engine, context.keys, context.clock)
    # by event loop (one per worker process; a test may run several in turn)
    app.state.dashboard_pages = weakref.WeakKeyDictionary()
    app.include_router(router)

    @app.exception_handler(Refused)
    async def refused(_: Request, exc: Refused) -> Response:
        return exc.response


# -- who is asking ----------------------------------------------------------------------------


def _sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.dashboard_sessions
    return sessions


def _set_principal(request: Request) -> Any:
    """The principal a middleware set: the anonymous admin under ``--no-auth``, else none."""
    return request.scope.get("state", {}).get("principal")


async def _signed_in(request: Request) -> tuple[Principal, str | None]:
    """The caller and their session id; with authentication disabled (``--no-auth``) the
    anonymous admin without a session. Not signed in: to the sign-in page."""
    principal = _set_principal(request)
    if isinstance(principal, Principal):
        return principal, None
    token = request.cookies.get(COOKIE)
    if token:
        principal = await run_in_threadpool(_sessions(request).principal, token)
        if principal is not None:
            return principal, token
    raise Refused(RedirectResponse("/ui/login", status_code=303))


async def _allowed(
    request: Request, scope: ScopeName, model: str | None = None
) -> tuple[Principal, str | None]:
    """The caller, if they may do ``scope`` on ``model``; else a 403 page."""
    principal, token = await _signed_in(request)
    try:
        check_access(principal, scope, model=model)
    except ApiError as exc:
        raise Refused(
            _message(request, (principal, token), 403, "Forbidden", exc.message)
        ) from None
    return principal, token


async def _posted(
    request: Request, scope: ScopeName, model: str | None, csrf: str
) -> tuple[Principal, str | None]:
    """The caller of a state-changing POST: from this server's own page (Origin), signed in,
    with the session's CSRF token, and allowed to do ``scope`` on ``model``."""
    if not same_origin(request):
        raise Refused(_forbidden(request, "This request did not come from this server's pages."))
    principal, token = await _allowed(request, scope, model)
    if token is not None and not csrf_matches(token, csrf):
        raise Refused(_forbidden(request, "The form is stale or was not made here: reload it."))
    return principal, token


# -- rendering --------------------------------------------------------------------------------


def _page(
    template: str,
    request: Request,
    status: int = 200,
    principal: Principal | None = None,
    token: str | None = None,
    **context: Any,
) -> HTMLResponse:
    admin = principal is not None and principal.has_scope("admin")
    html = _env.get_template(template).render(
        request=request,
        admin=admin,
        signed_in=token is not None,  # a session to end (none under --no-auth)
        csrf="" if token is None else csrf_token(token),
        **context,
    )
    return HTMLResponse(html, status_code=status)


def _forbidden(request: Request, message: str) -> HTMLResponse:
    return _page("message.html.j2", request, 403, title="Forbidden", message=message)


def _message(
    request: Request, who: tuple[Principal, str | None], status: int, title: str, message: str
) -> HTMLResponse:
    return _page("message.html.j2", request, status, *who, title=title, message=message)


@asynccontextmanager
async def _page_slot(request: Request) -> AsyncIterator[None]:
    """One of the worker's few page-building slots, or a 503 page after ``PAGE_WAIT_S``."""
    by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
    by_loop = request.app.state.dashboard_pages
    slots = by_loop.setdefault(asyncio.get_running_loop(), asyncio.Semaphore(PAGE_BUILDS))
    try:
        await asyncio.wait_for(slots.acquire(), PAGE_WAIT_S)
    except TimeoutError:
        page = _page("message.html.j2", request, 503, title="Busy", message="Try again shortly.")
        page.headers["Retry-After"] = "10"
        raise Refused(page) from None
    try:
        yield
    finally:
        slots.release()


def _loops(request: Request) -> Any:
    return request.app.state.context.loops


# -- pages ------------------------------------------------------------------------------------


def _overview_rows(loops: Any, principal: Principal) -> list[dict[str, Any]]:
    rows = []
    for name, task in loops.names():
        if not principal.may_use(name):
            continue
        loop = loops.get(name)
        metrics = loop.get_metrics(window="7d") if task else {}
        aliases = loop.aliases()
        last = loop.events(limit=1)
        rows.append(
            {
                "name": name,
                "task": task or "—",
                "champion": aliases.get("champion"),
                "metric": loop.primary_metric if task else None,
                "value": metrics.get(loop.primary_metric) if task else None,
                "predictions": metrics.get("predictions"),
                "coverage": metrics.get("label_coverage"),
                "last": None if not last else f"{last[0].time:%Y-%m-%d %H:%M} {last[0].kind}",
            }
        )
    return rows


@router.get("", response_class=HTMLResponse)
async def overview(request: Request) -> HTMLResponse:
    who = await _allowed(request, "read")
    async with _page_slot(request):
        rows = await run_in_threadpool(_overview_rows, _loops(request), who[0])
    return _page("overview.html.j2", request, 200, *who, rows=rows)


@router.get("/models/{model}", response_class=HTMLResponse)
async def model_page(request: Request, model: str, period: str = "1d") -> HTMLResponse:
    who = await _allowed(request, "read", model)

    def build() -> dict[str, Any]:
        loop = _loops(request).get(model)
        context = report_context(
            loop, period=period, max_points=CHART_POINTS, max_drift_points=DRIFT_POINTS
        )
        context["versions"] = [v.version for v in loop.versions()]
        context["aliases"] = loop.aliases()
        return context

    try:
        async with _page_slot(request):
            context = await run_in_threadpool(build)
    except ValidationError as exc:
        return _message(request, who, 422, "Invalid request", f"{exc.field}: {exc.message}")
    except (FeedbackLoopError, ApiError) as exc:
        return _message(request, who, 404, "Not found", str(exc))
    return _page("model.html.j2", request, 200, *who, **context)


# -- actions: a confirmation page (GET), then the action (POST) --------------------------------


def _chosen_version(loop: Any, version: str) -> int:
    """The version picked in the promote form (an empty choice is an error, not version 1)."""
    if not version.strip():
        raise ValidationError("choose a version to promote", field="version")
    try:
        chosen = int(version)
    except ValueError:
        raise ValidationError(f"{version!r} is not a version number", field="version") from None
    if chosen not in [v.version for v in loop.versions()]:
        raise ValidationError(f"version {chosen} is not registered", field="version")
    return chosen


def _confirmation(loop: Any, action: str, version: str) -> dict[str, Any]:
    champion = loop.aliases().get("champion")
    if action == "promote":
        chosen = _chosen_version(loop, version)
        return {
            "action": action,
            "version": chosen,
            "rejected": promotion.rejection(loop.handle, chosen),
            "what": f"Make version {chosen} the champion"
            + ("" if champion is None else f" in place of version {champion}")
            + ".",
        }
    if action == "rollback":
        current, previous = promotion.rollback_target(loop.handle)
        what = f"Replace the champion, version {current}, with version {previous}."
        return {"action": action, "what": what}
    what = "Queue a retraining job: a worker trains a candidate, and the gate decides on it."
    return {"action": action, "what": what}


@router.get("/models/{model}/{action}", response_class=HTMLResponse)
async def confirm(request: Request, model: str, action: str, version: str = "") -> HTMLResponse:
    """What the action will do, with the form that does it."""
    who = await _allowed(request, "admin", model)
    if action not in ACTIONS:
        return _message(request, who, 404, "Not found", f"no such page: {action}")
    try:
        loops = _loops(request)  # the model is looked up in the thread: it may query
        details = await run_in_threadpool(lambda: _confirmation(loops.get(model), action, version))
    except ValidationError as exc:
        return _message(request, who, 422, "Not done", f"{exc.field}: {exc.message}")
    except (FeedbackLoopError, ApiError) as exc:
        return _message(request, who, 404, "Not found", str(exc))
    return _page(
        "confirm.html.j2", request, 200, *who, model=model, max_reason=MAX_REASON_LENGTH, **details
    )


def _reason(given: str, default: str) -> str:
    """The reason typed in a confirmation form (recorded in the decision log), under the rule
    of every reason (``core.limits.check_reason``)."""
    return check_reason(given).strip() or default


async def _act(request: Request, model: str, csrf: str, action: Callable[..., Any]) -> Response:
    who = await _posted(request, "admin", model, csrf)
    try:
        loops = _loops(request)  # the model is looked up in the thread: it may query
        await run_in_threadpool(lambda: action(loops.get(model), who[0].actor))
    except RejectedVersionError as exc:
        return _message(request, who, 409, "Not done", str(exc))
    except FeedbackLoopError as exc:
        field = getattr(exc, "field", None)
        message = str(exc) if field is None else f"{field}: {exc}"
        return _message(request, who, 422, "Not done", message)
    except ApiError as exc:
        return _message(request, who, exc.status, "Not done", exc.message)
    return RedirectResponse(f"/ui/models/{quote(model, safe='')}", status_code=303)


@router.post("/models/{model}/rollback")
async def rollback(
    request: Request,
    model: str,
    csrf: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    return await _act(
        request,
        model,
        csrf,
        lambda loop, actor: loop.rollback(
            actor=actor, reason=_reason(reason, "rolled back from the dashboard")
        ),
    )


def _promote(loop: Any, version: str, *, force: bool, actor: str, reason: str) -> None:
    """Promote the chosen version; the library refuses a rejected one without ``force``."""
    loop.promote(_chosen_version(loop, version), actor=actor, reason=reason, force=force)


@router.post("/models/{model}/promote")
async def promote(
    request: Request,
    model: str,
    csrf: Annotated[str, Form()] = "",
    version: Annotated[str, Form()] = "",
    force: Annotated[bool, Form()] = False,
    reason: Annotated[str, Form()] = "",
) -> Response:
    return await _act(
        request,
        model,
        csrf,
        lambda loop, actor: _promote(
            loop,
            version,
            force=force,
            actor=actor,
            reason=_reason(reason, "promoted from the dashboard"),
        ),
    )


@router.post("/models/{model}/retrain")
async def retrain(
    request: Request,
    model: str,
    csrf: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    return await _act(
        request,
        model,
        csrf,
        lambda loop, actor: loop.trigger_retraining(
            _reason(reason, "requested from the dashboard"), actor=actor
        ),
    )


# -- signing in and out -----------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> HTMLResponse:
    return _page("login.html.j2", request)


@router.post("/login")
async def login(request: Request, key: Annotated[str, Form()] = "") -> Response:
    """Check the key, then open a session; the cookie carries the session's id, not the key."""
    if not same_origin(request):
        return _forbidden(request, "This request did not come from this server's pages.")
    opened = await run_in_threadpool(_sessions(request).sign_in, key)
    if opened is None:
        return _page("login.html.j2", request, 401, error="This key is unknown or revoked.")
    token, principal = opened
    previous = request.cookies.get(COOKIE)
    if previous:  # signing in again replaces the session this browser had
        await run_in_threadpool(_sessions(request).sign_out, previous)
    if not principal.has_scope("read"):
        await run_in_threadpool(_sessions(request).sign_out, token)
        error = "This key lacks the 'read' scope: the dashboard needs a read or admin key."
        return _page("login.html.j2", request, 403, error=error)
    response = RedirectResponse("/ui", status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=LIFETIME_S,
        path=COOKIE_PATH,
    )
    return response


@router.post("/logout")
async def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    """End the session on the server (the cookie alone would be worthless after this)."""
    _, token = await _posted(request, "read", None, csrf)
    if token is not None:
        await run_in_threadpool(_sessions(request).sign_out, token)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response
