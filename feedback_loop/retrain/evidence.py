"""The evidence retraining policies look at, gathered from the log, the registry and the
events."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

import numpy as np

from feedback_loop.collect.handle import ModelHandle
from feedback_loop.core.timeutil import Window, from_us
from feedback_loop.errors import ValidationError
from feedback_loop.monitor.drift_checks import check_window
from feedback_loop.monitor.estimates import estimate_window
from feedback_loop.monitor.metrics import LOWER_IS_BETTER, metrics_over, primary_metric
from feedback_loop.retrain.policy import Evidence
from feedback_loop.stats.drift.changepoint import error_increase
from feedback_loop.store import registry as registry_store
from feedback_loop.store.engine import read_transaction
from feedback_loop.store.reader import WindowFilter, read_rows

CHAMPION = "champion"


def gather_evidence(
    handle: ModelHandle,
    *,
    window: Window,
    with_drift: bool = False,
    with_estimate: bool = False,
    record_events: bool = True,
    change_window: timedelta | None = timedelta(days=28),
) -> Evidence:
    """What the retraining policies look at, read from the log, the registry and the events
    (``record_events=False``: the drift check and the estimate record no event either).
    ``change_window``: where the change detector looks for a rise in the served errors."""
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
    last_outcome, since_trigger, in_a_row = _last_outcome(
        handle, triggered[0].time if triggered else None
    )
    change = _error_change(handle, change_window, champion)
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
        last_outcome=last_outcome,
        new_labels_since_trigger=since_trigger,
        error_change_z=None if change is None else change[0],
        rows_since_change=0 if change is None else change[1],
        rejections_in_a_row=in_a_row,
    )


def _last_outcome(handle: ModelHandle, triggered: Any) -> tuple[str | None, int | None, int]:
    """How the newest retraining ended (``promoted``, ``rejected`` or None while it runs),
    how many labeled predictions were made since it started, and how many gate verdicts in a
    row (newest first) were rejections."""
    if triggered is None:
        return None, None, 0
    kinds = {
        e.kind
        for e in handle.events(
            kinds=["gate_passed", "gate_rejected", "retrain_failed"], since=triggered, limit=5
        )
    }
    outcome = None
    if "gate_passed" in kinds:
        outcome = "promoted"
    elif kinds:
        outcome = "rejected"
    since = metrics_over(handle, (triggered, from_us(handle.now_us() + 1)))
    in_a_row = 0
    for event in handle.events(kinds=["gate_passed", "gate_rejected"], limit=16):
        if event.kind == "gate_passed":
            break
        in_a_row += 1
    return outcome, int(since["labeled"]), in_a_row


def _error_change(
    handle: ModelHandle, window: timedelta | None, champion: int | None
) -> tuple[float, int] | None:
    """The change detector over the champion's own served errors within the training window:
    the z of the most significant rise, and how many labeled rows followed it. Only the
    champion's rows: a change an earlier champion suffered (and a promotion answered) is not
    a reason to retrain again (when predictions are logged without their version, all rows
    of the window)."""
    if window is None or champion is None:
        return None
    state = handle.read_state()
    regression = state.spec.task == "regression"
    now = handle.now_us()
    start = max(now - int(window.total_seconds() * 1e6), 0)
    with handle.engine.connect() as conn, conn.begin():
        rows = read_rows(
            conn, WindowFilter(state.id, start, now + 1, str(champion)), regression=regression
        )
        if not len(rows):  # predictions logged without their version: the whole window
            rows = read_rows(conn, WindowFilter(state.id, start, now + 1), regression=regression)
    labeled = rows.take(rows.labeled if regression else rows.labeled & (rows.b != -1))
    order = np.argsort(labeled.ts, kind="stable")
    if regression:
        errors = np.abs(labeled.a - labeled.b)[order]
    else:
        errors = (labeled.a != labeled.b).astype(np.float64)[order]
    change = error_increase(errors, min_segment=50, min_z=0.0)
    if change is None:
        return None
    return change.z, len(errors) - change.index
