"""The public face, declared once: what ``FeedbackLoop`` (in-process) and ``Client`` (over
HTTP) both offer, with the same names, parameters and meaning.

Both classes implement :class:`LoopAPI`; ``tests/test_api.py`` checks that every parameter
declared here is accepted by each, with the same kind and default. An implementation may add
keyword-only parameters of its own (``FeedbackLoop`` takes the ``actor`` a change is recorded
under; a ``Client``'s actor is its API key). Return types name both implementations' answers
where they differ (a ``Client`` gets plain dicts where a ``FeedbackLoop`` has records).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from feedback_loop.collect.recording import LogResult
    from feedback_loop.core.timeutil import Window
    from feedback_loop.deploy.candidates import RetrainOutcome
    from feedback_loop.deploy.watch_verdict import WatchVerdict
    from feedback_loop.monitor.drift_report import DriftReport
    from feedback_loop.retrain.decision import RetrainDecision
    from feedback_loop.retrain.policy import PolicyDecision
    from feedback_loop.store.events import Event
    from feedback_loop.store.outcomes import OutcomeResult
    from feedback_loop.store.registry import VersionRecord


class LoopAPI(Protocol):
    """Log, monitor, decide, retrain and deploy for one model."""

    model_name: str | None

    # -- collect -----------------------------------------------------------------------------

    @property
    def task(self) -> str | None:
        """The model's task, once declared or inferred (reading it creates no model)."""
        ...

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
        ...

    def log_predictions(self, rows: Any) -> LogResult:
        """Log many predictions at once: a list of dicts, a DataFrame or an Arrow table.

        All rows are stored, or none (the error names the first bad row and field).
        """
        ...

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
        ...

    def log_outcomes(self, rows: Any) -> OutcomeResult:
        """Log many outcomes at once (all or none): ``prediction_id``, ``actual`` and/or
        ``feedback``, optional ``source`` and ``timestamp``."""
        ...

    def unmatched_outcomes(self) -> int:
        """Outcomes whose prediction has not arrived (yet)."""
        ...

    def get_prediction(self, prediction_id: str) -> dict[str, Any] | None:
        """A stored prediction as logged (features, prediction, tags, ...) and its current
        actual, or None if the id is unknown."""
        ...

    # -- monitor -----------------------------------------------------------------------------

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
        ...

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
        """Store the reference that drift checks and label-free estimates compare against.

        Either the data the model was trained or validated on (``features`` as a DataFrame or
        Arrow table, with optional ``predictions`` — positive-class scores for a binary model —
        and ``actuals``), or a window of logged predictions (``window=``). It is summarised
        once into compact profiles; monitoring never reads the reference rows again.
        """
        ...

    def check_drift(
        self,
        window: Window = "7d",
        reference: str = "default",
        *,
        methods: dict[str, str] | None = None,
        share_threshold: float = 0.5,
        correction: str = "none",
        record: bool = True,
    ) -> DriftReport | dict[str, Any]:
        """Drift of every feature, the prediction and the label over ``window`` against the
        stored reference (``methods`` picks a column's test: ``{"age": "psi"}``); writes a
        ``drift_detected`` event when any column drifted, unless ``record=False`` (a read that
        writes nothing)."""
        ...

    def estimate_performance(
        self, window: Window = "7d", reference: str = "default", *, record: bool = True
    ) -> dict[str, Any]:
        """Label-free estimate (binary classifiers): expected accuracy, precision, recall, F1 and
        ROC AUC over all predictions of the window, from scores calibrated on the reference.
        Writes an ``estimate_breach`` event when the estimate breaches ``retrain_threshold``,
        unless ``record=False``."""
        ...

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
        """Metrics per slice of the window's labeled predictions, worst first: at most
        ``limit`` slices. ``by`` names tags (``region``) or features; slices with fewer than
        ``min_support`` rows are left out. Writes a ``weak_segments`` event when slices breach
        ``retrain_threshold``, unless ``record=False``."""
        ...

    def detect_concept_drift(
        self, window: Window = "30d", detector: str = "adwin", *, record: bool = True
    ) -> dict[str, Any]:
        """Run a streaming concept-drift detector (``adwin``, ``ddm``, ``eddm``, ``hddm_a``,
        ``page_hinkley``) over the window's errors in time order; a detected change writes a
        ``concept_drift`` event with the change points, unless ``record=False``."""
        ...

    # -- retrain -----------------------------------------------------------------------------

    def should_retrain(
        self, window: Window = None, *, record: bool = True
    ) -> RetrainDecision | PolicyDecision:
        """Whether to retrain now, truthy when due, with the numbers behind the answer.

        With a policy, the policy's decision over the evidence gathered from the log, the
        registry and the events; with only ``retrain_threshold``, the seed's rule: the primary
        metric over ``window`` (default: the loop's) breaches it on at least ``min_labeled``
        labeled predictions. A library loop with neither uses the default policy
        (:func:`feedback_loop.retrain.policy.default_policy`, with the window's drift check as
        evidence). A decision to retrain is recorded as a ``retrain_due`` event;
        ``record=False`` only evaluates and writes nothing.
        """
        ...

    def trigger_retraining(self, reason: str | None = None) -> RetrainOutcome | Event:
        """Retrain now: with a trainer at hand, the dataset is read from the log, the candidate
        registered, gated against the champion and promoted if it passes, and the outcome
        returned; otherwise the request is recorded and queued for ``feedback-loop worker``,
        and its ``retrain_requested`` event returned."""
        ...

    # -- deploy ------------------------------------------------------------------------------

    def promote(
        self, version: int, *, reason: str = "promoted by hand", force: bool = False
    ) -> None:
        """Make ``version`` the champion (the previous champion stays registered). A version
        the gate rejected raises :class:`~feedback_loop.RejectedVersionError` unless
        ``force=True``; a forced promotion is recorded as such in the ``promoted`` event."""
        ...

    def rollback(self, *, reason: str = "rolled back by hand") -> int:
        """Put back the champion before the current one; returns its version. Rollbacks walk
        the champion's history backwards: a second one goes one promotion further back."""
        ...

    def watch_champion(
        self,
        *,
        min_samples: int = 200,
        margin: float = 0.0,
        alpha: float = 0.01,
        auto_rollback: bool = True,
    ) -> WatchVerdict | None:
        """The post-promotion watch: roll back a new champion that is significantly worse live
        than the one it replaced (None when there is no promotion to watch). The rollback or
        the ``watch_passed`` event is recorded."""
        ...

    def versions(self) -> list[VersionRecord] | list[dict[str, Any]]:
        """The model's registered versions, oldest first."""
        ...

    def aliases(self) -> dict[str, int]:
        """Alias name → version (``champion``, ``challenger``, ...)."""
        ...

    def set_alias(
        self,
        alias: str,
        version: int | None,
        *,
        reason: str = "set by hand",
        force: bool = False,
    ) -> int | None:
        """Point ``alias`` (``champion``, ``challenger`` or your own) at a version; returns the
        version it pointed at. Every move is kept in ``alias_history``. ``champion`` follows
        the rule of :meth:`promote`: a version the gate rejected raises
        :class:`~feedback_loop.RejectedVersionError` unless ``force=True``."""
        ...

    def alias_history(self, alias: str | None = None) -> list[dict[str, Any]]:
        """Every move of ``alias`` (or of every alias), oldest first."""
        ...

    # -- the audit trail ---------------------------------------------------------------------

    def record_event(
        self,
        kind: str,
        *,
        reason: str,
        evidence: dict[str, Any] | None = None,
        version: str | None = None,
    ) -> int:
        """Append an event to the audit trail; returns its id."""
        ...

    def events(self, *, kinds: Sequence[str] | None = None, limit: int | None = 100) -> list[Event]:
        """This model's events, newest first."""
        ...
