"""``FeedbackLoop``: the public face of feedback-loop inside a Python process.

>>> import tempfile, os
>>> db = os.path.join(tempfile.mkdtemp(), "doc.db")
>>> loop = FeedbackLoop("churn", tracking_db=f"sqlite:///{db}")
>>> loop.log_prediction(customer_id="c1", prediction=1, actual=1).inserted
1
>>> loop.get_metrics(window="7d")["accuracy"]
1.0
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from feedback_loop import lifecycle, watch
from feedback_loop.clock import Clock, SystemClock
from feedback_loop.drift_report import DriftReport
from feedback_loop.errors import (
    FeedbackLoopError,
    RejectedVersionError,
    UnknownModelError,
    ValidationError,
)
from feedback_loop.group_commit import GroupCommit
from feedback_loop.ingest import (
    OutcomeBatch,
    PredictionBatch,
    new_ids,
    outcome_batch,
    prediction_batch,
    resolve_task,
    single_prediction,
    to_frame,
)
from feedback_loop.input_limits import (
    MAX_ALIAS_LENGTH,
    MAX_KEY_NAME_LENGTH,
    MAX_PRIMARY_METRIC_LENGTH,
    NUL_MESSAGE,
    check_actor,
    check_bounded,
    check_event,
    check_prediction_id,
    check_reason,
)
from feedback_loop.lifecycle import RetrainOutcome
from feedback_loop.monitoring import LOWER_IS_BETTER, default_primary_metric, window_metrics
from feedback_loop.naming import check_model_name
from feedback_loop.policy import Evidence, Policy, PolicyDecision, default_policy
from feedback_loop.recording import (
    LogResult,
    ModelState,
    merge_spec,
    store_outcome_groups,
    store_outcomes,
    store_prediction_groups,
    store_predictions,
)
from feedback_loop.registry import service as registry_service
from feedback_loop.registry.artifacts import LocalArtifactStore
from feedback_loop.registry.service import Guard
from feedback_loop.retraining import RetrainDecision, decide
from feedback_loop.store import jobs as jobs_store
from feedback_loop.store import models as model_store
from feedback_loop.store import registry as registry_store
from feedback_loop.store.engine import make_engine, read_transaction, write_transaction
from feedback_loop.store.events import Event, get_event, read_events, write_event
from feedback_loop.store.migrate import ensure_schema
from feedback_loop.store.outcomes import OutcomeResult, unmatched_count
from feedback_loop.store.predictions import fetch_prediction
from feedback_loop.store.reader import WindowFilter
from feedback_loop.store.references import load_reference, save_reference
from feedback_loop.store.registry import VersionRecord
from feedback_loop.tasks import TASKS, TaskSpec, task_of_model
from feedback_loop.timeutil import Window, from_us, parse_duration, resolve_window, to_us
from feedback_loop.training.dataset import DatasetSpec
from feedback_loop.training.gating import GateConfig
from feedback_loop.training.trainers import Trainer as TrainerLike
from feedback_loop.training.trainers import as_trainer
from feedback_loop.training.watchdog import WatchVerdict

_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _engine_for(url: str | None) -> Engine:
    """One engine (and one schema check) per database URL and process."""
    key = url or ""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = make_engine(url)
            ensure_schema(engine)
            _ENGINES[key] = engine
        return engine


class FeedbackLoop:
    """Log predictions and outcomes for one model, watch its quality, decide when to retrain.

    Parameters
    ----------
    model_name:
        The model this loop logs for; created on first use.
    tracking_db:
        Database URL: ``sqlite:///path.db`` or ``postgresql://host/db``. Defaults to the
        ``FEEDBACK_LOOP_DB`` environment variable, else ``sqlite:///feedback_loop.db``.
    retrain_threshold:
        ``should_retrain()`` is true when the primary metric breaches it (falls below it, or rises
        above it for error metrics such as ``mae``).
    task:
        ``'binary'``, ``'multiclass'`` or ``'regression'``; inferred from the first prediction
        when omitted.
    label_key, score_key:
        For dict predictions such as ``{'winner': 'LAL', 'confidence': 0.78}``, the keys holding
        the label and its confidence (inferred when the dict makes them plain).
    positive_label, negative_label:
        The classes of a binary model (default 1 and 0).
    primary_metric:
        The metric ``should_retrain`` watches: ``accuracy`` (classification) or ``r2``
        (regression) by default.
    window:
        The default window of ``should_retrain`` (``'7d'``).
    min_labeled:
        ``should_retrain`` never fires on fewer labeled predictions than this (100).
    clock:
        Where "now" comes from; replace it to replay history in simulated time.
    artifact_root:
        Folder of model artifacts (``$FEEDBACK_LOOP_ARTIFACTS``, else
        ``./feedback_loop_artifacts``).
    """

    def __init__(
        self,
        model_name: str,
        tracking_db: str | None = None,
        retrain_threshold: float | None = None,
        *,
        task: str | None = None,
        label_key: str | None = None,
        score_key: str | None = None,
        positive_label: Any = None,
        negative_label: Any = None,
        primary_metric: str | None = None,
        window: str | timedelta = "7d",
        min_labeled: int = 100,
        clock: Clock | None = None,
        artifact_root: str | None = None,
    ):
        check_model_name(model_name)
        if task is not None and task not in TASKS:
            raise ValidationError(f"must be one of {', '.join(TASKS)}", field="task")
        if retrain_threshold is not None and not isinstance(retrain_threshold, int | float):
            raise ValidationError("must be a number", field="retrain_threshold")
        if min_labeled < 1:
            raise ValidationError("must be at least 1", field="min_labeled")
        parse_duration(window)
        _check_declared(label_key=label_key, score_key=score_key, primary_metric=primary_metric)
        self.model_name = model_name
        self.retrain_threshold = retrain_threshold
        self.window = window
        self.min_labeled = min_labeled
        self.clock: Clock = clock or SystemClock()
        self._declared = TaskSpec(
            task=task,
            label_key=label_key,
            score_key=score_key,
            positive_label=positive_label,
            primary_metric=primary_metric,
            extra={"negative_label": negative_label} if negative_label is not None else {},
        )
        self.engine = _engine_for(tracking_db)
        self.artifacts = LocalArtifactStore(
            artifact_root or os.environ.get("FEEDBACK_LOOP_ARTIFACTS") or "feedback_loop_artifacts"
        )
        self._state: ModelState | None = None
        self._trainer: TrainerLike | None = None
        self.dataset_spec = DatasetSpec()
        self.gate_config = GateConfig()
        self._policy: Policy | None = None
        self._policy_inputs = (False, False)
        self._lock = threading.Lock()
        # Single predictions logged at once from several threads share a transaction.
        self._single_writes: GroupCommit[PredictionBatch, LogResult] = GroupCommit(
            self._write_singles
        )
        self._single_outcomes: GroupCommit[OutcomeBatch, OutcomeResult] = GroupCommit(
            self._write_single_outcomes
        )

    # -- model state -------------------------------------------------------------------------

    def _now_us(self) -> int:
        return to_us(self.clock.now())

    def _model_state(self, first_prediction: Any = None) -> ModelState:
        """The model's id, task and label codes; the task is settled on the first prediction."""
        with self._lock:
            if self._settled():
                assert self._state is not None
                return self._state
            with write_transaction(self.engine) as conn:
                record = model_store.ensure_model(conn, self.model_name, self._now_us())
                spec = self._inferred(
                    merge_spec(record.spec, self._declared, self.model_name), first_prediction
                )
                model_store.save_spec(conn, record.id, spec)
                codes = model_store.label_codes(conn, record.id)
            self._state = ModelState(record.id, self.model_name, spec, codes)
            return self._state

    def _read_state(self) -> ModelState:
        """The model's state for a read, which writes nothing: an unknown model raises
        ``UnknownModelError`` (it is not created), and a declared task is used but not
        stored."""
        with self._lock:
            if self._state is not None and self._state.spec.task is not None:
                return self._state
        with read_transaction(self.engine) as conn:
            record = model_store.get_model(conn, self.model_name)
            codes = model_store.label_codes(conn, record.id)
        spec = merge_spec(record.spec, self._declared, self.model_name)
        state = ModelState(record.id, self.model_name, spec, codes)
        if spec.task is not None and spec == record.spec:  # nothing left to store: keep it
            with self._lock:
                if self._state is None:
                    self._state = state
        return state

    def _settled(self) -> bool:
        return (
            self._state is not None
            and self._state.spec.task is not None
            and not self._state.pending
        )

    @staticmethod
    def _inferred(spec: TaskSpec, first_prediction: Any) -> TaskSpec:
        """``spec`` with its task (and a dict's label and score keys) read from the first
        prediction, when not known yet."""
        if spec.task is None and first_prediction is not None:
            spec = resolve_task(spec, first_prediction)
            if isinstance(first_prediction, dict) and spec.task != "regression":
                from feedback_loop.tasks import dict_label_key, dict_score_key

                spec.label_key = spec.label_key or dict_label_key(first_prediction)
                spec.score_key = spec.score_key or dict_score_key(first_prediction)
        return spec

    def _writer_state(self, first_prediction: Any = None) -> ModelState:
        """The model's state for a writer, without writing: a model not stored yet (or whose
        task is not saved yet) comes back ``pending``, and the transaction that stores the rows
        creates it and saves its task, so a refused first request changes nothing."""
        with self._lock:
            if self._settled():
                assert self._state is not None
                return self._state
            with read_transaction(self.engine) as conn:
                record = model_store.find_model(conn, self.model_name)
                codes = {} if record is None else model_store.label_codes(conn, record.id)
            stored = TaskSpec() if record is None else record.spec
            spec = self._inferred(
                merge_spec(stored, self._declared, self.model_name), first_prediction
            )
            saved = ("task", "label_key", "score_key", "positive_label", "primary_metric")
            pending = record is None or any(
                getattr(spec, f) is not None and getattr(stored, f) is None for f in saved
            )
            state = ModelState(-1 if record is None else record.id, self.model_name, spec, codes)
            state.pending = pending
            self._state = state
            return state

    @property
    def task(self) -> str | None:
        """The model's task, once declared or inferred (reading it creates no model)."""
        try:
            return self._read_state().spec.task
        except UnknownModelError:
            return self._declared.task

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
        """Log one prediction (and, optionally, its actual).

        The id is ``prediction_id``, or any single ``*_id`` keyword (``game_id='...'``); one is
        generated when none is given. Re-logging an identical prediction is a safe retry.
        """
        pid = _single_id(prediction_id, id_keyword)
        state = self._writer_state(prediction)
        batch = single_prediction(
            state.spec,
            self._now_us(),
            prediction_id=pid or new_ids(1)[0],
            prediction=prediction,
            features=features,
            actual=actual,
            timestamp=timestamp,
            version=version,
            tags=tags,
            latency_ms=latency_ms,
        )
        if state.pending:  # the model's first rows: stored on their own, settling the model
            return store_predictions(self.engine, state, batch, self._now_us())
        return self._single_writes.submit(batch)

    async def log_prediction_async(
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
        """``log_prediction`` for asyncio code (a model served by FastAPI, say): the row is
        validated on the calling event loop, which goes on serving while it is written.

        Calls made at the same time, from tasks or threads, share one transaction.
        """
        pid = _single_id(prediction_id, id_keyword)
        state = self._state
        if state is None or state.spec.task is None or state.pending:  # reads the database
            state = await asyncio.to_thread(self._writer_state, prediction)
        batch = single_prediction(
            state.spec,
            self._now_us(),
            prediction_id=pid or new_ids(1)[0],
            prediction=prediction,
            features=features,
            actual=actual,
            timestamp=timestamp,
            version=version,
            tags=tags,
            latency_ms=latency_ms,
        )
        if state.pending:
            return await asyncio.to_thread(
                store_predictions, self.engine, state, batch, self._now_us()
            )
        return await self._single_writes.submit_async(batch)

    def _write_singles(self, batches: Sequence[PredictionBatch]) -> list[LogResult | BaseException]:
        state = self._writer_state()  # settled: the first rows of a model are not grouped
        return store_prediction_groups(self.engine, state, batches, self._now_us())

    def log_predictions(self, rows: Any) -> LogResult:
        """Log many predictions at once: a list of dicts, a DataFrame or an Arrow table.

        All rows are stored, or none (the error names the first bad row and field).
        """
        frame = to_frame(rows)
        if len(frame) == 0:
            return LogResult(0, 0, 0, 0, [])
        if "prediction" not in frame:
            raise ValidationError("is required", field="prediction", row=0)
        state = self._writer_state(frame["prediction"].iloc[0])
        now = self._now_us()
        batch = prediction_batch(frame, state.spec, now)
        return store_predictions(self.engine, state, batch, now)

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
        """Log the ground truth of one prediction.

        ``source`` is ``natural`` (the label as it happened), ``feedback`` (explicit user feedback:
        ``feedback='up'|'down'`` says the prediction was right or wrong), ``review`` (a human
        reviewer) or ``business`` (a delayed business outcome). A later outcome supersedes an
        earlier one; all are kept. An outcome may arrive before its prediction.
        """
        pid = _single_id(prediction_id, id_keyword)
        if pid is None:
            raise ValidationError("is required", field="prediction_id")
        row = {"prediction_id": pid, "actual": actual, "source": source, "feedback": feedback}
        if timestamp is not None:
            row["timestamp"] = timestamp
        try:
            state, batch = self._outcome_batch(to_frame([row]))
        except ValidationError as exc:  # one outcome: no row to name
            raise ValidationError(exc.message, field=exc.field) from None
        if state.pending:
            return store_outcomes(self.engine, state, batch, self._now_us())
        return self._single_outcomes.submit(batch)

    def log_outcomes(self, rows: Any) -> OutcomeResult:
        """Log many outcomes at once (all or none): ``prediction_id``, ``actual`` and/or
        ``feedback``, optional ``source`` and ``timestamp``."""
        frame = to_frame(rows)
        if len(frame) == 0:
            return OutcomeResult(0, 0, 0)
        state, batch = self._outcome_batch(frame)
        return store_outcomes(self.engine, state, batch, self._now_us())

    def _write_single_outcomes(
        self, batches: Sequence[OutcomeBatch]
    ) -> list[OutcomeResult | BaseException]:
        return store_outcome_groups(self.engine, self._writer_state(), batches, self._now_us())

    def _outcome_batch(self, frame: Any) -> tuple[ModelState, OutcomeBatch]:
        """Validated outcomes (settling the model's task from them if no prediction did)."""
        state = self._writer_state()
        if state.spec.task is None:
            if "actual" not in frame or frame["actual"].isna().all():
                raise ValidationError(
                    "the model's task is not known yet: log a prediction first, declare task=, "
                    "or give an actual",
                    field="actual",
                )
            state = self._settle_task_from_actual(frame["actual"].dropna().iloc[0])
        return state, outcome_batch(frame, state.spec, self._now_us())

    def _settle_task_from_actual(self, actual: Any) -> ModelState:
        value = (
            actual[next(iter(actual))]
            if isinstance(actual, dict) and len(actual) == 1
            else (actual)
        )
        return self._writer_state(value)

    def unmatched_outcomes(self) -> int:
        """Outcomes whose prediction has not arrived (yet)."""
        state = self._read_state()
        with read_transaction(self.engine) as conn:
            return unmatched_count(conn, state.id)

    # -- reading -----------------------------------------------------------------------------

    def get_prediction(self, prediction_id: str) -> dict[str, Any] | None:
        """A stored prediction as logged (features, prediction, tags, ...) and its current
        actual, or None if the id is unknown."""
        state = self._read_state()
        with read_transaction(self.engine) as conn:
            found = fetch_prediction(conn, state.id, str(prediction_id))
            values = model_store.label_values(conn, state.id)
        if found is None:
            return None
        code = found.pop("actual_code")
        value = found.pop("actual_value")
        found["timestamp"] = from_us(found.pop("ts"))
        label_ts = found.pop("label_ts")
        found["labeled_at"] = None if label_ts is None else from_us(label_ts)
        if state.spec.task == "regression":
            found["actual"] = value
        elif code == -1:
            found["actual"] = {"correct": False}
        else:
            found["actual"] = None if code is None else values.get(code)
        return found

    def get_metrics(
        self,
        window: Window = "7d",
        version: str | int | None = None,
        segment: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Quality over a window of prediction times, as a plain dict.

        ``window`` is a duration (``'7d'``, ``'12h'``, a timedelta) ending now, a
        ``(start, end)`` pair, or ``'all'``. Counts: ``predictions``, ``labeled``,
        ``label_coverage``, ``label_delay_p50_s`` and ``label_delay_p95_s``. Classification:
        ``accuracy``, ``precision``, ``recall``, ``f1`` (macro for multiclass), ``roc_auc``,
        ``log_loss`` and ``brier`` where scores exist. Regression: ``mae``, ``rmse``, ``mape``,
        ``r2``. A metric that is undefined on the window is ``None``.
        """
        state = self._read_state()
        start, end = resolve_window(window, self.clock.now())
        if segment is not None and not isinstance(segment, dict):
            raise ValidationError("must be a dict of tag values", field="segment")
        if segment and any("\x00" in str(item) for pair in segment.items() for item in pair):
            raise ValidationError(NUL_MESSAGE, field="segment")
        if version is not None and not str(version).isprintable():
            raise ValidationError("must be printable text", field="version")
        flt = WindowFilter(
            model_id=state.id,
            start_us=start,
            end_us=end,
            version=None if version is None else str(version),
            segment=segment,
        )
        spec = state.spec if state.spec.task else TaskSpec(task="binary")
        return window_metrics(self.engine, self.model_name, spec, state.codes, flt)

    # -- monitoring --------------------------------------------------------------------------

    def _window(self, window: Window, version: str | int | None = None) -> WindowFilter:
        state = self._read_state()
        start, end = resolve_window(window, self.clock.now())
        return WindowFilter(state.id, start, end, None if version is None else str(version))

    def set_reference(
        self,
        features: Any = None,
        *,
        predictions: Any = None,
        actuals: Any = None,
        window: Window = None,
        version: str | int | None = None,
        name: str = "default",
        actor: str = "feedback-loop",
    ) -> dict[str, Any]:
        """Store the reference that drift checks and label-free estimates compare against.

        Either the data the model was trained or validated on (``features`` as a DataFrame or
        Arrow table, with optional ``predictions`` — positive-class scores for a binary model —
        and ``actuals``), or a window of logged predictions (``window=``). It is summarised
        once into compact profiles; monitoring never reads the reference rows again.
        """
        state = self._model_state()
        if state.spec.task is None:
            raise ValidationError("log a prediction or declare task= first", field="task")
        if (features is None) == (window is None):
            raise ValidationError("give either features or window", field="features")
        if window is not None:
            data = watch.window_features(
                self.engine,
                self._window(window, version),
                regression=state.spec.task == "regression",
            )
            if len(data.features) == 0:
                raise ValidationError("the window holds no predictions", field="window")
            stored, n_rows, source = (
                watch.reference_from_window(state, data),
                len(data.features),
                (f"window {window}"),
            )
        else:
            frame = to_frame(features)
            stored = watch.reference_from_frame(state, frame, predictions, actuals)
            n_rows, source = len(frame), "data"
        version_key = "" if version is None else str(version)
        with write_transaction(self.engine) as conn:
            save_reference(
                conn,
                model_id=state.id,
                name=name,
                version=version_key,
                created_at=self._now_us(),
                n_rows=n_rows,
                source=source,
                data=stored,
            )
        self.record_event(
            "reference_set",
            reason=f"reference {name!r} from {source} ({n_rows:,} rows)",
            version=version_key or None,
            evidence={"name": name, "rows": n_rows, "columns": sorted(stored["features"])},
            actor=actor,
        )
        return {"name": name, "version": version_key, "rows": n_rows, "source": source}

    def _reference(self, name: str, version: str | int | None) -> dict[str, Any]:
        state = self._read_state()
        with read_transaction(self.engine) as conn:
            found = load_reference(conn, state.id, name, None if version is None else str(version))
        if found is None:
            raise ValidationError(
                f"model {self.model_name!r} has no reference {name!r}: call set_reference first",
                field="reference",
            )
        return found

    def check_drift(
        self,
        window: Window = "7d",
        reference: str = "default",
        *,
        version: str | int | None = None,
        methods: dict[str, str] | None = None,
        share_threshold: float = 0.5,
        correction: str = "none",
        record: bool = True,
        actor: str = "feedback-loop",
    ) -> DriftReport:
        """Drift of every feature, the prediction and the label over ``window`` against the
        stored reference; writes a ``drift_detected`` event (by ``actor``) when any column
        drifted, unless ``record=False`` (a read that writes nothing)."""
        if correction not in ("none", "bonferroni", "benjamini_hochberg"):
            raise ValidationError(
                "must be none, bonferroni or benjamini_hochberg", field="correction"
            )
        state = self._read_state()
        stored = self._reference(reference, version)
        flt = self._window(window, version)
        data = watch.window_features(self.engine, flt, regression=state.spec.task == "regression")
        report = watch.check_drift(
            state,
            stored,
            data,
            flt,
            methods=methods,
            share_threshold=share_threshold,
            correction=correction,
        )
        if record and report.drifted_columns:
            drifted = {c: report.columns[c].to_dict() for c in report.drifted_columns}
            self.record_event(
                "drift_detected",
                reason=f"{len(drifted)} column(s) drifted over {window}: "
                + ", ".join(report.drifted_columns[:10]),
                evidence={
                    "window": [report.window_start, report.window_end],
                    "dataset_drift": report.drifted,
                    "columns": drifted,
                },
                actor=actor,
            )
        return report

    def estimate_performance(
        self,
        window: Window = "7d",
        reference: str = "default",
        *,
        record: bool = True,
        actor: str = "feedback-loop",
    ) -> dict[str, Any]:
        """Label-free estimate (binary classifiers): expected accuracy, precision, recall, F1 and
        ROC AUC over all predictions of the window, from scores calibrated on the reference.
        Writes an ``estimate_breach`` event (by ``actor``) when the estimate breaches
        ``retrain_threshold``, unless ``record=False``."""
        state = self._read_state()
        try:
            stored: dict[str, Any] | None = self._reference(reference, None)
        except ValidationError:
            stored = None
        data = watch.window_scores(self.engine, self._window(window))
        result = watch.estimate(state, stored, data)
        metric = self.primary_metric
        value = result.get(metric)
        if record and self.retrain_threshold is not None and value is not None:
            breached = (
                value > self.retrain_threshold
                if metric in LOWER_IS_BETTER
                else value < self.retrain_threshold
            )
            if breached:
                self.record_event(
                    "estimate_breach",
                    reason=f"estimated {metric} {value:.4g} breaches {self.retrain_threshold}",
                    evidence={"window": str(window), **result},
                    actor=actor,
                )
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
        actor: str = "feedback-loop",
    ) -> list[dict[str, Any]]:
        """Metrics per slice of the window's labeled predictions, worst first: at most
        ``limit`` (up to 10,000) slices. ``by`` names tags (``region``) or features; slices with
        fewer than ``min_support`` rows are left out. Writes a ``weak_segments`` event (by
        ``actor``) when slices breach ``retrain_threshold``, unless ``record=False``."""
        if not by:
            raise ValidationError("name at least one tag or feature", field="by")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise ValidationError("must be a whole number from 1 to 10000", field="limit")
        state = self._read_state()
        chosen = metric or self.primary_metric
        data = watch.window_features(
            self.engine, self._window(window), regression=state.spec.task == "regression"
        )
        rows = watch.segments(state, data, list(by), metric=chosen, min_support=min_support)
        if record and self.retrain_threshold is not None:
            threshold = self.retrain_threshold
            weak = [
                r
                for r in rows
                if r.get(chosen) is not None
                and (
                    (r[chosen] > threshold)
                    if chosen in LOWER_IS_BETTER
                    else (r[chosen] < threshold)
                )
            ]
            if weak:
                self.record_event(
                    "weak_segments",
                    reason=f"{len(weak)} segment(s) breach {chosen} {threshold} over {window}",
                    evidence={"metric": chosen, "segments": weak[:20]},
                    actor=actor,
                )
        return rows[:limit]

    def detect_concept_drift(
        self,
        window: Window = "30d",
        detector: str = "adwin",
        *,
        record: bool = True,
        actor: str = "feedback-loop",
    ) -> dict[str, Any]:
        """Run a streaming concept-drift detector (``adwin``, ``ddm``, ``eddm``, ``hddm_a``,
        ``page_hinkley``) over the window's errors in time order; a detected change writes a
        ``concept_drift`` event (by ``actor``) with the change points, unless ``record=False``."""
        state = self._read_state()
        data = watch.window_features(
            self.engine, self._window(window), regression=state.spec.task == "regression"
        )
        result = watch.concept_drift(state, data, detector)
        if record and result["change_points"]:
            self.record_event(
                "concept_drift",
                reason=f"{detector} found {len(result['change_points'])} change(s) in the error "
                f"rate over {window}",
                evidence=result,
                actor=actor,
            )
        return result

    @property
    def primary_metric(self) -> str:
        spec = self._read_state().spec
        return spec.primary_metric or default_primary_metric(spec)

    def set_policy(
        self, policy: Policy | None, *, with_drift: bool = False, with_estimate: bool = False
    ) -> None:
        """The retraining policy ``should_retrain`` evaluates (schedules, thresholds, drift,
        data volume, estimates, cooldown); ``with_drift`` / ``with_estimate`` make it gather
        drift shares and label-free estimates as evidence (they cost a window read)."""
        self._policy = policy
        self._policy_inputs = (with_drift, with_estimate)

    def should_retrain(
        self, window: Window = None, *, record: bool = True, actor: str = "feedback-loop"
    ) -> RetrainDecision | PolicyDecision:
        """Whether to retrain now, truthy when due, with the numbers behind the answer.

        With a policy (``set_policy``), the policy's decision over the evidence gathered from the
        log, the registry and the events; with only ``retrain_threshold``, the seed's rule: the
        primary metric over ``window`` (default: the loop's) breaches it on at least
        ``min_labeled`` labeled predictions; with neither, the default policy
        (:func:`feedback_loop.policy.default_policy`: a drop from the champion's baseline, a
        significant rise in the served errors (a smaller one when the features drifted), a
        28-day schedule fallback, and a cooldown that is shorter after a rejected retraining),
        given the window's drift check as evidence.
        A decision to retrain is recorded as a ``retrain_due`` event by ``actor``;
        ``record=False`` only evaluates and writes nothing (not even the drift or estimate
        events a policy's evidence would record).
        """
        chosen = self.window if window is None else window
        policy, (with_drift, with_estimate) = self._policy, self._policy_inputs
        if policy is None and self.retrain_threshold is None:
            # nothing configured: the default policy, with drift evidence
            policy, with_drift = default_policy(), True
        if policy is not None:
            evidence = lifecycle.gather_evidence(
                self,
                window=str(chosen),
                with_drift=with_drift,
                with_estimate=with_estimate,
                record_events=record,
            )
            verdict = policy.evaluate(evidence)
            if record and verdict:
                self.record_event(
                    "retrain_due", reason=verdict.reason, evidence=verdict.to_dict(), actor=actor
                )
            return verdict
        metrics = self.get_metrics(window=chosen)
        decision = decide(
            metrics,
            metric=self.primary_metric,
            threshold=self.retrain_threshold,
            min_labeled=self.min_labeled,
            window=str(chosen),
        )
        if record and decision:
            self.record_event(
                "retrain_due", reason=decision.reason, evidence=decision.to_dict(), actor=actor
            )
        return decision

    def set_trainer(
        self,
        trainer: Any,
        *,
        dataset: DatasetSpec | None = None,
        gate: GateConfig | None = None,
    ) -> None:
        """What ``trigger_retraining`` trains with: a scikit-learn estimator (cloned and
        refitted), a callable ``train(dataset) -> model``, or a command with ``{data}`` and
        ``{out}``; with how to assemble the dataset and how to gate the candidate."""
        self._trainer = None if trainer is None else as_trainer(trainer)
        if dataset is not None:
            self.dataset_spec = dataset
        if gate is not None:
            self.gate_config = gate

    def trigger_retraining(
        self, reason: str | None = None, *, actor: str = "user", promote: bool = True
    ) -> RetrainOutcome | Event:
        """Retrain now with the trainer set by ``set_trainer`` — dataset from the log, candidate
        registered, gated against the champion, promoted if it passes — and return what
        happened. Without a trainer, the request is recorded and queued as a job for
        ``feedback-loop worker``; the event is returned."""
        request_reason = reason or "retraining requested"
        check_event("retrain_requested", reason=request_reason, actor=actor)
        state = self._read_state()  # a model nothing was logged to is not created by a request
        if self._trainer is None:
            with write_transaction(self.engine) as conn:
                job = jobs_store.enqueue(
                    conn,
                    state.id,
                    "train",
                    {"reason": request_reason, "actor": actor},
                    self._now_us(),
                )
            event_id = self.record_event(
                "retrain_requested",
                reason=request_reason,
                actor=actor,
                evidence={"threshold": self.retrain_threshold, "job": job},
            )
            with read_transaction(self.engine) as conn:
                return get_event(conn, event_id)
        return lifecycle.retrain(
            self,
            self._trainer,
            spec=self.dataset_spec,
            gate=self.gate_config,
            reason=request_reason,
            actor=actor,
            promote=promote,
        )

    def promote(
        self,
        version: int,
        *,
        actor: str = "user",
        reason: str = "promoted by hand",
        force: bool = False,
    ) -> None:
        """Make ``version`` the champion (the previous champion stays registered). A version
        the gate rejected raises :class:`~feedback_loop.RejectedVersionError` unless
        ``force=True``; a forced promotion is recorded as such in the ``promoted`` event."""
        lifecycle.check_user_reason(reason)
        check_actor(actor)
        lifecycle.promote_version(self, version, actor=actor, reason=reason, force=force)

    def rollback(self, *, actor: str = "user", reason: str = "rolled back by hand") -> int:
        """Put back the champion before the current one; returns its version. Rollbacks walk
        the champion's history backwards: a second one goes one promotion further back."""
        check_reason(reason)
        check_actor(actor)
        return lifecycle.rollback(self, actor=actor, reason=reason)

    def watch_champion(
        self,
        *,
        min_samples: int = 200,
        margin: float = 0.0,
        alpha: float = 0.01,
        auto_rollback: bool = True,
        actor: str = "watch",
    ) -> WatchVerdict | None:
        """Post-promotion watch: roll back a new champion that is significantly worse live than
        the one it replaced (None when there is no promotion to watch). The rollback or the
        ``watch_passed`` event is recorded by ``actor``."""
        check_actor(actor)
        return lifecycle.watch_champion(
            self,
            min_samples=min_samples,
            margin=margin,
            alpha=alpha,
            auto_rollback=auto_rollback,
            actor=actor,
        )

    def policy_evidence(
        self, window: Window = None, *, with_drift: bool = False, with_estimate: bool = False
    ) -> Evidence:
        """The evidence retraining policies evaluate, gathered from the log and registry."""
        return lifecycle.gather_evidence(
            self,
            window=str(window or self.window),
            with_drift=with_drift,
            with_estimate=with_estimate,
        )

    # -- registry ----------------------------------------------------------------------------

    def register_model(
        self,
        model: Any,
        *,
        features: Any = None,
        predictions: Any = None,
        actuals: Any = None,
        train_start: Any = None,
        train_end: Any = None,
        train_rows: int | None = None,
        metrics: dict[str, Any] | None = None,
        info: dict[str, Any] | None = None,
        serializer: str = "joblib",
        alias: str | None = None,
        actor: str = "user",
    ) -> int:
        """Store a new version (1, 2, ...) of the model with its artifact (SHA-256 recorded),
        its training window and metrics, and — given its training ``features`` (with optional
        ``predictions`` and ``actuals``) — its reference profile. Returns the version."""
        return self._register(
            model,
            features=features,
            predictions=predictions,
            actuals=actuals,
            train_start=train_start,
            train_end=train_end,
            train_rows=train_rows,
            metrics=metrics,
            info=info,
            serializer=serializer,
            alias=alias,
            actor=actor,
        )

    def _register(
        self,
        model: Any,
        *,
        features: Any = None,
        predictions: Any = None,
        actuals: Any = None,
        train_start: Any = None,
        train_end: Any = None,
        train_rows: int | None = None,
        metrics: dict[str, Any] | None = None,
        info: dict[str, Any] | None = None,
        serializer: str = "joblib",
        alias: str | None = None,
        actor: str = "user",
        guard: Guard | None = None,
    ) -> int:
        """``register_model``, with a ``guard`` run inside the registering transaction."""
        state = self._model_state()
        if state.spec.task is None:
            state = self._task_from_model(model, required=features is not None)
        reference = None
        frame = None
        if features is not None:
            frame = to_frame(features)
            reference = watch.reference_from_frame(state, frame, predictions, actuals)
        details = dict(info or {})
        if frame is not None:
            details.setdefault("features", [str(c) for c in frame.columns])
        return registry_service.register(
            self.engine,
            self.artifacts,
            model_name=self.model_name,
            model_id=state.id,
            model=model,
            now_us=self._now_us(),
            actor=actor,
            serializer=serializer,
            train_start=None if train_start is None else to_us(train_start, field="train_start"),
            train_end=None if train_end is None else to_us(train_end, field="train_end"),
            train_rows=train_rows
            if train_rows is not None
            else (None if frame is None else len(frame)),
            metrics=metrics or {},
            info=details,
            reference=reference,
            alias=alias,
            guard=guard,
        )

    def _task_from_model(self, model: Any, *, required: bool) -> ModelState:
        """Settle an undeclared task from the model being registered (a reference profile
        needs it; otherwise the first prediction would settle it later)."""
        found = task_of_model(model)
        if found is None:
            if required:
                raise ValidationError(
                    "cannot tell the task from the model (no classes_ with predict_proba, not a "
                    "scikit-learn regressor): pass task= ('binary', 'multiclass' or "
                    "'regression') to FeedbackLoop",
                    field="task",
                )
            return self._model_state()
        task, positive = found
        with self._lock:
            with write_transaction(self.engine) as conn:
                record = model_store.ensure_model(conn, self.model_name, self._now_us())
                spec = merge_spec(record.spec, self._declared, self.model_name)
                if spec.task is None:
                    spec.task = task
                    if task == "binary" and spec.positive_label is None:
                        spec.positive_label = positive
                model_store.save_spec(conn, record.id, spec)
            self._state = None  # re-read with the label codes below
        return self._model_state()

    def _resolve_version(self, version: int | str) -> int:
        if isinstance(version, int) and not isinstance(version, bool):
            return version
        found = self.aliases().get(str(version))
        if found is None:
            raise ValidationError(f"no alias {version!r} is set", field="version")
        return found

    def load_model(self, version: int | str = "champion") -> Any:
        """The model object of a version or alias, loaded only if its SHA-256 matches."""
        state = self._read_state()
        return registry_service.load(self.engine, state.id, self._resolve_version(version))

    def versions(self) -> list[VersionRecord]:
        state = self._read_state()
        with read_transaction(self.engine) as conn:
            return registry_store.list_versions(conn, state.id)

    def aliases(self) -> dict[str, int]:
        state = self._read_state()
        with read_transaction(self.engine) as conn:
            return registry_store.all_aliases(conn, state.id)

    def set_alias(
        self,
        alias: str,
        version: int | None,
        *,
        actor: str = "user",
        reason: str = "set by hand",
        force: bool = False,
    ) -> int | None:
        """Point ``alias`` (``champion``, ``challenger`` or your own) at a version; returns the
        version it pointed at. Every move is kept in ``alias_history``.

        ``champion`` follows the rule of :meth:`promote`: a version the gate rejected raises
        :class:`~feedback_loop.RejectedVersionError` unless ``force=True``."""
        check_bounded(alias, field="alias", max_length=MAX_ALIAS_LENGTH)
        lifecycle.check_user_reason(reason)
        check_actor(actor)
        if alias == lifecycle.CHAMPION and version is not None and not force:
            rejected = lifecycle.rejection(self, version)
            if rejected is not None:
                raise RejectedVersionError(version, rejected)
        state = self._model_state()
        try:
            return registry_service.move_alias(
                self.engine,
                state.id,
                alias,
                version,
                now_us=self._now_us(),
                actor=actor,
                reason=reason,
            )
        except FeedbackLoopError as exc:
            raise ValidationError(str(exc), field="version") from exc

    def alias_history(self, alias: str | None = None) -> list[dict[str, Any]]:
        state = self._read_state()
        with read_transaction(self.engine) as conn:
            rows = registry_store.history(conn, state.id, alias)
        for row in rows:
            row["time"] = from_us(row.pop("ts"))
        return rows

    # -- events ------------------------------------------------------------------------------

    def record_event(
        self,
        kind: str,
        *,
        reason: str,
        evidence: dict[str, Any] | None = None,
        version: str | None = None,
        actor: str = "feedback-loop",
    ) -> int:
        """Append an event to the audit trail; returns its id."""
        return self._write_event(
            kind, reason=reason, evidence=evidence, version=version, actor=actor
        )

    def _write_event(
        self,
        kind: str,
        *,
        reason: str,
        actor: str,
        evidence: dict[str, Any] | None = None,
        version: str | None = None,
        guard: Guard | None = None,
    ) -> int:
        """``record_event``, with a ``guard`` run inside its transaction: the one place the
        loop's events are written, so each is checked against the audit trail's limits."""
        check_event(kind, reason=reason, actor=actor, version=version)
        state = self._model_state()  # the model row may be made here, before the transaction
        with write_transaction(self.engine) as conn:
            if guard is not None:
                guard(conn)
            return write_event(
                conn,
                ts_us=self._now_us(),
                kind=kind,
                model_id=state.id,
                version=version,
                actor=actor,
                reason=reason,
                evidence=evidence or {},
            )

    def events(
        self,
        *,
        kinds: Sequence[str] | None = None,
        since: Any = None,
        until: Any = None,
        limit: int | None = 100,
    ) -> list[Event]:
        """This model's events, newest first."""
        state = self._read_state()
        with read_transaction(self.engine) as conn:
            return read_events(
                conn,
                model_id=state.id,
                kinds=kinds,
                since_us=None if since is None else to_us(since, field="since"),
                until_us=None if until is None else to_us(until, field="until"),
                limit=limit,
            )

    def __repr__(self) -> str:
        return f"FeedbackLoop({self.model_name!r}, tracking_db={self.engine.url!r})"


def dispose_engines() -> None:
    """Close every pooled connection this process opened (tests and short scripts)."""
    with _ENGINES_LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


def _check_declared(**declared: str | None) -> None:
    """The declared key and metric names fit their columns (``label_key``, ``score_key``:
    200 characters; ``primary_metric``: 40)."""
    for name, value in declared.items():
        if value is not None:
            limit = MAX_PRIMARY_METRIC_LENGTH if name == "primary_metric" else MAX_KEY_NAME_LENGTH
            check_bounded(value, field=name, max_length=limit)


def _single_id(prediction_id: str | None, id_keyword: dict[str, Any]) -> str | None:
    """The prediction id from ``prediction_id=`` or the one ``*_id=`` keyword."""
    unknown = [k for k in id_keyword if not k.endswith("_id")]
    if unknown:
        raise TypeError(f"unexpected keyword argument {unknown[0]!r}")
    if len(id_keyword) > 1 or (id_keyword and prediction_id is not None):
        raise ValidationError(
            "give the prediction id once (prediction_id= or one *_id= keyword)",
            field="prediction_id",
        )
    value = prediction_id if prediction_id is not None else next(iter(id_keyword.values()), None)
    if value is None:
        return None
    return check_prediction_id(value)
