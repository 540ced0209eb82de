"""The evidence retraining policies look at, gathered from the log, the registry and the
events."""

from __future__ import annotations

import contextlib

from feedback_loop.collect.handle import ModelHandle
from feedback_loop.core.timeutil import Window, from_us
from feedback_loop.errors import ValidationError
from feedback_loop.monitor.drift_checks import check_window
from feedback_loop.monitor.estimates import estimate_window
from feedback_loop.monitor.metrics import LOWER_IS_BETTER, metrics_over, primary_metric
from feedback_loop.retrain.policy import Evidence
from feedback_loop.store import registry as registry_store
from feedback_loop.store.engine import read_transaction

CHAMPION = "champion"


def gather_evidence(
    handle: ModelHandle,
    *,
    window: Window,
    with_drift: bool = False,
    with_estimate: bool = False,
    record_events: bool = True,
) -> Evidence:
    """What the retraining policies look at, read from the log, the registry and the events
    (``record_events=False``: the drift check and the estimate record no event either)."""
    metric = primary_metric(handle)
    metrics = metrics_over(handle, window)
    state = handle.read_state()
    with read_transaction(handle.engine) as conn:
        champion = registry_store.all_aliases(conn, state.id).get(CHAMPION)
        versions = {v.version: v for v in registry_store.list_versions(conn, state.id)}
    record = versions.get(champion) if champion is not None else None
    baseline = None
    if record is not None:
        baseline = record.metrics.get(f"holdout_{metric}", record.metrics.get(f"baseline_{metric}"))
    last_trained = max((v.created_at for v in versions.values()), default=None)
    triggered = handle.events(kinds=["retrain_started"], limit=1)
    drift_share: float | None = None
    drifted: tuple[str, ...] = ()
    if with_drift:
        try:
            report = check_window(handle, window, record=record_events)
            drift_share = None if report.dataset is None else report.dataset.share
            drifted = tuple(c for c in report.drifted_columns if not c.startswith("__"))
        except ValidationError:
            pass
    estimated = None
    if with_estimate:
        with contextlib.suppress(ValidationError):
            estimated = estimate_window(handle, window, record=record_events).get(metric)
    new_labels = 0
    if last_trained is not None:
        since = metrics_over(handle, (from_us(last_trained), from_us(handle.now_us() + 1)))
        new_labels = int(since["labeled"])
    return Evidence(
        now=handle.clock.now(),
        last_trained_at=None if last_trained is None else from_us(last_trained),
        last_triggered_at=triggered[0].time if triggered else None,
        metric_name=metric,
        metric_value=metrics.get(metric),
        metric_lower_is_better=metric in LOWER_IS_BETTER,
        labeled=int(metrics["labeled"]),
        baseline=baseline,
        drift_share=drift_share,
        drifted_features=drifted,
        new_labels_since_training=new_labels,
        estimated_value=estimated,
        estimated_baseline=baseline,
    )
