"""Hourly blocks: a cache of the prediction log that makes long windows cheap.

A block holds the rows of one model, one hour of prediction time and one version, packed as
arrays. Writers keep the blocks they touch current (:func:`add_predictions`,
:func:`add_labeled`), or mark them dirty (``data`` NULL) when an append cannot (a relabel); a
reader rebuilds the dirty blocks of its window from the log, then reads every block of the
window in one query. A
window's partial first and last hours, and any segment-filtered window, are read from the log.

Consistency: rebuilding holds the model's write lock (``BEGIN IMMEDIATE`` on SQLite, an exclusive
advisory lock that every writer takes in shared mode on PostgreSQL), so no block is ever saved
from a state that a concurrent writer has already changed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, text

from feedback_loop.store.engine import write_transaction
from feedback_loop.store.reader import Rows, WindowFilter, read_rows
from feedback_loop.store.retention import pruned_before

PERIOD_US = 3_600_000_000
# advisory locks are database-wide: the namespace names the schema too, so two logs kept in
# two schemas of one database (whose first models are both id 1) never wait on each other
_LOCK_CLASS_SQL = "hashtext('feedback_loop.blocks:' || current_schema())"
PERIOD_SQL = f"(ts - ts % {PERIOD_US})"


def period_of(ts: np.ndarray) -> np.ndarray:
    return ts - ts % PERIOD_US


def lock_shared(conn: Connection, model_id: int) -> None:
    """Writers: taken at the start of every write transaction on PostgreSQL."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text(f"SELECT pg_advisory_xact_lock_shared({_LOCK_CLASS_SQL}, :m)"), {"m": model_id}
        )


def lock_exclusive(conn: Connection, model_id: int) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_CLASS_SQL}, :m)"), {"m": model_id})


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


def add_predictions(
    conn: Connection, model_id: int, counts: dict[tuple[int, str], int]
) -> set[tuple[int, str]]:
    """Count new predictions into their blocks ``(period, version) -> rows`` at ingest; returns
    the blocks this call created (hours that held no prediction of that version before).

    A new block starts clean and empty of labels (its rows are all new and unlabeled), a clean
    block adds the rows to its count in one atomic ``UPDATE``, a dirty block stays dirty: the
    reader rebuilds it from the log. On PostgreSQL a concurrent writer creating the same block
    waits for the first's commit and then adds to it, so no count is lost.
    """
    keys = sorted(counts)
    created: set[tuple[int, str]] = set()
    empty = pack_labeled(_no_rows())
    for part in range(0, len(keys), _PER_STATEMENT):
        chunk = keys[part : part + _PER_STATEMENT]
        params: dict[str, object] = {"m": model_id, "d": empty}
        values = []
        for i, (p, v) in enumerate(chunk):
            params.update({f"p{i}": int(p), f"v{i}": v, f"n{i}": int(counts[(p, v)])})
            values.append(f"(:m, :p{i}, :v{i}, :n{i}, :d)")
        found = conn.execute(
            text(
                "INSERT INTO metric_blocks (model_id, period, version, n_predictions, data) "
                f"VALUES {', '.join(values)} ON CONFLICT (model_id, period, version) DO NOTHING "
                "RETURNING period, version"
            ),
            params,
        ).all()
        created.update((int(p), v) for p, v in found)
    rest = [
        {"m": model_id, "p": int(p), "v": v, "n": int(counts[(p, v)])}
        for p, v in keys
        if (p, v) not in created
    ]
    if rest:
        conn.execute(
            text(
                "UPDATE metric_blocks SET n_predictions = n_predictions + :n "
                "WHERE model_id = :m AND period = :p AND version = :v AND data IS NOT NULL"
            ),
            rest,
        )
    return created


_PER_STATEMENT = 200  # blocks per multi-row INSERT (bound parameters stay few)


def add_labeled(conn: Connection, model_id: int, rows: Rows) -> None:
    """Append newly labeled rows (predictions that had no label before) to their clean blocks,
    at ingest. Dirty blocks stay dirty. The blocks are read ``FOR UPDATE`` on PostgreSQL, so two
    writers labeling rows of one hour append in turn."""
    if len(rows) == 0:
        return
    keys, groups = block_groups(rows.ts, rows.version)
    lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""
    found = conn.execute(
        text(
            "SELECT period, version, data FROM metric_blocks WHERE model_id = :m "
            f"AND period >= :a AND period <= :b AND data IS NOT NULL{lock}"
        ),
        {"m": model_id, "a": min(p for p, _ in keys), "b": max(p for p, _ in keys)},
    ).all()
    stored = {(int(r.period), r.version): r.data for r in found}
    order = np.argsort(groups, kind="stable")
    bounds = np.searchsorted(groups[order], np.arange(len(keys) + 1))
    updates = []
    for g, key in enumerate(keys):
        blob = stored.get(key)
        if blob is None:
            continue
        mine = rows.take(order[bounds[g] : bounds[g + 1]])
        updates.append(
            {"m": model_id, "p": key[0], "v": key[1], "d": append_labeled(bytes(blob), mine)}
        )
    if updates:
        conn.execute(
            text(
                "UPDATE metric_blocks SET data = :d "
                "WHERE model_id = :m AND period = :p AND version = :v"
            ),
            updates,
        )


def block_groups(ts: np.ndarray, versions: np.ndarray) -> tuple[list[tuple[int, str]], np.ndarray]:
    """The distinct blocks ``(period, version)`` of rows at prediction times ``ts``, and each
    row's index into them."""
    hours, hour_codes = np.unique(period_of(ts), return_inverse=True)
    version_codes, names = pd.factorize(versions, sort=True)
    width = max(len(names), 1)
    keys, groups = np.unique(hour_codes.reshape(-1) * width + version_codes, return_inverse=True)
    found = [(int(hours[k // width]), str(names[k % width])) for k in keys.tolist()]
    return found, groups.reshape(-1)


def _no_rows() -> Rows:
    none = np.empty(0, np.int64)
    return Rows(none, np.empty(0, object), np.empty(0, bool), none, none, np.empty(0), none)


def pack(rows: Rows) -> bytes:
    """The labeled rows of a block as bytes (row order does not matter to any metric)."""
    return pack_labeled(rows.take(rows.labeled))


def pack_labeled(labeled: Rows | Labeled) -> bytes:
    header = struct.pack("<q?", len(labeled), labeled.a.dtype.kind == "f")
    return header + b"".join(
        np.ascontiguousarray(x).tobytes()
        for x in (labeled.a, labeled.b, labeled.score, labeled.delay_us)
    )


def append_labeled(blob: bytes, labeled: Rows) -> bytes:
    """A block's bytes with more labeled rows after its own (an empty block takes the rows'
    kind: float values for regression, codes otherwise)."""
    a, b, score, delay = _arrays(blob)
    if len(a) == 0:
        return pack_labeled(labeled)
    return pack_labeled(
        Labeled(
            np.concatenate([a, labeled.a.astype(a.dtype)]),
            np.concatenate([b, labeled.b.astype(a.dtype)]),
            np.concatenate([score, labeled.score]),
            np.concatenate([delay, labeled.delay_us]),
        )
    )


@dataclass
class Labeled:
    """The labeled rows of a window as metrics read them: no times, versions or ids."""

    a: np.ndarray  # predicted code (int64) or value (float64)
    b: np.ndarray  # actual code or value
    score: np.ndarray  # float64, NaN where none
    delay_us: np.ndarray  # int64, first label time minus prediction time

    def __len__(self) -> int:
        return len(self.a)

    @staticmethod
    def of(rows: Rows) -> Labeled:
        labeled = rows.take(rows.labeled)
        return Labeled(labeled.a, labeled.b, labeled.score, labeled.delay_us)


def _arrays(blob: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A block's four arrays, as views of ``blob``."""
    n, floats = struct.unpack_from("<q?", blob)
    kind = np.float64 if floats else np.int64
    offset = struct.calcsize("<q?")
    arrays = []
    for dtype in (kind, kind, np.float64, np.int64):
        arrays.append(np.frombuffer(blob, dtype=dtype, count=n, offset=offset))
        offset += 8 * n
    a, b, score, delay = arrays
    return a, b, score, delay


def _concat(parts: list[tuple[np.ndarray, ...]], regression: bool) -> Labeled:
    if not parts:
        kind = np.float64 if regression else np.int64
        return Labeled(np.empty(0, kind), np.empty(0, kind), np.empty(0), np.empty(0, np.int64))
    a, b, score, delay = (np.concatenate(column) for column in zip(*parts, strict=True))
    return Labeled(a, b, score, delay)


def unpack(blob: bytes, version: str) -> Rows:
    a, b, score, delay = _arrays(blob)
    n = len(a)
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


def read_window(engine: Engine, window: WindowFilter, *, regression: bool) -> tuple[int, Labeled]:
    """``(number of predictions, labeled rows)`` of a window, through the blocks."""
    if window.segment:
        with engine.connect() as conn, conn.begin():
            rows = read_rows(conn, window, regression=regression)
        return len(rows), Labeled.of(rows)
    first = -(-window.start_us // PERIOD_US) * PERIOD_US
    last = window.end_us // PERIOD_US * PERIOD_US
    if first >= last:
        with engine.connect() as conn, conn.begin():
            rows = read_rows(conn, window, regression=regression)
        return len(rows), Labeled.of(rows)
    inner = window.between(first, last)
    query = text(
        "SELECT period, n_predictions, data FROM metric_blocks "
        "WHERE model_id = :m AND period >= :a AND period < :b"
        + (" AND version = :v" if window.version is not None else "")
    )
    params = {"m": window.model_id, "a": first, "b": last, "v": window.version}
    with engine.connect() as conn, conn.begin():
        found = conn.execute(query, params).all()
        if all(r.data is not None for r in found):  # kept current at ingest: nothing to count
            return _merged(conn, window, found, first, last, regression)
    _rebuild(engine, inner, regression)
    with engine.connect() as conn, conn.begin():
        found = conn.execute(query, params).all()
        return _merged(conn, window, found, first, last, regression)


def _merged(
    conn: Connection,
    window: WindowFilter,
    found: Any,
    first: int,
    last: int,
    regression: bool,
) -> tuple[int, Labeled]:
    """The window from its blocks ``found`` (read on ``conn``) and the log: the partial edge
    hours, and blocks dirtied again since a rebuild."""
    parts: list[tuple[np.ndarray, ...]] = [_arrays(r.data) for r in found if r.data is not None]
    total = sum(int(r.n_predictions) for r in found if r.data is not None)
    stale = {int(r.period) for r in found if r.data is None}
    ranges = [(window.start_us, first), (last, window.end_us), *hour_runs(list(stale))]
    for start, end in ranges:
        if end > start:
            raw = read_rows(conn, window.between(start, end), regression=regression)
            total += len(raw)
            labeled = Labeled.of(raw)
            parts.append((labeled.a, labeled.b, labeled.score, labeled.delay_us))
    return total, _concat(parts, regression)
