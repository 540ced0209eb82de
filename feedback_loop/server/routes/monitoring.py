"""Reading a model's quality: metrics, the retrain decision, drift, estimates, segments,
events. Each computes on request; the Prometheus gauges keep what was last computed."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import AfterValidator

from feedback_loop.errors import ValidationError
from feedback_loop.retraining import decide
from feedback_loop.server.context import Context, Read
from feedback_loop.server.prom import QUALITY_WINDOW
from feedback_loop.server.responses import Reply, reply
from feedback_loop.server.schemas import EventList, SegmentList
from feedback_loop.timeutil import parse_duration

router = APIRouter(prefix="/v1/models/{model}", tags=["monitoring"])

MAX_WINDOW = timedelta(days=100 * 365)


def _checked_window(value: str) -> str:
    """Refuse, as a 422 naming ``window``, what the library cannot turn into a time range."""
    if value == "all":
        return value
    try:
        span = parse_duration(value)
    except ValidationError as exc:
        raise ValueError(exc.message) from exc
    except OverflowError as exc:
        raise ValueError("is too long: use 'all'") from exc
    if span > MAX_WINDOW:
        raise ValueError("is longer than 100 years: use 'all'")
    return value


Window = Annotated[
    str,
    AfterValidator(_checked_window),
    Query(description="A duration ending now (7d, 12h, 2w) or 'all'."),
]
Correction = Literal["none", "bonferroni", "benjamini_hochberg"]


def _segment(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise ValidationError(f"{item!r}: use key:value", field="segment")
        out[key] = value
    return out


@router.get("/metrics", summary="Quality over a window (the get_metrics dict)")
def metrics(
    model: str,
    ctx: Context,
    _: Read,
    window: Window = "7d",
    version: str | None = None,
    segment: Annotated[
        list[str] | None, Query(description="Tag filter key:value (repeatable).")
    ] = None,
) -> Reply:
    loop = ctx.loops.get(model)
    segments = _segment(segment)
    result = loop.get_metrics(window=window, version=version, segment=segments)
    if window == QUALITY_WINDOW and version is None and segments is None:
        ctx.metrics.observe_quality(model, result, loop.primary_metric)
    return reply(result)


@router.get("/should-retrain", summary="Whether the primary metric breaches a threshold")
def should_retrain(
    model: str,
    ctx: Context,
    _: Read,
    window: Window = "7d",
    threshold: float | None = None,
    min_labeled: Annotated[int, Query(ge=1)] = 100,
    metric: str | None = None,
) -> Reply:
    """The loop's threshold rule with this request's threshold, minimum and metric; a decision
    to retrain is recorded as a ``retrain_due`` event, as ``FeedbackLoop.should_retrain`` does.
    (The rule is applied here rather than through the shared loop, whose settings belong to
    every request.)"""
    loop = ctx.loops.get(model)
    result = loop.get_metrics(window=window)
    chosen = metric or loop.primary_metric
    decision = decide(
        result, metric=chosen, threshold=threshold, min_labeled=min_labeled, window=window
    )
    if decision:
        loop.record_event("retrain_due", reason=decision.reason, evidence=decision.to_dict())
    if window == QUALITY_WINDOW:
        ctx.metrics.observe_quality(model, result, loop.primary_metric)
    return reply(decision.to_dict())


@router.get("/drift", summary="Drift of features, prediction and label against the reference")
def drift(
    model: str,
    ctx: Context,
    _: Read,
    window: Window = "7d",
    reference: str = "default",
    correction: Annotated[Correction, Query(description="Multiple-testing correction.")] = "none",
) -> Reply:
    loop = ctx.loops.get(model)
    report = loop.check_drift(window=window, reference=reference, correction=correction)
    ctx.metrics.observe_drift(model, None if report.dataset is None else report.dataset.share)
    return reply(report.to_dict())


@router.get("/estimate", summary="Label-free performance estimate (binary classifiers)")
def estimate(model: str, ctx: Context, _: Read, window: Window = "7d") -> Reply:
    return reply(ctx.loops.get(model).estimate_performance(window=window))


@router.get("/segments", response_model=SegmentList, summary="Metrics per slice, worst first")
def segments(
    model: str,
    ctx: Context,
    _: Read,
    by: Annotated[list[str] | None, Query(description="Tag or feature (repeatable).")] = None,
    window: Window = "7d",
    min_support: Annotated[int, Query(ge=1)] = 30,
    metric: str | None = None,
) -> Reply:
    rows = ctx.loops.get(model).segments(
        window=window, by=by or [], metric=metric, min_support=min_support
    )
    return reply({"segments": rows})


@router.get("/events", response_model=EventList, summary="The audit trail, newest first")
def events(
    model: str,
    ctx: Context,
    _: Read,
    kind: Annotated[list[str] | None, Query(description="Only these kinds (repeatable).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Reply:
    found = ctx.loops.get(model).events(kinds=kind or None, limit=limit)
    return reply({"events": [e.to_dict() for e in found]})
