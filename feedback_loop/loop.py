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

import os
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from feedback_loop.api import LoopAPI
from feedback_loop.archive.export import ExportResult, Progress, export_log
from feedback_loop.archive.retention import RetentionResult, apply_retention
from feedback_loop.collect import lookups
from feedback_loop.collect.handle import ModelHandle
from feedback_loop.collect.logger import PredictionLog
from feedback_loop.collect.recording import LogResult
from feedback_loop.core.clock import Clock, SystemClock
from feedback_loop.core.limits import (
    MAX_ALIAS_LENGTH,
    MAX_KEY_NAME_LENGTH,
    MAX_PRIMARY_METRIC_LENGTH,
    check_actor,
    check_bounded,
    check_event,
    check_reason,
)
from feedback_loop.core.naming import check_model_name
from feedback_loop.core.tasks import TASKS, TaskSpec
from feedback_loop.core.timeutil import Window, parse_duration
from feedback_loop.deploy import promotion, registry, watch
from feedback_loop.deploy.candidates import RetrainOutcome, retrain
from feedback_loop.deploy.gate import GateConfig
from feedback_loop.deploy.watch_verdict import WatchVerdict
from feedback_loop.errors import UnknownModelError, ValidationError
from feedback_loop.monitor import concept_drift, drift_checks, estimates, references, segments
from feedback_loop.monitor.drift_report import DriftReport
from feedback_loop.monitor.metrics import metrics_over, primary_metric
from feedback_loop.retrain.dataset import DatasetSpec
from feedback_loop.retrain.decision import RetrainDecision, RetrainRule, should_retrain
from feedback_loop.retrain.evidence import gather_evidence
from feedback_loop.retrain.policy import Evidence, Policy, PolicyDecision
from feedback_loop.retrain.requests import queue_retraining
from feedback_loop.retrain.trainers import Trainer, as_trainer
from feedback_loop.store.artifacts import LocalArtifactStore
from feedback_loop.store.events import Event
from feedback_loop.store.outcomes import OutcomeResult
from feedback_loop.store.registry import VersionRecord
from feedback_loop.store.shared import dispose_engines, engine_for

__all__ = ["FeedbackLoop", "dispose_engines"]


class FeedbackLoop(LoopAPI):
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
    retention:
        How long raw predictions, outcomes and features are kept (``'90d'``, a timedelta);
        older hours keep only their monitoring summaries. Stored with the model by
        :meth:`apply_retention`, which the worker and ``feedback-loop db prune`` also run.
        None (the default) keeps what the model has stored, which is no retention unless set.
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
        retention: str | timedelta | None = None,
    ):
        check_model_name(model_name)
        if task is not None and task not in TASKS:
            raise ValidationError(f"must be one of {', '.join(TASKS)}", field="task")
        if retrain_threshold is not None and not isinstance(retrain_threshold, int | float):
            raise ValidationError("must be a number", field="retrain_threshold")
        if min_labeled < 1:
            raise ValidationError("must be at least 1", field="min_labeled")
        parse_duration(window)
        self.retention = None if retention is None else parse_duration(retention, field="retention")
        _check_declared(label_key=label_key, score_key=score_key, primary_metric=primary_metric)
        self.model_name = model_name
        self.retrain_threshold = retrain_threshold
        self.window = window
        self.min_labeled = min_labeled
        self.clock: Clock = clock or SystemClock()
        self.engine = engine_for(tracking_db)
        self.artifacts = LocalArtifactStore(
            artifact_root or os.environ.get("FEEDBACK_LOOP_ARTIFACTS") or "feedback_loop_artifacts"
        )
        declared = TaskSpec(
            task=task,
            label_key=label_key,
            score_key=score_key,
            positive_label=positive_label,
            primary_metric=primary_metric,
            extra={"negative_label": negative_label} if negative_label is not None else {},
        )
        # What every stage's services work with: this model in this database, on this clock.
        self.handle = ModelHandle(model_name, self.engine, self.clock, declared, self.artifacts)
        self._log = PredictionLog(self.handle)
        self._trainer: Trainer | None = None
        self.dataset_spec = DatasetSpec()
        self.gate_config = GateConfig()
        self._policy: Policy | None = None
        self._policy_inputs = (False, False)

    @property
    def task(self) -> str | None:
        try:
            return self.handle.read_state().spec.task
        except UnknownModelError:
            return self.handle.declared.task

    # -- collect -----------------------------------------------------------------------------

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
        return self._log.prediction(
            prediction_id,
            id_keyword,
            prediction=prediction,
            features=features,
            actual=actual,
            timestamp=timestamp,
            version=version,
            tags=tags,
            latency_ms=latency_ms,
        )

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
        return await self._log.prediction_async(
            prediction_id,
            id_keyword,
            prediction=prediction,
            features=features,
            actual=actual,
            timestamp=timestamp,
            version=version,
            tags=tags,
            latency_ms=latency_ms,
        )

    def log_predictions(self, rows: Any) -> LogResult:
        return self._log.predictions(rows)

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
        return self._log.outcome(
            prediction_id,
            id_keyword,
            actual=actual,
            source=source,
            timestamp=timestamp,
            feedback=feedback,
        )

    def log_outcomes(self, rows: Any) -> OutcomeResult:
        return self._log.outcomes(rows)

    def unmatched_outcomes(self) -> int:
        return lookups.unmatched_outcomes(self.handle)

    def get_prediction(self, prediction_id: str) -> dict[str, Any] | None:
        return lookups.get_prediction(self.handle, prediction_id)

    # -- monitor -----------------------------------------------------------------------------

    def get_metrics(
        self,
        window: Window = "7d",
        version: str | int | None = None,
        segment: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return metrics_over(self.handle, window, version, segment)

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
        return references.set_reference(
            self.handle,
            features,
            predictions=predictions,
            actuals=actuals,
            window=window,
            version=version,
            name=name,
            actor=actor,
        )

    def check_drift(
        self,
        window: Window = "7d",
        reference: str = "default",
        *,
        methods: dict[str, str] | None = None,
        share_threshold: float = 0.5,
        correction: str = "none",
        record: bool = True,
        version: str | int | None = None,
        actor: str = "feedback-loop",
    ) -> DriftReport:
        return drift_checks.check_window(
            self.handle,
            window,
            reference,
            version=version,
            methods=methods,
            share_threshold=share_threshold,
            correction=correction,
            record=record,
            actor=actor,
        )

    def estimate_performance(
        self,
        window: Window = "7d",
        reference: str = "default",
        *,
        record: bool = True,
        actor: str = "feedback-loop",
    ) -> dict[str, Any]:
        return estimates.estimate_window(
            self.handle,
            window,
            reference,
            threshold=self.retrain_threshold,
            record=record,
            actor=actor,
        )

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
        return segments.weakest_segments(
            self.handle,
            window,
            by,
            metric=metric,
            min_support=min_support,
            limit=limit,
            threshold=self.retrain_threshold,
            record=record,
            actor=actor,
        )

    def detect_concept_drift(
        self,
        window: Window = "30d",
        detector: str = "adwin",
        *,
        record: bool = True,
        actor: str = "feedback-loop",
    ) -> dict[str, Any]:
        return concept_drift.detect(self.handle, window, detector, record=record, actor=actor)

    @property
    def primary_metric(self) -> str:
        """The metric ``should_retrain`` and the gate watch."""
        return primary_metric(self.handle)

    # -- archive -----------------------------------------------------------------------------

    def export(
        self,
        out: str | os.PathLike[str],
        *,
        since: Any = None,
        until: Any = None,
        chunk_rows: int = 100_000,
        overwrite: bool = False,
        progress: Progress | None = None,
    ) -> ExportResult:
        """Write the log of predictions in ``[since, until)`` (default: all) as Parquet under
        ``out``, partitioned hive style by model and UTC day of prediction time; ``progress``
        is called with ``(rows written, rows in the export)`` after each chunk."""
        return export_log(
            self.handle,
            Path(out),
            since=since,
            until=until,
            chunk_rows=chunk_rows,
            overwrite=overwrite,
            progress=progress,
        )

    def apply_retention(self) -> RetentionResult:
        """Drop raw rows older than the retention (this loop's, stored with the model, else
        the one stored before), keeping the summaries ``get_metrics`` and ``check_drift`` read
        for those hours."""
        return apply_retention(self.handle, self.retention)

    # -- retrain -----------------------------------------------------------------------------

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
        with_drift, with_estimate = self._policy_inputs
        rule = RetrainRule(
            self._policy, with_drift, with_estimate, self.retrain_threshold, self.min_labeled
        )
        chosen = self.window if window is None else window
        return should_retrain(self.handle, rule, chosen, record=record, actor=actor)

    def policy_evidence(
        self, window: Window = None, *, with_drift: bool = False, with_estimate: bool = False
    ) -> Evidence:
        """The evidence retraining policies evaluate, gathered from the log and registry."""
        return gather_evidence(
            self.handle,
            window=str(window or self.window),
            with_drift=with_drift,
            with_estimate=with_estimate,
        )

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

    @property
    def trainer(self) -> Trainer | None:
        """The trainer ``set_trainer`` gave, if any."""
        return self._trainer

    def trigger_retraining(
        self, reason: str | None = None, *, actor: str = "user", promote: bool = True
    ) -> RetrainOutcome | Event:
        request_reason = reason or "retraining requested"
        check_event("retrain_requested", reason=request_reason, actor=actor)
        self.handle.read_state()  # a model nothing was logged to is not created by a request
        if self._trainer is None:
            return queue_retraining(
                self.handle,
                reason=request_reason,
                actor=actor,
                evidence={"threshold": self.retrain_threshold},
            )
        return retrain(
            self.handle,
            self._trainer,
            spec=self.dataset_spec,
            gate=self.gate_config,
            reason=request_reason,
            actor=actor,
            promote=promote,
        )

    # -- deploy ------------------------------------------------------------------------------

    def promote(
        self,
        version: int,
        *,
        reason: str = "promoted by hand",
        force: bool = False,
        actor: str = "user",
    ) -> None:
        promotion.check_user_reason(reason)
        check_actor(actor)
        promotion.promote_version(self.handle, version, actor=actor, reason=reason, force=force)

    def rollback(self, *, reason: str = "rolled back by hand", actor: str = "user") -> int:
        check_reason(reason)
        check_actor(actor)
        return promotion.rollback(self.handle, actor=actor, reason=reason)

    def watch_champion(
        self,
        *,
        min_samples: int = 200,
        margin: float = 0.0,
        alpha: float = 0.01,
        auto_rollback: bool = True,
        actor: str = "watch",
    ) -> WatchVerdict | None:
        check_actor(actor)
        return watch.watch_champion(
            self.handle,
            min_samples=min_samples,
            margin=margin,
            alpha=alpha,
            auto_rollback=auto_rollback,
            actor=actor,
        )

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
        return registry.register_version(
            self.handle,
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

    def load_model(self, version: int | str = "champion") -> Any:
        """The model object of a version or alias, loaded only if its SHA-256 matches."""
        return registry.load_model(self.handle, version)

    def versions(self) -> list[VersionRecord]:
        return registry.versions(self.handle)

    def aliases(self) -> dict[str, int]:
        return registry.aliases(self.handle)

    def set_alias(
        self,
        alias: str,
        version: int | None,
        *,
        reason: str = "set by hand",
        force: bool = False,
        actor: str = "user",
    ) -> int | None:
        check_bounded(alias, field="alias", max_length=MAX_ALIAS_LENGTH)
        promotion.check_user_reason(reason)
        check_actor(actor)
        return promotion.set_alias(
            self.handle, alias, version, actor=actor, reason=reason, force=force
        )

    def alias_history(self, alias: str | None = None) -> list[dict[str, Any]]:
        return registry.alias_history(self.handle, alias)

    # -- the audit trail ---------------------------------------------------------------------

    def record_event(
        self,
        kind: str,
        *,
        reason: str,
        evidence: dict[str, Any] | None = None,
        version: str | None = None,
        actor: str = "feedback-loop",
    ) -> int:
        return self.handle.write_event(
            kind, reason=reason, evidence=evidence, version=version, actor=actor
        )

    def events(
        self,
        *,
        kinds: Sequence[str] | None = None,
        limit: int | None = 100,
        since: Any = None,
        until: Any = None,
    ) -> list[Event]:
        return self.handle.events(kinds=kinds, since=since, until=until, limit=limit)

    def __repr__(self) -> str:
        return f"FeedbackLoop({self.model_name!r}, tracking_db={self.engine.url!r})"


def _check_declared(**declared: str | None) -> None:
    """The declared key and metric names fit their columns (``label_key``, ``score_key``:
    200 characters; ``primary_metric``: 40)."""
    for name, value in declared.items():
        if value is not None:
            limit = MAX_PRIMARY_METRIC_LENGTH if name == "primary_metric" else MAX_KEY_NAME_LENGTH
            check_bounded(value, field=name, max_length=limit)
