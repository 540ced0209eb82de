"""Reading a window of the log for monitoring: its rows and features, as arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine

from feedback_loop.collect.drift_counts import (
    ColumnCells,
    Layout,
    count_groups,
    count_rows,
    label_counts,
    layout_of,
)
from feedback_loop.collect.handle import ModelHandle
from feedback_loop.collect.recording import ModelState
from feedback_loop.core.timeutil import Window, resolve_window
from feedback_loop.store.blocks import PERIOD_US, hour_runs, lock_exclusive, period_of
from feedback_loop.store.blocks import read_window as read_blocks
from feedback_loop.store.engine import read_transaction, write_transaction
from feedback_loop.store.features import WindowFeatures, read_features
from feedback_loop.store.reader import WindowFilter, read_rows, read_scores
from feedback_loop.store.summaries import (
    Summary,
    hours_with_data,
    read_summaries,
    save_summaries,
)


def keys_of_codes(state: ModelState, codes: np.ndarray) -> np.ndarray:
    """Label codes back to their stored keys (``'"cat"'``, ``'1'``); -1 (thumbs down) and any
    other code without a key (the unlabeled sentinel) are None. One lookup array, indexed once."""
    codes = np.asarray(codes, dtype=np.int64)
    low = min(min(state.codes.values(), default=0), 0)
    high = max(state.codes.values(), default=-1)
    unknown = high - low + 1  # the last slot answers every code without a key
    table = np.full(unknown + 1, None, dtype=object)
    for key, code in state.codes.items():
        table[code - low] = key
    inside = (codes >= low) & (codes <= high)
    return table[np.where(inside, codes - low, unknown)]


def window_features(engine: Engine, window: WindowFilter, *, regression: bool) -> WindowFeatures:
    with engine.connect() as conn, conn.begin():
        return read_features(conn, window, regression=regression)


def window_scores(engine: Engine, window: WindowFilter) -> np.ndarray:
    """The logged scores of a window (only that column read)."""
    with engine.connect() as conn, conn.begin():
        return read_scores(conn, window)


def window_filter(
    handle: ModelHandle, window: Window, version: str | int | None = None
) -> WindowFilter:
    """The rows of ``window`` (a duration ending now, a pair, ``'all'``), of one version."""
    state = handle.read_state()
    start, end = resolve_window(window, handle.clock.now())
    return WindowFilter(state.id, start, end, None if version is None else str(version))


def read_window(
    handle: ModelHandle, window: Window, version: str | int | None = None
) -> WindowFeatures:
    """The window's rows with their features."""
    regression = handle.read_state().spec.task == "regression"
    return window_features(
        handle.engine, window_filter(handle, window, version), regression=regression
    )


@dataclass
class WindowCounts:
    """A window reduced to what a drift check reads: its rows' counts on a reference's cells
    (``summary``, on ``layout``), and the label column's counts (None without a label profile).
    """

    layout: Layout
    summary: Summary
    label: tuple[ColumnCells, Summary] | None


def count_window(
    state: ModelState, stored: dict[str, Any], data: WindowFeatures, layout: Layout | None = None
) -> WindowCounts:
    """The counts of a window read from the log (``stored``: the reference's data)."""
    layout = layout or layout_of(stored, state.spec.task)
    summary = count_rows(
        layout,
        data.features,
        score=data.score,
        pred_code=data.pred_code,
        pred_value=data.pred_value,
    )
    labeled = data.labeled & (data.actual_code != -1)
    label = label_counts(
        state.spec.task, stored, data.actual_code[labeled], data.actual_value[data.labeled]
    )
    return WindowCounts(layout, summary, label)


def summarised_window(
    handle: ModelHandle, state: ModelState, stored: dict[str, Any], window: WindowFilter
) -> WindowCounts | None:
    """The window's counts from the hourly drift summaries, or None when a window cannot use
    them (a segment, less than a whole hour): then the caller reads the rows.

    Whole hours come from their summaries; hours without a clean summary (new data since, a
    reference set after the data) are counted from the log once, under the model's exclusive
    lock, and kept. The partial first and last hours, and hours dirtied again meanwhile, are
    read from the log. The label column comes from the metric blocks, which cache the labeled
    rows.
    """
    if window.segment or window.version == "":
        return None
    first = -(-window.start_us // PERIOD_US) * PERIOD_US
    last = window.end_us // PERIOD_US * PERIOD_US
    if first >= last:
        return None
    regression = state.spec.task == "regression"
    layout = layout_of(stored, state.spec.task)
    with read_transaction(handle.engine) as conn:
        todo = _unsummarised(conn, window, layout, first, last)[1]
    if todo:
        _summarise_hours(handle.engine, window, layout, regression, first, last)
    total = layout.empty()
    with read_transaction(handle.engine) as conn:
        clean, stale, _ = _unsummarised(conn, window, layout, first, last)
        for summary in clean:
            total.add(summary)
        # the partial edge hours, and hours dirtied again since they were counted
        ranges = [(window.start_us, first), (last, window.end_us), *hour_runs(stale)]
        for start, end in ranges:
            if end > start:
                data = read_features(conn, window.between(start, end), regression=regression)
                total.add(
                    count_rows(
                        layout,
                        data.features,
                        score=data.score,
                        pred_code=data.pred_code,
                        pred_value=data.pred_value,
                    )
                )
    _, labeled = read_blocks(handle.engine, window, regression=regression)
    actual = labeled.b
    if regression:
        label = label_counts(state.spec.task, stored, np.empty(0, np.int64), actual)
    else:
        label = label_counts(state.spec.task, stored, actual[actual != -1], np.empty(0))
    return WindowCounts(layout, total, label)


def _unsummarised(
    conn: Connection, window: WindowFilter, layout: Layout, first: int, last: int
) -> tuple[list[Summary], list[int], dict[int, set[str]]]:
    """The clean summaries of the window's whole hours, the hours with data but without one
    (dirty, missing, or of an older format), and the versions each hour holds."""
    found = read_summaries(conn, window.model_id, layout.digest, first, last, window.version)
    clean = {(s.period, s.version): s.summary for s in found if s.summary is not None}
    have = hours_with_data(conn, window.model_id, first, last, window.version)
    stale = sorted({p for p, v in have if (p, v) not in clean})
    versions: dict[int, set[str]] = {}
    for p, v in have:
        versions.setdefault(p, set()).add(v)
    # a stale hour is read whole from the log, so its other versions' summaries are not used
    whole = set(stale)
    usable = [s for (p, _), s in clean.items() if s is not None and p not in whole]
    return usable, stale, versions


_MAX_HOURS_PER_READ = 12  # bounds a rebuild's memory to about half a day of rows


def _summarise_hours(
    engine: Engine, window: WindowFilter, layout: Layout, regression: bool, first: int, last: int
) -> None:
    """Count the hours of ``[first, last)`` that have no clean summary, from the log, one pass
    over each run of them, and keep the counts."""
    with write_transaction(engine) as conn:
        lock_exclusive(conn, window.model_id)
        _, stale, held = _unsummarised(conn, window, layout, first, last)
        for start, end in hour_runs(stale):
            for a in range(start, end, _MAX_HOURS_PER_READ * PERIOD_US):
                b = min(end, a + _MAX_HOURS_PER_READ * PERIOD_US)
                part = window.between(a, b)
                data = read_features(conn, part, regression=regression)
                hours = range(a, b, PERIOD_US)
                if all(len(held.get(p, ())) <= 1 for p in hours):
                    # one version per hour (the usual case): the hour says which
                    only = {p: next(iter(held[p])) for p in hours if p in held}
                    versions = pd.Series(period_of(data.ts)).map(only).to_numpy(dtype=object)
                else:
                    versions = read_rows(conn, part, regression=regression, with_id=True).version
                save_summaries(
                    conn, window.model_id, layout.digest, _per_hour(layout, data, versions)
                )


def _per_hour(
    layout: Layout, data: WindowFeatures, versions: np.ndarray
) -> dict[tuple[int, str], Summary]:
    """Counts per ``(hour, version)`` of rows read in id order (``versions`` aligned)."""
    version_codes, names = pd.factorize(versions)
    hours, hour_codes = np.unique(period_of(data.ts), return_inverse=True)
    keys, groups = np.unique(
        hour_codes.reshape(-1) * len(names) + version_codes, return_inverse=True
    )
    counted = count_groups(
        layout,
        data.features,
        groups.reshape(-1),
        keys.size,
        score=data.score,
        pred_code=data.pred_code,
        pred_value=data.pred_value,
    )
    return {
        (int(hours[key // len(names)]), str(names[key % len(names)])): summary
        for key, summary in zip(keys.tolist(), counted, strict=True)
    }
