"""Dashboard pages under ``/ui``: models overview, a model's page (the report's charts, live),
and the admin actions (retrain, promote, roll back) for admin keys.

The browser signs in with an API key, kept in an HttpOnly, SameSite=Strict cookie that the API's
authentication also accepts; the strict cookie is what keeps other sites from posting the
action forms. Every page is rendered on the server with inline SVG: no script, no CDN.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import PackageLoader
from starlette.concurrency import run_in_threadpool

from feedback_loop.errors import FeedbackLoopError
from feedback_loop.report.build import environment, report_context

COOKIE = "fl_key"  # read by the server's authentication, under /ui only
router = APIRouter(prefix="/ui", include_in_schema=False)
_env = environment(PackageLoader("feedback_loop.dashboard", "templates"))


def _principal(request: Request) -> Any:
    return request.scope.get("state", {}).get("principal")


def _is_admin(request: Request) -> bool:
    principal = _principal(request)
    return principal is not None and principal.has_scope("admin")


def _page(template: str, request: Request, status: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(template).render(request=request, admin=_is_admin(request), **context)
    return HTMLResponse(html, status_code=status)


def _loops(request: Request) -> Any:
    return request.app.state.context.loops


def _overview_rows(loops: Any) -> list[dict[str, Any]]:
    rows = []
    for name, task in loops.names():
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
    rows = await run_in_threadpool(_overview_rows, _loops(request))
    return _page("overview.html.j2", request, rows=rows)


@router.get("/models/{model}", response_class=HTMLResponse)
async def model_page(request: Request, model: str, period: str = "1d") -> HTMLResponse:
    def build() -> dict[str, Any]:
        loop = _loops(request).get(model)
        context = report_context(loop, period=period)
        context["versions"] = [v.version for v in loop.versions()]
        context["aliases"] = loop.aliases()
        return context

    try:
        context = await run_in_threadpool(build)
    except FeedbackLoopError as exc:
        return _page("message.html.j2", request, 404, title="Not found", message=str(exc))
    return _page("model.html.j2", request, **context)


async def _act(request: Request, model: str, action: Any) -> Response:
    if not _is_admin(request):
        return _page(
            "message.html.j2",
            request,
            403,
            title="Forbidden",
            message="This action needs an API key with the admin scope.",
        )
    principal = _principal(request)
    actor = f"dashboard:{getattr(principal, 'name', 'anonymous')}"
    try:
        await run_in_threadpool(action, _loops(request).get(model), actor)
    except FeedbackLoopError as exc:
        return _page("message.html.j2", request, 422, title="Not done", message=str(exc))
    return RedirectResponse(f"/ui/models/{model}", status_code=303)


@router.post("/models/{model}/rollback")
async def rollback(
    request: Request, model: str, reason: Annotated[str, Form()] = "rolled back from the dashboard"
) -> Response:
    return await _act(request, model, lambda loop, actor: loop.rollback(actor=actor, reason=reason))


@router.post("/models/{model}/promote")
async def promote(
    request: Request,
    model: str,
    version: Annotated[int, Form()],
    reason: Annotated[str, Form()] = "promoted from the dashboard",
) -> Response:
    return await _act(
        request, model, lambda loop, actor: loop.promote(version, actor=actor, reason=reason)
    )


@router.post("/models/{model}/retrain")
async def retrain(
    request: Request, model: str, reason: Annotated[str, Form()] = "requested from the dashboard"
) -> Response:
    return await _act(
        request, model, lambda loop, actor: loop.trigger_retraining(reason, actor=actor)
    )


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> HTMLResponse:
    return _page("login.html.j2", request)


@router.post("/login")
async def login(request: Request, key: Annotated[str, Form()]) -> Response:
    response = RedirectResponse("/ui", status_code=303)
    response.set_cookie(
        COOKIE,
        key.strip(),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=12 * 3600,
    )
    return response


@router.post("/logout")
async def logout() -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response
