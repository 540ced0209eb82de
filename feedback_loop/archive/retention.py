"""Retention: drop a model's raw rows past its horizon, keep what monitoring reads.

``retention='90d'`` keeps 90 days of predictions, outcomes and features; older hours are
answered by their summaries alone (the metric blocks behind ``get_metrics`` and the drift
summaries behind ``check_drift``), so months of history stay chartable at a fixed cost.

A pass, in order:

1. raise the model's watermark to the horizon (the hour ``retention`` before now): from then on
   no writer marks an hour before it dirty, so no kept count is ever recounted from rows that
   are gone;
2. count every hour before the horizon that is not counted yet (dirty metric blocks, hours
   without a clean drift summary on the cells of a reference in use), from its rows;
3. drop, a day at a time under the model's exclusive lock, the rows of the hours whose counts
   are clean; an hour dirtied in between keeps its rows until the next pass counts it.

What the summaries cannot answer for a pruned hour: windows that read rows (segments, exact
tests, label-free estimates, training sets, exports), a partial hour at a window's edge, and a
reference set after the hour was pruned (its cells were never counted on those rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from feedback_loop.collect.drift_counts import layout_of
from feedback_loop.collect.handle import ModelHandle
from feedback_loop.core.timeutil import from_us
from feedback_loop.monitor.window import summarised_window
from feedback_loop.store.blocks import PERIOD_US, hour_runs, lock_exclusive
from feedback_loop.store.blocks import read_window as read_blocks
from feedback_loop.store.engine import read_transaction, write_transaction
from feedback_loop.store.reader import WindowFilter
from feedback_loop.store.retention import (
    Dropped,
    drop_rows,
    drop_unmatched_outcomes,
    hours_before,
    raise_watermark,
    save_retention,
    stored_retention,
    uncounted_hours,
)
from feedback_loop.store.summaries import stored_references

_DAY_US = 24 * PERIOD_US


@dataclass(frozen=True)
class RetentionResult:
    """What one pass did for one model."""

    model: str
    retention: timedelta | None  # None: the model keeps its rows for ever
    horizon: datetime | None  # rows of hours before it were dropped
    predictions_dropped: int = 0
    outcomes_dropped: int = 0
    hours_kept: int = 0  # hours past the horizon left for the next pass (changed meanwhile)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "retention_s": None if self.retention is None else self.retention.total_seconds(),
            "horizon": None if self.horizon is None else self.horizon.isoformat(),
            "predictions_dropped": self.predictions_dropped,
            "outcomes_dropped": self.outcomes_dropped,
            "hours_kept": self.hours_kept,
        }


def apply_retention(handle: ModelHandle, declared: timedelta | None) -> RetentionResult:
    """One retention pass for ``handle``'s model. A ``declared`` retention is stored with the
    model first (so the CLI and the worker apply it later too); otherwise the stored one is
    used, and a model without one keeps its rows."""
    state = handle.read_state()
    with write_transaction(handle.engine) as conn:
        if declared is not None:
            save_retention(conn, state.id, _us(declared))
        retention_us = stored_retention(conn, state.id)
    if retention_us is None:
        return RetentionResult(handle.name, None, None)
    horizon = (handle.now_us() - retention_us) // PERIOD_US * PERIOD_US
    with write_transaction(handle.engine) as conn:
        lock_exclusive(conn, state.id)
        raise_watermark(conn, state.id, horizon)
        hours = hours_before(conn, state.id, horizon)
    days = _days(hours)
    regression = state.spec.task == "regression"
    for start, end in days:
        _count(handle, state, start, end, regression)
    dropped, kept = Dropped(), 0
    for start, end in days:
        with write_transaction(handle.engine) as conn:
            lock_exclusive(conn, state.id)
            layouts = list(_references(conn, state.id, state.spec.task))
            uncounted = uncounted_hours(conn, state.id, layouts, start, end)
            kept += len(uncounted)
            ready = [p for p in hours if start <= p < end and p not in uncounted]
            for a, b in hour_runs(ready):
                dropped += drop_rows(conn, state.id, a, b)
    with write_transaction(handle.engine) as conn:
        lock_exclusive(conn, state.id)
        stale = drop_unmatched_outcomes(conn, state.id, horizon)
    return RetentionResult(
        handle.name,
        timedelta(microseconds=retention_us),
        from_us(horizon),
        dropped.predictions,
        dropped.outcomes + stale,
        kept,
    )


def _count(handle: ModelHandle, state: Any, start: int, end: int, regression: bool) -> None:
    """Count the hours of ``[start, end)`` that are not counted yet, from their rows: the
    metric blocks, and the drift summaries on every reference's cells."""
    with read_transaction(handle.engine) as conn:
        references = _references(conn, state.id, state.spec.task)
        todo = uncounted_hours(conn, state.id, list(references), start, end)
    for a, b in hour_runs(sorted(todo)):
        window = WindowFilter(state.id, a, b)
        read_blocks(handle.engine, window, regression=regression)
        for stored in references.values():
            summarised_window(handle, state, stored, window)


def _references(conn: Any, model_id: int, task: str | None) -> dict[str, dict[str, Any]]:
    """The model's references by the digest of their cells (one per distinct layout)."""
    return {layout_of(data, task).digest: data for data in stored_references(conn, model_id)}


def _days(hours: list[int]) -> list[tuple[int, int]]:
    """The UTC days ``[start, end)`` that hold the ``hours``: one transaction each bounds how
    many rows a drop holds locked and how many a count reads."""
    return [(d, d + _DAY_US) for d in sorted({h - h % _DAY_US for h in hours})]


def _us(span: timedelta) -> int:
    return int(span.total_seconds() * 1_000_000)
