"""Hourly blocks: a cache of the prediction log that makes long windows cheap.

A block holds the rows of one model, one hour of prediction time and one version, packed as
arrays. Writers mark the blocks they touch dirty (``data`` NULL); a reader rebuilds the dirty
blocks of its window from the log, then reads every block of the window in a few queries. A
window's partial first and last hours, and any segment-filtered window, are read from the log.

Consistency: rebuilding holds the model's write lock (``BEGIN IMMEDIATE`` on SQLite, an exclusive
advisory lock that every writer takes in shared mode on PostgreSQL), so no block is ever saved
from a state that a concurrent writer has already changed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, text

from feedback_loop.store.engine import write_transaction
from feedback_loop.store.reader import Rows, WindowFilter, read_rows
from feedback_loop.store.retention import pruned_before

PERIOD_US = 3_600_000_000
_LOCK_CLASS = 0x666C  # advisory lock namespace: (class, model id)
PERIOD_SQL = f"(ts - ts % {PERIOD_US})"


def period_of(ts: np.ndarray) -> np.ndarray:
    return ts - ts % PERIOD_US


def lock_shared(conn: Connection, model_id: int) -> None:
    """Writers: taken at the start of every write transaction on PostgreSQL."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock_shared(:c, :m)"), {"c": _LOCK_CLASS, "m": model_id}
        )


def lock_exclusive(conn: Connection, model_id: int) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:c, :m)"), {"c": _LOCK_CLASS, "m": model_id}
        )


def mark_dirty(conn: Connection, model_id: int, keys: Iterable[tuple[int, str]]) -> None:
    """Mark the blocks ``(period, version)`` dirty, creating their rows if new.

    A block of an hour retention has pruned is only created, never marked dirty: its rows are
    gone, and a rebuild would replace its kept counts with those of the late rows alone."""
    hours = sorted({(int(p), v) for p, v in keys})
    if not hours:
        return
    insert = (
        "INSERT INTO metric_blocks (model_id, period, version, n_predictions, data) "
        "VALUES (:m, :p, :v, 0, NULL) ON CONFLICT (model_id, period, version) "
    )
    floor = pruned_before(conn, model_id)
    if floor is not None and hours[0][0] < floor:
        pruned = [{"m": model_id, "p": p, "v": v} for p, v in hours if p < floor]
        conn.execute(text(insert + "DO NOTHING"), pruned)
        hours = [(p, v) for p, v in hours if p >= floor]
        if not hours:
            return
    rows = [{"m": model_id, "p": p, "v": v} for p, v in hours]
    if conn.dialect.name == "sqlite":  # one writer at a time: a plain upsert
        conn.execute(text(insert + "DO UPDATE SET data = NULL"), rows)
        return
    conn.execute(text(insert + "DO NOTHING"), rows)
    # Only clean blocks are updated: an already-dirty block is not locked again, so concurrent
    # writers to the current hour do not queue on its row.
    conn.execute(
        text(
            "UPDATE metric_blocks SET data = NULL "
            "WHERE model_id = :m AND period = :p AND version = :v AND data IS NOT NULL"
        ),
        rows,
    )


def mark_dirty_for(conn: Connection, model_id: int, pid_query: str, **params: object) -> None:
    """Mark dirty the blocks of the predictions named by ``pid_query``."""
    keys = conn.execute(
        text(
            f"SELECT DISTINCT {PERIOD_SQL}, COALESCE(version, '') FROM predictions "
            f"WHERE model_id = :m AND prediction_id IN ({pid_query})"
        ),
        {"m": model_id, **params},
    ).all()
    mark_dirty(conn, model_id, [(p, v) for p, v in keys])


def pack(rows: Rows) -> bytes:
    """The labeled rows of a block as bytes (row order does not matter to any metric)."""
    labeled = rows.take(rows.labeled)
    header = struct.pack("<q?", len(labeled), labeled.a.dtype.kind == "f")
    return header + b"".join(
        np.ascontiguousarray(x).tobytes()
        for x in (labeled.a, labeled.b, labeled.score, labeled.delay_us)
    )


def unpack(blob: bytes, version: str) -> Rows:
    n, floats = struct.unpack_from("<q?", blob)
    kind = np.float64 if floats else np.int64
    offset = struct.calcsize("<q?")
    arrays = []
    for dtype in (kind, kind, np.float64, np.int64):
        arrays.append(np.frombuffer(blob, dtype=dtype, count=n, offset=offset))
        offset += 8 * n
    a, b, score, delay = arrays
    return Rows(
        np.zeros(n, np.int64), np.full(n, version, object), np.ones(n, bool), a, b, score, delay
    )


def hour_runs(periods: list[int]) -> list[tuple[int, int]]:
    """Contiguous runs of hours as half-open ``[start, end)`` ranges."""
    runs: list[tuple[int, int]] = []
    for p in sorted(periods):
        if runs and runs[-1][1] == p:
            runs[-1] = (runs[-1][0], p + PERIOD_US)
        else:
            runs.append((p, p + PERIOD_US))
    return runs


def _split_by_block(rows: Rows, start: int, end: int) -> Iterator[tuple[int, str, Rows]]:
    """The rows of each (hour, version) in ``[start, end)``, an hour without rows as an empty
    block of version ``''``. One stable sort, never a scan of all rows per hour."""
    versions, names = pd.factorize(rows.version, sort=True)
    hours = (period_of(rows.ts) - start) // PERIOD_US
    key = hours * max(len(names), 1) + versions
    order = np.argsort(key, kind="stable")
    found, first = np.unique(key[order], return_index=True)
    bounds = [*first.tolist(), len(order)]
    by_hour: dict[int, list[tuple[str, Rows]]] = {}
    for i, k in enumerate(found.tolist()):
        hour, code = divmod(k, max(len(names), 1))
        block = rows.take(order[bounds[i] : bounds[i + 1]])
        by_hour.setdefault(hour, []).append((str(names[code]), block))
    for hour, p in enumerate(range(start, end, PERIOD_US)):
        for version, block in by_hour.get(hour, [("", rows.take(order[:0]))]):
            yield p, version, block


def _rebuild(engine: Engine, window: WindowFilter, regression: bool) -> None:
    """Rebuild the window's dirty blocks from the log. A clean block of the same hour is left
    as it is: it is exact, and in an hour retention pruned it is all that counts the hour."""
    with write_transaction(engine) as conn:
        lock_exclusive(conn, window.model_id)
        dirty = conn.execute(
            text(
                "SELECT period FROM metric_blocks WHERE model_id = :m AND period >= :a "
                "AND period < :b AND data IS NULL"
            ),
            {"m": window.model_id, "a": window.start_us, "b": window.end_us},
        ).scalars()
        updates = []
        for start, end in hour_runs(list(set(dirty))):
            whole = WindowFilter(window.model_id, start, end)
            rows = read_rows(conn, whole, regression=regression)
            for p, version, block in _split_by_block(rows, start, end):
                updates.append(
                    {"m": window.model_id, "p": p, "v": version, "n": len(block), "d": pack(block)}
                )
        if updates:
            conn.execute(
                text(
                    "UPDATE metric_blocks SET data = :d, n_predictions = :n "
                    "WHERE model_id = :m AND period = :p AND version = :v AND data IS NULL"
                ),
                updates,
            )


def read_window(engine: Engine, window: WindowFilter, *, regression: bool) -> tuple[int, Rows]:
    """``(number of predictions, labeled rows)`` of a window, through the blocks."""
    if window.segment:
        with engine.connect() as conn, conn.begin():
            rows = read_rows(conn, window, regression=regression)
        return len(rows), rows.take(rows.labeled)
    first = -(-window.start_us // PERIOD_US) * PERIOD_US
    last = window.end_us // PERIOD_US * PERIOD_US
    if first >= last:
        with engine.connect() as conn, conn.begin():
            rows = read_rows(conn, window, regression=regression)
        return len(rows), rows.take(rows.labeled)
    inner = window.between(first, last)
    query = text(
        "SELECT period, version, n_predictions, data FROM metric_blocks "
        "WHERE model_id = :m AND period >= :a AND period < :b"
        + (" AND version = :v" if window.version is not None else "")
    )
    params = {"m": window.model_id, "a": first, "b": last, "v": window.version}
    with engine.connect() as conn, conn.begin():
        found = conn.execute(query, params).all()
    if any(r.data is None for r in found):
        _rebuild(engine, inner, regression)
    with engine.connect() as conn, conn.begin():
        found = conn.execute(query, params).all()
        parts = [unpack(r.data, r.version) for r in found if r.data is not None]
        total = sum(int(r.n_predictions) for r in found if r.data is not None)
        # blocks dirtied again since the rebuild, and the partial edge hours, come from the log
        stale = {int(r.period) for r in found if r.data is None}
        ranges = [(window.start_us, first), (last, window.end_us), *hour_runs(list(stale))]
        for start, end in ranges:
            if end > start:
                raw = read_rows(conn, window.between(start, end), regression=regression)
                total += len(raw)
                parts.append(raw.take(raw.labeled))
    return total, Rows.concat(parts, regression)
