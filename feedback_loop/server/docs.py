"""``/docs``: the API reference as one server-rendered page, readable offline.

FastAPI's default pages load Swagger UI or ReDoc from a CDN, so they are blank on a machine
without internet access (where a self-hosted server often runs). This page is rendered from the
same OpenAPI schema (``/openapi.json`` is still served): every route with its method, summary,
parameters, request body and responses, then every schema with its fields. No script, no
stylesheet or font from elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

router = APIRouter(include_in_schema=False)
_env = Environment(
    loader=PackageLoader("feedback_loop.server", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
)


def inline_code(text: str) -> Markup:
    """Descriptions are Markdown-ish: `code` spans become <code>, everything else is escaped."""
    parts = str(text).split("`")
    if len(parts) % 2 == 0:  # an unmatched backtick: show the text as written
        return escape(text)
    return Markup("").join(
        Markup("<code>{}</code>").format(part) if i % 2 else escape(part)
        for i, part in enumerate(parts)
    )


_env.filters["code"] = inline_code
METHODS = ("get", "post", "put", "patch", "delete")
REF_PREFIX = "#/components/schemas/"


@dataclass
class Field:
    name: str
    type: str
    required: bool
    description: str = ""
    where: str = ""  # path, query, header (parameters only)


@dataclass
class Operation:
    method: str
    path: str
    summary: str
    description: str
    anchor: str
    parameters: list[Field] = field(default_factory=list)
    body: str | None = None  # the request body's schema name (or type)
    responses: list[tuple[str, str, str | None]] = field(default_factory=list)


def type_of(schema: dict[str, Any]) -> str:
    """A short, readable type: ``PredictionRows``, ``array of string``, ``integer | null``."""
    if "$ref" in schema:
        return str(schema["$ref"]).removeprefix(REF_PREFIX)
    for combined in ("anyOf", "oneOf", "allOf"):
        if combined in schema:
            return " | ".join(type_of(s) for s in schema[combined])
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {type_of(schema['additionalProperties'])}"
    return str(kind or "any")


def _content_schema(content: dict[str, Any] | None) -> str | None:
    for media in (content or {}).values():
        if "schema" in media:
            return type_of(media["schema"])
    return None


def operations(spec: dict[str, Any]) -> list[Operation]:
    """Every route and method of the schema, in the schema's order."""
    found = []
    for path, item in spec.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            parameters = [
                Field(
                    name=p["name"],
                    type=type_of(p.get("schema", {})),
                    required=bool(p.get("required")),
                    description=p.get("description", ""),
                    where=p.get("in", ""),
                )
                for p in op.get("parameters", [])
            ]
            body = op.get("requestBody")
            found.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    summary=op.get("summary", ""),
                    description=op.get("description", ""),
                    anchor=op.get("operationId", f"{method}-{path}"),
                    parameters=parameters,
                    body=None if body is None else _content_schema(body.get("content")),
                    responses=[
                        (code, r.get("description", ""), _content_schema(r.get("content")))
                        for code, r in op.get("responses", {}).items()
                    ],
                )
            )
    return found


def schemas(spec: dict[str, Any]) -> list[tuple[str, str, list[Field]]]:
    """Every component schema: its name, description and fields."""
    found = []
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        required = set(schema.get("required", []))
        fields = [
            Field(prop, type_of(sub), prop in required, sub.get("description", ""))
            for prop, sub in schema.get("properties", {}).items()
        ]
        found.append((name, schema.get("description", ""), fields))
    return found


def render(spec: dict[str, Any]) -> str:
    """The page for an OpenAPI schema."""
    described = schemas(spec)
    return _env.get_template("api.html.j2").render(
        info=spec.get("info", {}),
        security=list(spec.get("components", {}).get("securitySchemes", {}).items()),
        operations=operations(spec),
        schemas=described,
        schema_names={name for name, _, _ in described},
    )


@router.get("/docs", response_class=HTMLResponse)
def docs(request: Request) -> HTMLResponse:
    """The API reference (no script, no CDN: it works offline)."""
    return HTMLResponse(render(request.app.openapi()))
