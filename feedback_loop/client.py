"""``Client``: the ``FeedbackLoop`` API, spoken to a feedback-loop server over HTTP.

Code written against :class:`feedback_loop.FeedbackLoop` runs against a server by changing its
constructor line only: the methods take the same arguments and return the same objects
(``LogResult``, ``OutcomeResult``, ``RetrainDecision``, ``WatchVerdict``, ``Event``, plain
dicts for metrics). Where the server publishes less than the library returns in-process, the
client returns the JSON form: ``check_drift`` the ``DriftReport.to_dict()`` dict, ``versions``
dicts of the published fields. The registry's model loading has no endpoint, and
``set_reference`` takes a window of logged predictions only: training data (``features``) is
uploaded through the Python API.

>>> client = Client("http://127.0.0.1:8000", model_name="churn", api_key="...")  # doctest: +SKIP
>>> client.log_prediction(customer_id="c1", prediction=1, actual=1).inserted  # doctest: +SKIP
1

Retries are safe. Every prediction gets its id here, before the first attempt (a random
128-bit hex id when none is given), so a batch re-sent after a timeout is an identical copy that
the server accepts as a retry and never stores twice. Connection errors, timeouts, 429 and 5xx
are retried with capped exponential backoff and jitter; a 4xx answer is never retried. Requests
that change state and carry no such id (``trigger_retraining``, ``promote``, ``rollback``,
``set_alias``, ``set_reference``, ``watch_champion``, ``record_event``, and the evaluations that
record what they find: ``should_retrain``, ``check_drift``, ``estimate_performance``,
``segments``, ``detect_concept_drift`` unless given ``record=False``) are retried only when
the server cannot have acted on them: the connection was refused, or it answered 429 or 503.

Errors are the library's own: 422 raises :class:`~feedback_loop.ValidationError` (with the field
and the row, counted from the start of what you passed), 409
:class:`~feedback_loop.DuplicatePredictionError` (or :class:`~feedback_loop.RejectedVersionError`
when promoting a version the gate rejected), 404 :class:`~feedback_loop.UnknownModelError`,
401 and 403 :class:`AuthError`, anything else :class:`ServerError`. No message carries the API
key.
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import fields
from datetime import UTC, date, datetime, timedelta
from typing import Any, NoReturn

import httpx
import numpy as np
import pandas as pd

from feedback_loop.api import LoopAPI
from feedback_loop.collect.batches import RESERVED, id_column, to_frame
from feedback_loop.collect.logger import single_id
from feedback_loop.collect.recording import LogResult
from feedback_loop.core.limits import MAX_ALIAS_LENGTH, check_bounded
from feedback_loop.core.naming import check_model_name
from feedback_loop.core.tasks import TASKS
from feedback_loop.core.timeutil import Window, parse_duration
from feedback_loop.deploy.watch_verdict import WatchVerdict
from feedback_loop.errors import (
    DuplicatePredictionError,
    FeedbackLoopError,
    RejectedVersionError,
    UnknownModelError,
    ValidationError,
)
from feedback_loop.retrain.decision import RetrainDecision
from feedback_loop.store.events import Event
from feedback_loop.store.outcomes import OutcomeResult

__all__ = ["AuthError", "Client", "ServerError"]

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_NOT_ACTED_STATUS = frozenset({429, 503})  # the server refused before doing anything
_MAX_RETRY_AFTER_S = 30.0
_MAX_EVENTS = 1000  # the most one events request may ask for


class AuthError(FeedbackLoopError):
    """The server refused the API key: missing or unknown (401), or without the scope (403)."""

    def __init__(self, message: str, *, status_code: int):
        self.status_code = status_code
        super().__init__(message)


class ServerError(FeedbackLoopError):
    """The server failed, answered something unexpected, or could not be reached.

    ``status_code`` is the HTTP status, or ``None`` when no answer came (after every retry).
    """

    def __init__(self, message: str, *, status_code: int | None = None):
        self.status_code = status_code
        super().__init__(message)


class Client(LoopAPI):
    """Log predictions and outcomes for one model on a feedback-loop server, and read its quality.

    Parameters
    ----------
    url:
        The server's base URL, e.g. ``http://127.0.0.1:8000``.
    model_name:
        The model this client logs for; the server creates it on the first write. Without one,
        only :meth:`health`, :meth:`ready` and :meth:`models` can be called.
    retrain_threshold:
        ``should_retrain()`` is true when the primary metric breaches it.
    api_key:
        Sent as ``Authorization: Bearer <key>``; defaults to ``$FEEDBACK_LOOP_API_KEY``.
    timeout:
        Seconds allowed for each request (connect, send, wait, read).
    batch_size:
        ``log_predictions`` and ``log_outcomes`` send this many rows per request; each request
        is stored whole or not at all.
    retries:
        How many times a failed request is tried again (0: never).
    task, label_key, score_key, positive_label, negative_label, primary_metric:
        Declared for the model as with ``FeedbackLoop``; sent (``PUT /v1/models/{model}``,
        which needs an ``admin`` key) before the first write. Leave them out with a key that
        may only ingest: the first prediction settles the task.
    window, min_labeled:
        The defaults of ``should_retrain``, as with ``FeedbackLoop``.
    backoff:
        Base of the exponential backoff in seconds (the n-th retry waits up to
        ``backoff * 2**n``, at most 5 s, or what a 429's ``Retry-After`` asks).
    transport:
        An ``httpx`` transport to send through instead of the network (tests, proxies).
    """

    def __init__(
        self,
        url: str,
        model_name: str | None = None,
        retrain_threshold: float | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 10.0,
        batch_size: int = 5000,
        retries: int = 5,
        task: str | None = None,
        label_key: str | None = None,
        score_key: str | None = None,
        positive_label: Any = None,
        negative_label: Any = None,
        primary_metric: str | None = None,
        window: str | timedelta = "7d",
        min_labeled: int = 100,
        backoff: float = 0.2,
        transport: httpx.BaseTransport | None = None,
    ):
        if model_name is not None:
            check_model_name(model_name)
        if task is not None and task not in TASKS:
            raise ValidationError(f"must be one of {', '.join(TASKS)}", field="task")
        if retrain_threshold is not None and (
            isinstance(retrain_threshold, bool) or not isinstance(retrain_threshold, int | float)
        ):
            raise ValidationError("must be a number", field="retrain_threshold")
        if min_labeled < 1:
            raise ValidationError("must be at least 1", field="min_labeled")
        if batch_size < 1:
            raise ValidationError("must be at least 1", field="batch_size")
        if retries < 0:
            raise ValidationError("cannot be negative", field="retries")
        parse_duration(window)
        self.url = url.rstrip("/")
        self.model_name = model_name
        self.retrain_threshold = retrain_threshold
        self.window = window
        self.min_labeled = min_labeled
        self.batch_size = batch_size
        self.retries = retries
        self.backoff = backoff
        self._api_key = api_key if api_key is not None else os.environ.get("FEEDBACK_LOOP_API_KEY")
        self._declared = {
            name: value
            for name, value in (
                ("task", task),
                ("label_key", label_key),
                ("score_key", score_key),
                ("positive_label", positive_label),
                ("negative_label", negative_label),
                ("primary_metric", primary_metric),
            )
            if value is not None
        }
        headers = {"Accept": "application/json", "User-Agent": "feedback-loop-client"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )
        self._model_ready = False
        self._lock = threading.Lock()

    # -- plumbing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r}, model_name={self.model_name!r})"

    def _model_path(self, suffix: str = "") -> str:
        if self.model_name is None:
            raise ValidationError("this client was made without a model_name", field="model_name")
        return f"/v1/models/{_quote(self.model_name)}{suffix}"

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: Any = None,
        safe: bool = True,
        row_offset: int = 0,
        absent: str | None = None,
    ) -> Any:
        """Send one request, retrying what may be retried; the decoded JSON answer.

        ``safe`` requests may be repeated whatever happened to an earlier attempt; the others
        only when the earlier attempt cannot have reached the application. A 404 naming the
        field ``absent`` answers None (an unknown id, not an unknown model).
        """
        content = None if body is None else _encode(body)
        query = None if params is None else httpx.QueryParams(tuple(params))
        headers = None if content is None else {"Content-Type": "application/json"}
        attempt = 0
        while True:
            delay: float | None = None
            try:
                response = self._http.request(
                    method, path, params=query, content=content, headers=headers
                )
            except httpx.TransportError as exc:
                unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if attempt >= self.retries or not (safe or unsent):
                    raise ServerError(
                        f"{method} {path}: no answer from {self.url} after {attempt + 1} "
                        f"attempt(s) ({type(exc).__name__})"
                    ) from None
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return response.json() if response.content else None
                if status == 404 and absent is not None and _error_field(response) == absent:
                    return None
                retryable = status in (_RETRY_STATUS if safe else _NOT_ACTED_STATUS)
                if not retryable or attempt >= self.retries:
                    self._raise_for(response, method, path, row_offset)
                delay = _retry_after(response)
            time.sleep(self._backoff(attempt) if delay is None else delay)
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        """Full jitter: spreads retries from many clients after a shared outage."""
        return random.uniform(0.0, min(5.0, self.backoff * 2**attempt))

    def _scrub(self, text: str) -> str:
        if self._api_key and self._api_key in text:
            return text.replace(self._api_key, "***")
        return text

    def _raise_for(
        self, response: httpx.Response, method: str, path: str, row_offset: int
    ) -> NoReturn:
        """The library's exception for an error answer (the contract's ``{"error": {...}}``)."""
        status = response.status_code
        detail: dict[str, Any] = {}
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            detail = payload["error"]
        elif isinstance(payload, dict) and "detail" in payload:
            detail = {"message": json.dumps(payload["detail"], default=str)}
        message = self._scrub(str(detail.get("message") or response.text[:500] or "no details"))
        field = detail.get("field")
        row = detail.get("row")
        if isinstance(row, int) and not isinstance(row, bool):
            row += row_offset
        else:
            row = None
        if status == 422:
            if row_offset:
                message += f" (the {row_offset} rows before this request's batch were stored)"
            raise ValidationError(message, field=None if field is None else str(field), row=row)
        if status == 413:
            raise ValidationError(
                f"the request is too large for the server ({message}): lower batch_size",
                field=None if field is None else str(field),
                row=row if row is not None else (row_offset or None),
            )
        if status == 409 and detail.get("type") == "rejected_version":
            version, verdict = detail.get("version"), detail.get("verdict")
            if isinstance(version, int) and isinstance(verdict, str):
                raise RejectedVersionError(version, self._scrub(verdict))
            rejected = RejectedVersionError(0, message)  # an older server: the sentence only
            rejected.args = (message,)
            raise rejected
        if status == 409:
            ids = detail.get("prediction_ids")
            error = DuplicatePredictionError(
                self.model_name or "", [str(i) for i in ids] if isinstance(ids, list) else []
            )
            error.args = (message,)
            raise error
        if status == 404:
            raise UnknownModelError(message)
        if status in (401, 403):
            raise AuthError(f"{method} {path}: {status} {message}", status_code=status)
        raise ServerError(f"{method} {path}: {status} {message}", status_code=status)

    def _ensure_model(self) -> None:
        """Send the declared task settings once, before the first write: a declaration must
        reach the server before the first prediction settles the task. Without one, the first
        write creates the model (declaring needs an ``admin`` key; logging only ``ingest``)."""
        if self._model_ready:
            return
        with self._lock:
            if not self._model_ready:
                if self._declared:
                    self._request("PUT", self._model_path(), body=self._declared)
                self._model_ready = True

    # -- service -----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """The server's liveness answer (``GET /healthz``)."""
        result: dict[str, Any] = self._request("GET", "/healthz")
        return result

    def ready(self) -> dict[str, Any]:
        """The server's readiness answer (``GET /readyz``): its database is reachable."""
        result: dict[str, Any] = self._request("GET", "/readyz")
        return result

    def models(self) -> list[dict[str, Any]]:
        """Every model the server knows, with its task settings."""
        models: list[dict[str, Any]] = self._request("GET", "/v1/models")["models"]
        return models

    @property
    def task(self) -> str | None:
        """The model's task, once declared or inferred."""
        for model in self.models():
            if model.get("name") == self.model_name:
                task: str | None = model.get("task")
                return task
        return None

    # -- logging -----------------------------------------------------------------------------

    def log_prediction(
        self,
        prediction_id: str | None = None,
        *,
        prediction: Any,
        features: dict[str, Any] | None = None,
        actual: Any = None,
        timestamp: Any = None,
        version: str | int | None = None,
        tags: dict[str, Any] | None = None,
        latency_ms: float | None = None,
        **id_keyword: Any,
    ) -> LogResult:
        """Log one prediction (and, optionally, its actual), as ``FeedbackLoop.log_prediction``.

        The id is ``prediction_id`` or any single ``*_id`` keyword; one is made here when none
        is given, so a retry is an identical re-send.
        """
        pid = single_id(prediction_id, id_keyword) or uuid.uuid4().hex
        row: dict[str, Any] = {
            "prediction_id": pid,
            "prediction": _jsonable(prediction, field="prediction"),
        }
        for name, value in (
            ("features", features),
            ("actual", actual),
            ("timestamp", timestamp),
            ("version", version),
            ("tags", tags),
            ("latency_ms", latency_ms),
        ):
            if value is not None:
                row[name] = _jsonable(value, field=name)
        self._ensure_model()
        return _log_result(self._request("POST", self._model_path("/prediction"), body=row))

    def log_predictions(self, rows: Any) -> LogResult:
        """Log many predictions: a list of dicts, a DataFrame or an Arrow table.

        Columns as with ``FeedbackLoop.log_predictions``. Rows go in requests of ``batch_size``,
        each stored whole or not at all: when one fails, the batches before it stay stored (the
        error's row counts from the start of ``rows``, so re-sending ``rows`` is safe — stored
        ids come back as ``retried``). Rows without an id get one here.
        """
        frame = to_frame(rows)
        if len(frame) == 0:
            return LogResult(0, 0, 0, 0, [])
        if "prediction" not in frame:
            raise ValidationError("is required", field="prediction", row=0)
        frame = _with_ids(frame)
        features = _feature_columns(frame)
        _check_finite(frame)
        self._ensure_model()
        counts = {"inserted": 0, "retried": 0, "outcomes": 0, "joined": 0}
        ids: list[str] = []
        for offset, part in self._slices(frame):
            body = self._request(
                "POST",
                self._model_path("/predictions"),
                body={"rows": _records(part, offset, features=features)},
                row_offset=offset,
            )
            for name in counts:
                counts[name] += int(body[name])
            ids.extend(str(p) for p in body["prediction_ids"])
        return LogResult(**counts, prediction_ids=ids)

    def log_outcome(
        self,
        prediction_id: str | None = None,
        actual: Any = None,
        *,
        source: str = "natural",
        timestamp: Any = None,
        feedback: Any = None,
        **id_keyword: Any,
    ) -> OutcomeResult:
        """Log the ground truth of one prediction, as ``FeedbackLoop.log_outcome``.

        A retried outcome may be kept twice in the outcome history; both copies carry the same
        actual, so the current actual and every metric are unchanged.
        """
        pid = single_id(prediction_id, id_keyword)
        if pid is None:
            raise ValidationError("is required", field="prediction_id")
        row: dict[str, Any] = {"prediction_id": pid, "source": source}
        for name, value in (("actual", actual), ("feedback", feedback), ("timestamp", timestamp)):
            if value is not None:
                row[name] = _jsonable(value, field=name)
        self._ensure_model()
        return _outcome_result(self._request("POST", self._model_path("/outcome"), body=row))

    def log_outcomes(self, rows: Any) -> OutcomeResult:
        """Log many outcomes (``prediction_id``, ``actual`` and/or ``feedback``, optional
        ``source`` and ``timestamp``) in requests of ``batch_size`` rows."""
        frame = to_frame(rows)
        if len(frame) == 0:
            return OutcomeResult(0, 0, 0)
        _check_finite(frame)
        self._ensure_model()
        stored = matched = unmatched = 0
        for offset, part in self._slices(frame):
            result = _outcome_result(
                self._request(
                    "POST",
                    self._model_path("/outcomes"),
                    body={"rows": _records(part, offset)},
                    row_offset=offset,
                )
            )
            stored += result.stored
            matched += result.matched
            unmatched += result.unmatched
        return OutcomeResult(stored, matched, unmatched)

    def unmatched_outcomes(self) -> int:
        """Outcomes whose prediction has not arrived (yet)."""
        body = self._request("GET", self._model_path("/outcomes/unmatched"))
        return int(body["unmatched"])

    def _slices(self, frame: pd.DataFrame) -> Iterator[tuple[int, pd.DataFrame]]:
        """The frame in requests of ``batch_size`` rows, each encoded only when sent."""
        for start in range(0, len(frame), self.batch_size):
            yield start, frame.iloc[start : start + self.batch_size]

    # -- reading -----------------------------------------------------------------------------

    def get_prediction(self, prediction_id: str) -> dict[str, Any] | None:
        """A stored prediction as logged (features, prediction, tags, ...) and its current
        actual, or None if the id is unknown; ``timestamp`` and ``labeled_at`` are datetimes,
        as in-process."""
        text = str(prediction_id)
        if not text:
            return None  # no prediction is stored without an id
        found: dict[str, Any] | None = self._request(
            "GET", self._model_path(f"/predictions/{_quote(text)}"), absent="prediction_id"
        )
        if found is None:
            return None
        found["timestamp"] = _parse_time(found["timestamp"])
        labeled_at = found.get("labeled_at")
        found["labeled_at"] = None if labeled_at is None else _parse_time(labeled_at)
        return found

    def get_metrics(
        self,
        window: Window = "7d",
        version: str | int | None = None,
        segment: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Quality over a window, as ``FeedbackLoop.get_metrics`` (a plain dict)."""
        if segment is not None and not isinstance(segment, dict):
            raise ValidationError("must be a dict of tag values", field="segment")
        params = [("window", _window_param(window))]
        if version is not None:
            params.append(("version", str(version)))
        for key, value in (segment or {}).items():
            params.append(("segment", f"{key}:{value}"))
        metrics: dict[str, Any] = self._request("GET", self._model_path("/metrics"), params=params)
        return metrics

    def _evaluate(self, suffix: str, params: list[tuple[str, str]], record: bool) -> Any:
        """An evaluation route: ``POST`` records what it finds as events by this client's key
        (an admin key); ``GET`` (a read key is enough) writes nothing. A recording request is
        not repeated once it may have reached the server, lest it record twice."""
        method = "POST" if record else "GET"
        return self._request(method, self._model_path(suffix), params=params, safe=not record)

    def should_retrain(self, window: Window = None, *, record: bool = True) -> RetrainDecision:
        """Whether the primary metric over ``window`` (default: the client's) breaches
        ``retrain_threshold`` on at least ``min_labeled`` labeled predictions; truthy when due.
        The server records a decision to retrain as an event by this client's key, which must
        then be an admin key; ``record=False`` only asks (a read key is enough)."""
        chosen = self.window if window is None else window
        params = [("window", _window_param(chosen)), ("min_labeled", str(self.min_labeled))]
        if self.retrain_threshold is not None:
            params.append(("threshold", repr(float(self.retrain_threshold))))
        if "primary_metric" in self._declared:
            params.append(("metric", str(self._declared["primary_metric"])))
        body = self._evaluate("/should-retrain", params, record)
        names = {f.name for f in fields(RetrainDecision)}
        return RetrainDecision(**{k: v for k, v in body.items() if k in names})

    def trigger_retraining(self, reason: str | None = None) -> Event:
        """Ask for retraining: the server records the request and queues a job for its worker
        (the actor is the API key's name). Returns the ``retrain_requested`` event."""
        body = self._request(
            "POST",
            self._model_path("/retrain"),
            body={"reason": reason or "retraining requested"},
            safe=False,
        )
        return _event(body["event"])

    def set_reference(
        self,
        features: Any = None,
        *,
        predictions: Any = None,
        actuals: Any = None,
        window: Window = None,
        version: str | int | None = None,
        name: str = "default",
    ) -> dict[str, Any]:
        """Store the reference that drift checks and label-free estimates compare against,
        built on the server from a window of logged predictions: a duration (``'30d'``, a
        timedelta), ``'all'``, or a ``(start, end)`` pair. Returns ``name``, ``version``,
        ``rows`` and ``source``, as in-process.

        A reference from training data (``features``, ``predictions``, ``actuals``) is set
        with ``FeedbackLoop.set_reference`` on the database: the server takes no data upload.
        """
        if features is not None or predictions is not None or actuals is not None:
            raise TypeError(
                "Client.set_reference builds the reference from a window of logged predictions "
                "only; uploading features, predictions or actuals is for the Python API "
                "(FeedbackLoop.set_reference)"
            )
        if window is None:
            raise ValidationError(
                "give the window of logged predictions to build the reference from",
                field="window",
            )
        body = {
            "window": _window_body(window),
            "version": None if version is None else str(version),
            "name": name,
        }
        stored: dict[str, Any] = self._request(
            "POST", self._model_path("/reference"), body=body, safe=False
        )
        return stored

    def check_drift(
        self,
        window: Window = "7d",
        reference: str = "default",
        *,
        methods: dict[str, str] | None = None,
        share_threshold: float = 0.5,
        correction: str = "none",
        record: bool = True,
    ) -> dict[str, Any]:
        """Drift of every feature, the prediction and the label over ``window`` against the
        stored reference; ``methods`` picks a feature's test or distance (``{"age": "psi"}``).
        Drifted columns are recorded as a ``drift_detected`` event by this client's key (an
        admin key); ``record=False`` only reads.

        Returns the ``DriftReport.to_dict()`` form (a plain dict: ``drifted``,
        ``share_drifted``, ``drifted_columns``, ``columns`` with one result dict per column)
        rather than a ``DriftReport``, whose per-feature dataset detail does not travel.
        """
        if methods is not None and not isinstance(methods, dict):
            raise ValidationError("must be a dict of feature names to methods", field="methods")
        params = [
            ("window", _window_param(window)),
            ("reference", reference),
            ("correction", correction),
            ("share_threshold", repr(float(share_threshold))),
        ]
        params += [("method", f"{feature}:{method}") for feature, method in (methods or {}).items()]
        report: dict[str, Any] = self._evaluate("/drift", params, record)
        return report

    def estimate_performance(
        self, window: Window = "7d", reference: str = "default", *, record: bool = True
    ) -> dict[str, Any]:
        """Label-free estimate of the window's quality (binary classifiers), as
        ``FeedbackLoop.estimate_performance``: scores calibrated on ``reference``; a breach is
        recorded by this client's key (an admin key) unless ``record=False``."""
        params = [("window", _window_param(window)), ("reference", reference)]
        result: dict[str, Any] = self._evaluate("/estimate", params, record)
        return result

    def segments(
        self,
        window: Window = "7d",
        by: Sequence[str] = (),
        *,
        metric: str | None = None,
        min_support: int = 30,
        limit: int = 100,
        record: bool = True,
    ) -> list[dict[str, Any]]:
        """Metrics per slice of the window's labeled predictions, worst first (at most
        ``limit``, up to 1,000); weak slices are recorded by this client's key (an admin key)
        unless ``record=False``."""
        if isinstance(by, str):
            by = [by]
        if not by:
            raise ValidationError("name at least one tag or feature", field="by")
        params = [("window", _window_param(window)), ("min_support", str(min_support))]
        params.append(("limit", str(limit)))
        params += [("by", str(name)) for name in by]
        if metric is not None:
            params.append(("metric", metric))
        body = self._evaluate("/segments", params, record)
        segments: list[dict[str, Any]] = body["segments"]
        return segments

    def detect_concept_drift(
        self, window: Window = "30d", detector: str = "adwin", *, record: bool = True
    ) -> dict[str, Any]:
        """Run a streaming concept-drift detector (``adwin``, ``ddm``, ``eddm``, ``hddm_a``,
        ``page_hinkley``) over the window's errors in time order; the server records a detected
        change as a ``concept_drift`` event by this client's key (an admin key) unless
        ``record=False``."""
        params = [("window", _window_param(window)), ("detector", detector)]
        result: dict[str, Any] = self._evaluate("/concept-drift", params, record)
        return result

    def record_event(
        self,
        kind: str,
        *,
        reason: str,
        evidence: dict[str, Any] | None = None,
        version: str | None = None,
    ) -> int:
        """Append an event to the audit trail (the actor is the API key's name); its id."""
        body = {
            "kind": kind,
            "reason": reason,
            "evidence": _jsonable(evidence, field="evidence"),
            "version": None if version is None else str(version),
        }
        answer = self._request("POST", self._model_path("/events"), body=body, safe=False)
        return int(answer["id"])

    def events(self, *, kinds: Sequence[str] | None = None, limit: int | None = 100) -> list[Event]:
        """This model's events, newest first (``limit=None``: the server's most, 1,000)."""
        params = [("kind", kind) for kind in (kinds or ())]
        params.append(("limit", str(_MAX_EVENTS if limit is None else limit)))
        body = self._request("GET", self._model_path("/events"), params=params)
        return [_event(item) for item in body["events"]]

    # -- registry ----------------------------------------------------------------------------

    def versions(self) -> list[dict[str, Any]]:
        """The model's registered versions, oldest first: ``version``, ``created_at`` (a
        datetime), ``created_by``, ``sha256``, ``train_rows`` and ``metrics`` — the fields of
        ``FeedbackLoop.versions()`` records that the server publishes (not artifact paths)."""
        body = self._request("GET", self._model_path("/versions"))
        found: list[dict[str, Any]] = body["versions"]
        for item in found:
            item["created_at"] = _parse_time(item["created_at"])
        return found

    def aliases(self) -> dict[str, int]:
        """Alias name → version (``champion``, ``challenger``, ...)."""
        body = self._request("GET", self._model_path("/aliases"))
        return {str(k): int(v) for k, v in body["aliases"].items()}

    def set_alias(
        self, alias: str, version: int | None, *, reason: str = "set by hand", force: bool = False
    ) -> int | None:
        """Point ``alias`` at a version (``None`` clears it); returns the version it pointed at.
        Moving ``champion`` to a version the gate rejected raises
        :class:`~feedback_loop.RejectedVersionError` unless ``force=True``."""
        check_bounded(alias, field="alias", max_length=MAX_ALIAS_LENGTH)
        body = self._request(
            "PUT",
            self._model_path(f"/aliases/{_quote(alias)}"),
            body={"version": version, "reason": reason, "force": force},
            safe=False,
        )
        previous = body["previous"]
        return None if previous is None else int(previous)

    def alias_history(self, alias: str | None = None) -> list[dict[str, Any]]:
        """Every move of ``alias`` (of every alias when None), oldest first: ``alias``,
        ``version``, ``previous_version``, ``actor``, ``reason`` and ``time`` (a datetime)."""
        path = "/alias-history" if alias is None else f"/aliases/{_quote(alias)}/history"
        moves: list[dict[str, Any]] = self._request("GET", self._model_path(path))["history"]
        for move in moves:
            move["time"] = _parse_time(move["time"])
        return moves

    def promote(
        self, version: int, *, reason: str = "promoted by hand", force: bool = False
    ) -> None:
        """Make ``version`` the champion (the previous champion stays registered). A version
        the gate rejected raises :class:`~feedback_loop.RejectedVersionError` unless
        ``force=True``."""
        self._request(
            "POST",
            self._model_path("/promote"),
            body={"version": version, "reason": reason, "force": force},
            safe=False,
        )

    def rollback(self, *, reason: str = "rolled back by hand") -> int:
        """Put the previous champion back; returns its version."""
        body = self._request(
            "POST", self._model_path("/rollback"), body={"reason": reason}, safe=False
        )
        return int(body["champion"])

    def watch_champion(
        self,
        *,
        min_samples: int = 200,
        margin: float = 0.0,
        alpha: float = 0.01,
        auto_rollback: bool = True,
    ) -> WatchVerdict | None:
        """Post-promotion watch: the server rolls back a new champion that is significantly
        worse live than the one it replaced (None when there is no promotion to watch)."""
        body = self._request(
            "POST",
            self._model_path("/watch"),
            body={
                "min_samples": min_samples,
                "margin": margin,
                "alpha": alpha,
                "auto_rollback": auto_rollback,
            },
            safe=False,
        )
        verdict = body["verdict"]
        if verdict is None:
            return None
        names = {f.name for f in fields(WatchVerdict)}
        return WatchVerdict(**{k: v for k, v in verdict.items() if k in names})


# -- encoding ---------------------------------------------------------------------------------


def _quote(segment: str) -> str:
    """One URL path segment (model and alias names may hold ``/``, spaces or ``%``)."""
    from urllib.parse import quote

    return quote(segment, safe="")


def _window_param(window: Window) -> str:
    """A window as the server reads it: ``'7d'``, ``'all'``, or seconds for a timedelta."""
    if window is None:
        return "all"
    if isinstance(window, timedelta):
        parse_duration(window)
        return f"{window.total_seconds():g}s"
    if isinstance(window, str):
        if window != "all":
            parse_duration(window)
        return window
    raise ValidationError(
        "the server takes a duration ('7d', a timedelta) or 'all'", field="window"
    )


def _window_body(window: Window) -> Any:
    """A window as a JSON body field: a duration or ``'all'``, or ``[start, end]``."""
    if isinstance(window, tuple):
        if len(window) != 2:
            raise ValidationError("a window tuple must be (start, end)", field="window")
        return [
            _jsonable(pd.Timestamp(t) if isinstance(t, np.datetime64) else t, field="window")
            for t in window
        ]
    return _window_param(window)


def _default(value: Any) -> Any:
    """JSON for what ``json`` does not know: numpy scalars and arrays, times."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _encode(body: Any) -> bytes:
    """Compact JSON; NaN (missing) becomes null, infinities are refused as in-process."""
    try:
        text = json.dumps(body, allow_nan=False, default=_default, separators=(",", ":"))
    except ValueError:
        text = json.dumps(_jsonable(body), allow_nan=False, default=_default, separators=(",", ":"))
    except TypeError as exc:
        raise ValidationError(str(exc)) from None
    return text.encode()


def _jsonable(value: Any, *, field: str | None = None, row: int | None = None) -> Any:
    """A value with numpy scalars, times and NaN (as null) turned into JSON's own types."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return None
        if math.isinf(number):
            raise ValidationError("infinite values cannot be stored", field=field, row=row)
        return number
    if isinstance(value, dict):
        return {k: _jsonable(v, field=field, row=row) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v, field=field, row=row) for v in value]
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise ValidationError(f"{type(value).__name__} is not JSON serialisable", field=field, row=row)


def _with_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with an id on every row, made here so that a re-sent batch is identical."""
    column = id_column([str(c) for c in frame.columns])
    if column is None:
        return frame.assign(prediction_id=[uuid.uuid4().hex for _ in range(len(frame))])
    missing = frame[column].isna().to_numpy()
    if not missing.any():
        return frame
    values = frame[column].astype(object).to_numpy(copy=True)
    values[missing] = [uuid.uuid4().hex for _ in range(int(missing.sum()))]
    return frame.assign(**{column: values})


def _check_finite(frame: pd.DataFrame) -> None:
    """Infinities cannot travel as JSON, nor be stored: refused up front, as in-process."""
    for name in frame.columns:
        values = frame[name]
        if values.dtype.kind == "f":
            infinite = np.isinf(values.to_numpy(dtype=np.float64, na_value=np.nan))
            if infinite.any():
                raise ValidationError(
                    "infinite values cannot be stored",
                    field=str(name),
                    row=int(np.argmax(infinite)),
                )


def _column(values: pd.Series, name: str) -> list[Any]:
    """One column as JSON-ready Python values, vectorised by dtype; missing values are null."""
    kind = values.dtype.kind
    missing = values.isna().to_numpy()
    if kind == "M":
        stamps = pd.to_datetime(values, utc=True).dt.tz_localize(None).to_numpy()
        text = np.datetime_as_string(stamps, unit="us", timezone="UTC").tolist()
        out: list[Any] = text
    elif kind == "f":
        out = values.to_numpy(dtype=np.float64, na_value=np.nan).tolist()
    elif kind in "iub" and not missing.any():
        return list(values.to_numpy().tolist())
    else:
        out = values.to_numpy(dtype=object).tolist()
        if kind not in "iub":
            for i, value in enumerate(out):
                if isinstance(value, np.generic | datetime | date | np.ndarray | tuple):
                    out[i] = _jsonable(value, field=name, row=i)
    if missing.any():
        for i in np.flatnonzero(missing).tolist():
            out[i] = None
    return out


def _feature_columns(frame: pd.DataFrame) -> list[str]:
    """The columns that are features: as in-process, every column that is not a prediction
    field, unless a ``features`` dict column is given (then there must be none)."""
    id_col = id_column([str(c) for c in frame.columns])
    extra = [
        c for c in frame.columns if str(c) not in RESERVED and str(c) not in ("features", id_col)
    ]
    if extra and "features" in frame:
        names = [str(c) for c in extra]
        raise ValidationError(
            f"unknown columns {names}: put features in the `features` dict", field=names[0]
        )
    for name in extra:
        if not isinstance(name, str):
            raise ValidationError("feature names must be strings", field=str(name))
    return extra


def _records(
    frame: pd.DataFrame, offset: int, *, features: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts, the ``features`` columns folded into one ``features`` dict
    (the row shape the server takes). Errors name rows counted from ``offset``."""
    try:
        labels = [c for c in frame.columns if c not in features]
        names = [str(c) for c in labels]
        columns = [_column(frame[c], name) for c, name in zip(labels, names, strict=True)]
        if features:
            values = [_column(frame[name], name) for name in features]
            names.append("features")
            columns.append(
                [dict(zip(features, row, strict=True)) for row in zip(*values, strict=True)]
            )
    except ValidationError as exc:
        row = None if exc.row is None else exc.row + offset
        raise ValidationError(exc.message, field=exc.field, row=row) from None
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


# -- decoding ---------------------------------------------------------------------------------


def _log_result(body: dict[str, Any]) -> LogResult:
    return LogResult(
        inserted=int(body["inserted"]),
        retried=int(body["retried"]),
        outcomes=int(body["outcomes"]),
        joined=int(body["joined"]),
        prediction_ids=[str(p) for p in body["prediction_ids"]],
    )


def _outcome_result(body: dict[str, Any]) -> OutcomeResult:
    return OutcomeResult(
        stored=int(body["stored"]), matched=int(body["matched"]), unmatched=int(body["unmatched"])
    )


def _error_field(response: httpx.Response) -> Any:
    """The ``field`` of an error answer, if it has one."""
    try:
        payload = response.json()
    except ValueError:
        return None
    detail = payload.get("error") if isinstance(payload, dict) else None
    return detail.get("field") if isinstance(detail, dict) else None


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _event(item: dict[str, Any]) -> Event:
    return Event(
        id=int(item["id"]),
        time=_parse_time(item["time"]),
        kind=item["kind"],
        model=item.get("model"),
        version=item.get("version"),
        actor=item.get("actor", ""),
        reason=item.get("reason", ""),
        evidence=item.get("evidence") or {},
    )


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds a 429/503 asks to wait (``Retry-After`` in seconds), capped."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), _MAX_RETRY_AFTER_S)
    except ValueError:
        return None
