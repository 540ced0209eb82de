"""Reading a model's quality: metrics, the retrain decision, drift, estimates, segments,
concept drift, events; and setting what drift compares against. Each computes on request; the
Prometheus gauges keep what was last computed.

Reads write nothing. The evaluations the library records as events when they find something
(should-retrain, drift, estimate, segments, concept drift) answer ``GET`` with a read key and
record nothing; ``POST`` with an admin key also records what was found, as events by that key
(``api:<key name>``), which webhooks then receive.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import AfterValidator, Field

from feedback_loop.errors import ValidationError
from feedback_loop.retrain.decision import decide
from feedback_loop.server.context import Admin, Context, Evaluator, Read
from feedback_loop.server.prom import QUALITY_WINDOW
from feedback_loop.server.responses import Reply, reply
from feedback_loop.server.schemas import (
    MAX_COUNT,
    MAX_EVENT_KINDS,
    MAX_NAME_CHARS,
    MAX_NAMED_FEATURES,
    MAX_SEGMENT_BY,
    MAX_TAG_FILTERS,
    ConceptDriftOut,
    EventId,
    EventList,
    EventRequest,
    Name,
    ReferenceName,
    ReferenceOut,
    ReferenceRequest,
    SegmentList,
    VersionName,
    checked_window,
    refuse_nul,
)
from feedback_loop.stats.drift.profile import CATEGORICAL_METHODS, NUMERIC_METHODS

router = APIRouter(prefix="/v1/models/{model}", tags=["monitoring"])

Window = Annotated[
    str,
    AfterValidator(checked_window),
    Query(description="A duration ending now (7d, 12h, 2w) or 'all'."),
]
Reference = Annotated[ReferenceName, Query(description="The stored reference's name.")]
Metric = Annotated[Name | None, Query(description="A metric (default: the primary metric).")]
Count = Annotated[int, Query(ge=1, le=MAX_COUNT)]
# A name and what goes with it (key:value, feature:method): two names and a separator.
Pair = Annotated[str, Field(max_length=2 * MAX_NAME_CHARS + 1), AfterValidator(refuse_nul)]
Correction = Literal["none", "bonferroni", "benjamini_hochberg"]
# The detectors of ``feedback_loop.monitor.concept_drift.DETECTORS``, for the OpenAPI document.
Detector = Literal["adwin", "ddm", "eddm", "hddm_a", "page_hinkley"]


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


def _methods(values: list[str] | None) -> dict[str, str] | None:
    """``feature:method`` items as ``check_drift``'s ``methods`` (the last ``:`` splits, so
    feature names may hold colons)."""
    if not values:
        return None
    known = sorted({*NUMERIC_METHODS, *CATEGORICAL_METHODS})
    out: dict[str, str] = {}
    for item in values:
        feature, sep, method = item.rpartition(":")
        if not sep or not feature:
            raise ValidationError(f"{item!r}: use feature:method", field="method")
        if method not in known:
            raise ValidationError(
                f"{item!r}: the method must be one of {', '.join(known)}", field="method"
            )
        out[feature] = method
    return out


@router.get("/metrics", summary="Quality over a window (the get_metrics dict)")
def metrics(
    model: str,
    ctx: Context,
    _: Read,
    window: Window = "7d",
    version: Annotated[
        VersionName | None, Query(description="Only this version's predictions.")
    ] = None,
    segment: Annotated[
        list[Pair] | None,
        Query(max_length=MAX_TAG_FILTERS, description="Tag filter key:value (repeatable)."),
    ] = None,
) -> Reply:
    loop = ctx.loops.get(model)
    segments = _segment(segment)
    result = loop.get_metrics(window=window, version=version, segment=segments)
    if window == QUALITY_WINDOW and version is None and segments is None:
        ctx.metrics.observe_quality(model, result, loop.primary_metric)
    return reply(result)


@router.get("/should-retrain", summary="Whether the primary metric breaches a threshold")
@router.post(
    "/should-retrain", summary="Whether to retrain, recording a decision to retrain (admin)"
)
def should_retrain(
    model: str,
    ctx: Context,
    who: Evaluator,
    window: Window = "7d",
    threshold: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    min_labeled: Count = 100,
    metric: Metric = None,
) -> Reply:
    """The loop's threshold rule with this request's threshold, minimum and metric. ``POST``
    also records a decision to retrain as a ``retrain_due`` event by the calling key, as
    ``FeedbackLoop.should_retrain`` does; ``GET`` writes nothing. (The rule is applied here
    rather than through the shared loop, whose settings belong to every request.)"""
    loop = ctx.loops.get(model)
    result = loop.get_metrics(window=window)
    chosen = metric or loop.primary_metric
    decision = decide(
        result, metric=chosen, threshold=threshold, min_labeled=min_labeled, window=window
    )
    if who.record and decision:
        loop.record_event(
            "retrain_due", reason=decision.reason, evidence=decision.to_dict(), actor=who.actor
        )
    if window == QUALITY_WINDOW:
        ctx.metrics.observe_quality(model, result, loop.primary_metric)
    return reply(decision.to_dict())


@router.get("/drift", summary="Drift of features, prediction and label against the reference")
@router.post("/drift", summary="Drift against the reference, recording drifted columns (admin)")
def drift(
    model: str,
    ctx: Context,
    who: Evaluator,
    window: Window = "7d",
    reference: Reference = "default",
    correction: Annotated[Correction, Query(description="Multiple-testing correction.")] = "none",
    share_threshold: Annotated[
        float, Query(gt=0, le=1, description="Share of drifted features that is dataset drift.")
    ] = 0.5,
    method: Annotated[
        list[Pair] | None,
        Query(
            max_length=MAX_NAMED_FEATURES,
            description="A feature's test or distance, feature:method (repeatable).",
        ),
    ] = None,
) -> Reply:
    """``POST`` also records drifted columns as a ``drift_detected`` event."""
    loop = ctx.loops.get(model)
    report = loop.check_drift(
        window=window,
        reference=reference,
        methods=_methods(method),
        share_threshold=share_threshold,
        correction=correction,
        record=who.record,
        actor=who.actor,
    )
    ctx.metrics.observe_drift(model, None if report.dataset is None else report.dataset.share)
    return reply(report.to_dict())


@router.get("/estimate", summary="Label-free performance estimate (binary classifiers)")
@router.post("/estimate", summary="Label-free performance estimate, recording a breach (admin)")
def estimate(
    model: str,
    ctx: Context,
    who: Evaluator,
    window: Window = "7d",
    reference: Reference = "default",
) -> Reply:
    """Scores are calibrated on the named reference when it has labeled scores
    (``calibrated`` says whether they were). ``POST`` also records an estimate breaching the
    model's threshold as an ``estimate_breach`` event."""
    found = ctx.loops.get(model).estimate_performance(
        window=window, reference=reference, record=who.record, actor=who.actor
    )
    return reply(found)


@router.post(
    "/reference",
    response_model=ReferenceOut,
    summary="Set a reference from a window of logged predictions (data uploads: Python API only)",
)
def set_reference(model: str, body: ReferenceRequest, ctx: Context, who: Admin) -> Reply:
    """Profiles the window's features, predictions and labels once; drift checks and estimates
    compare against it. A reference from training data stays with ``FeedbackLoop.set_reference``
    next to the database: a training set is too large to send as JSON, and only its profile is
    kept."""
    stored = ctx.loops.get(model).set_reference(
        window=body.window, version=body.version, name=body.name, actor=who.actor
    )
    return reply(stored)


@router.get(
    "/concept-drift",
    response_model=ConceptDriftOut,
    summary="Change points in the error rate (streaming detector)",
)
@router.post(
    "/concept-drift",
    response_model=ConceptDriftOut,
    summary="Change points in the error rate, recording a detected change (admin)",
)
def concept_drift(
    model: str,
    ctx: Context,
    who: Evaluator,
    window: Window = "30d",
    detector: Annotated[Detector, Query(description="The streaming detector.")] = "adwin",
) -> Reply:
    """``POST`` also records a detected change as a ``concept_drift`` event, as in-process."""
    found = ctx.loops.get(model).detect_concept_drift(
        window=window, detector=detector, record=who.record, actor=who.actor
    )
    return reply(found)


MAX_SEGMENTS = 1_000  # slices in one answer: a continuous feature has one per row


@router.get("/segments", response_model=SegmentList, summary="Metrics per slice, worst first")
@router.post(
    "/segments", response_model=SegmentList, summary="Metrics per slice, recording weak ones"
)
def segments(
    model: str,
    ctx: Context,
    who: Evaluator,
    by: Annotated[
        list[Name] | None,
        Query(max_length=MAX_SEGMENT_BY, description="Tag or feature (repeatable)."),
    ] = None,
    window: Window = "7d",
    min_support: Count = 30,
    metric: Metric = None,
    limit: Annotated[int, Query(ge=1, le=MAX_SEGMENTS, description="Slices returned.")] = 100,
) -> Reply:
    """``POST`` also records slices breaching the model's threshold as a ``weak_segments``
    event."""
    rows = ctx.loops.get(model).segments(
        window=window,
        by=by or [],
        metric=metric,
        min_support=min_support,
        limit=limit,
        record=who.record,
        actor=who.actor,
    )
    return reply({"segments": rows})


@router.get("/events", response_model=EventList, summary="The audit trail, newest first")
def events(
    model: str,
    ctx: Context,
    _: Read,
    kind: Annotated[
        list[Name] | None,
        Query(max_length=MAX_EVENT_KINDS, description="Only these kinds (repeatable)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Reply:
    found = ctx.loops.get(model).events(kinds=kind or None, limit=limit)
    return reply({"events": [e.to_dict() for e in found]})


@router.post("/events", status_code=201, response_model=EventId, summary="Record an event")
def record_event(model: str, body: EventRequest, ctx: Context, who: Admin) -> Reply:
    """For decisions made outside feedback-loop (a manual review, a deploy) to sit in the same
    audit trail; the actor is the calling key."""
    version = None if body.version is None else str(body.version)
    event_id = ctx.loops.get(model).record_event(
        body.kind, reason=body.reason, evidence=body.evidence, version=version, actor=who.actor
    )
    return reply({"id": event_id}, 201)
