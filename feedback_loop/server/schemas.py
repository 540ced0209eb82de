"""Request and response bodies of the REST API.

Request models check the shape (which keys, which JSON types); the library checks the meaning
(labels, times, the model's task) and names the row and field of any problem.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from feedback_loop.core.limits import (
    MAX_ALIAS_LENGTH,
    MAX_KIND_LENGTH,
    MAX_PRIMARY_METRIC_LENGTH,
    MAX_REASON_LENGTH,
    MAX_REFERENCE_NAME_LENGTH,
    MAX_VERSION_LENGTH,
    check_bounded,
    check_prediction_id,
)
from feedback_loop.core.naming import MAX_MODEL_NAME, check_model_name
from feedback_loop.core.timeutil import parse_duration
from feedback_loop.errors import ValidationError

Task = Literal["binary", "multiclass", "regression"]
# Numbers the database stores in 32-bit columns (versions, key ids), and epoch seconds up to the
# last second Python's datetime can hold (9999-12-31).
Version = Annotated[int, Field(ge=1, le=2**31 - 1)]
EpochSeconds = Annotated[float, Field(ge=0, le=253_402_300_799)]
Timestamp = str | EpochSeconds
MAX_WINDOW = timedelta(days=100 * 365)
# Bounds on what one request may name, ask the server to compute, or have it store; past them,
# a 422 names the field. Windows are bounded by ``MAX_WINDOW``, pages of events by their
# ``limit``, request bodies by ``Settings.max_body_bytes``.
# A feature, tag or metric name (the columns' widths); versions, aliases, reference names and
# the audit trail's fields have the limits of ``feedback_loop.core.limits``.
MAX_NAME_CHARS = 200
MAX_EVIDENCE_CHARS = 100_000  # an event's evidence, as JSON
MAX_TAG_FILTERS = 20  # segment=key:value filters in one request
MAX_SEGMENT_BY = 5  # columns one segments request slices by (their product is the slice count)
MAX_NAMED_FEATURES = 1000  # feature:method choices in one drift request
MAX_EVENT_KINDS = 100  # kinds one events request filters on
MAX_KEY_MODELS = 1000  # models one API key may be limited to
MAX_COUNT = 10**9  # min_labeled, min_support


def checked_window(value: str) -> str:
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


def refuse_nul(value: str) -> str:
    """PostgreSQL text cannot hold NUL: refused as input (422), not by the database (500)."""
    if "\x00" in value:
        raise ValueError("cannot contain the NUL character")
    return value


def _string_or_integer(value: Any) -> Any:
    """Versions are strings (integers are taken as their digits); JSON's true or 1.5 would
    otherwise be taken as 1 and stored as "1"."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"must be a string or an integer, got {type(value).__name__}")
    return value


def library_rule(check: Callable[..., Any], **options: Any) -> Any:
    """A check of ``feedback_loop.core.limits`` as a validator: the API refuses what the
    library refuses, with the library's message (a 422 naming the field)."""

    def validate(value: Any) -> Any:
        try:
            check(value, **options)
        except ValidationError as exc:
            raise ValueError(exc.message) from None
        return value

    return validate


def bounded(max_length: int, *, min_length: int = 1) -> Any:
    """A string of ``min_length`` to ``max_length`` characters without NUL or lone surrogates
    (``core.limits.check_bounded``), its limit shown in the OpenAPI document."""
    return (
        AfterValidator(
            library_rule(check_bounded, field="", max_length=max_length, min_length=min_length)
        ),
        Field(json_schema_extra={"minLength": min_length, "maxLength": max_length}),
    )


def _time_value(value: Any) -> Any:
    """A time is an ISO string or epoch seconds; its range is checked by the library, with the
    same message on every path."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("must be an ISO-8601 string or a number of epoch seconds")
    return value


NulFree = Annotated[str, AfterValidator(refuse_nul)]
StringOrInteger = Annotated[str | int, BeforeValidator(_string_or_integer)]
PredictionId = Annotated[str | int, BeforeValidator(library_rule(check_prediction_id))]
EventTime = Annotated[str | float, BeforeValidator(_time_value)]
DurationText = Annotated[str, AfterValidator(checked_window)]
Name = Annotated[str, Field(max_length=MAX_NAME_CHARS), AfterValidator(refuse_nul)]
Reason = Annotated[str, *bounded(MAX_REASON_LENGTH, min_length=0)]
VersionName = Annotated[str, *bounded(MAX_VERSION_LENGTH)]
AliasName = Annotated[str, *bounded(MAX_ALIAS_LENGTH)]
ReferenceName = Annotated[str, *bounded(MAX_REFERENCE_NAME_LENGTH)]
ModelName = Annotated[
    str, Field(max_length=MAX_MODEL_NAME), AfterValidator(library_rule(check_model_name))
]


def _named_id_to_prediction_id(data: Any) -> Any:
    """``{"game_id": "g1", ...}`` means ``{"prediction_id": "g1", ...}`` when it is the only
    ``*_id`` key; with several, the extra keys are refused by name."""
    if not isinstance(data, dict) or "prediction_id" in data:
        return data
    named = [k for k in data if isinstance(k, str) and k.endswith("_id")]
    if len(named) != 1:
        return data
    out = dict(data)
    out["prediction_id"] = out.pop(named[0])
    return out


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IdKeyed(Strict):
    @model_validator(mode="before")
    @classmethod
    def rename_id_key(cls, data: Any) -> Any:
        return _named_id_to_prediction_id(data)


class PredictionRow(IdKeyed):
    """One prediction; the id is ``prediction_id`` or any single ``*_id`` key (``game_id``)."""

    prediction_id: PredictionId | None = None
    timestamp: EventTime | None = None
    prediction: Any = Field(
        description="A label, a number, or a dict such as {'label': 1, 'score': 0.9}."
    )
    features: dict[str, Any] | None = None
    actual: Any = None
    version: StringOrInteger | None = None
    tags: dict[str, Any] | None = None
    latency_ms: float | None = None


class PredictionRows(Strict):
    rows: list[PredictionRow]


class OutcomeRow(IdKeyed):
    """The ground truth of one prediction (``actual`` and/or ``feedback``)."""

    prediction_id: PredictionId
    actual: Any = None
    feedback: Any = None
    source: str | None = Field(default=None, description="natural, feedback, review or business")
    timestamp: EventTime | None = None


class OutcomeRows(Strict):
    rows: list[OutcomeRow]


class ModelDeclaration(Strict):
    task: Task | None = None
    label_key: Name | None = None
    score_key: Name | None = None
    positive_label: Any = None
    negative_label: Any = None
    primary_metric: Annotated[str, *bounded(MAX_PRIMARY_METRIC_LENGTH)] | None = None


class AliasMove(Strict):
    version: Version | None = Field(description="The version to point at; null removes the alias.")
    reason: Reason = "set through the API"
    force: bool = False  # required to make a version the gate rejected the champion


class RetrainRequest(Strict):
    reason: Reason = "retraining requested through the API"


class PromoteRequest(Strict):
    version: Version
    reason: Reason = "promoted through the API"
    force: bool = False  # required to promote a version the gate rejected


class RollbackRequest(Strict):
    reason: Reason = "rolled back through the API"


class ReferenceRequest(Strict):
    window: DurationText | tuple[Timestamp, Timestamp] = Field(
        description="The logged predictions to profile: a duration ending now (30d), 'all', "
        "or [start, end] as ISO times or epoch seconds."
    )
    version: VersionName | Version | None = Field(
        default=None, description="Only this version's predictions; the reference is its own."
    )
    name: ReferenceName = "default"


class WatchRequest(Strict):
    min_samples: Annotated[int, Field(ge=1, le=1_000_000)] = 200
    margin: Annotated[float, Field(allow_inf_nan=False)] = 0.0
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.01
    auto_rollback: bool = True


class EventRequest(Strict):
    kind: Annotated[str, *bounded(MAX_KIND_LENGTH)]
    reason: Reason
    evidence: dict[str, Any] | None = None
    version: VersionName | Version | None = None

    @field_validator("evidence")
    @classmethod
    def bounded_evidence(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value, default=str)) > MAX_EVIDENCE_CHARS:
            raise ValueError(f"is over {MAX_EVIDENCE_CHARS:,} characters as JSON")
        return value


class KeyRequest(Strict):
    name: str
    scopes: Annotated[list[Literal["ingest", "read", "admin"]], Field(max_length=3)]
    models: Annotated[list[ModelName], Field(max_length=MAX_KEY_MODELS)] | None = None


# -- responses (for the OpenAPI document) ---------------------------------------------------


class LogResultOut(BaseModel):
    inserted: int
    retried: int
    outcomes: int
    joined: int
    prediction_ids: list[str]


class OutcomeResultOut(BaseModel):
    stored: int
    matched: int
    unmatched: int


class PredictionOut(BaseModel):
    prediction_id: str
    timestamp: str
    prediction: Any
    features: dict[str, Any] | None
    version: str | None
    tags: dict[str, Any] | None
    latency_ms: float | None
    labeled_at: str | None
    actual: Any


class UnmatchedOut(BaseModel):
    unmatched: int


class ModelOut(BaseModel):
    model: str
    task: Task | None


class ModelListItem(BaseModel):
    name: str
    task: Task | None


class ModelList(BaseModel):
    models: list[ModelListItem]


class EventOut(BaseModel):
    id: int
    time: str
    kind: str
    model: str | None
    version: str | None
    actor: str
    reason: str
    evidence: dict[str, Any]


class EventList(BaseModel):
    events: list[EventOut]


class EventReply(BaseModel):
    event: EventOut


class EventId(BaseModel):
    id: int


class ReferenceOut(BaseModel):
    name: str
    version: str
    rows: int
    source: str


class ConceptDriftOut(BaseModel):
    detector: str
    n: int
    mean_error: float | None
    change_points: list[str]
    mean_error_before_last: float | None
    mean_error_after_last: float | None


class VersionOut(BaseModel):
    version: int
    created_at: str
    created_by: str
    sha256: str
    train_rows: int | None
    metrics: dict[str, Any]


class VersionList(BaseModel):
    versions: list[VersionOut]


class AliasMap(BaseModel):
    aliases: dict[str, int]


class AliasOut(BaseModel):
    alias: str
    version: int | None
    previous: int | None


class AliasMoveOut(BaseModel):
    alias: str
    version: int | None
    previous_version: int | None
    actor: str
    reason: str
    time: str


class AliasHistory(BaseModel):
    history: list[AliasMoveOut]


class ChampionOut(BaseModel):
    champion: int


class VerdictOut(BaseModel):
    regressed: bool
    ready: bool
    new_error: float | None
    previous_error: float | None
    promised_error: float | None
    p_value: float | None
    promise_p_value: float | None
    n_new: int
    n_previous: int
    reason: str


class WatchOut(BaseModel):
    verdict: VerdictOut | None = Field(description="null when no promotion awaits judgement.")


class SegmentList(BaseModel):
    segments: list[dict[str, Any]]


class ErrorDetail(BaseModel):
    type: str
    message: str
    field: str | None
    row: int | None


class ErrorOut(BaseModel):
    error: ErrorDetail


class KeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    models: list[str] | None
    created_at: str
    revoked_at: str | None
    last_used_at: str | None


class NewKeyOut(KeyOut):
    key: str = Field(description="The secret: shown once, never stored.")


class KeyList(BaseModel):
    keys: list[KeyOut]
