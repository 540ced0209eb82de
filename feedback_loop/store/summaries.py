"""Hourly drift summaries: the counts a drift check needs, per reference, hour and version.

A drift check against a reference profile needs, per column, only how many of the window's
values fall in each of the reference's cells (deciles, categories), how many are missing and
how many are not null. Those counts add up over hours, so a week's check can merge 168 small
blobs instead of decoding every logged feature. One row holds one ``(model, reference, hour of
prediction time, version)``, keyed by the reference's ``layout``:

* ``layout`` names the cells the counts are on (a digest of the reference's bin edges and
  categories), not the reference itself: counts on the same cells stay right when a reference
  is set again with the same cells, and a reference with new cells simply has no rows yet;
* ``data`` is the packed :class:`Summary`, or NULL when the hour changed since it was counted
  (dirty); the reader rebuilds dirty and missing rows from the log.

Consistency follows ``metric_blocks`` (``store/blocks.py``): a writer adds its new rows' counts
to the hours it touches in its own transaction (:func:`merge_summaries`), or marks them dirty
when it cannot (cells unknown at ingest); a reader rebuilds dirty and missing rows under the
model's exclusive lock, so no summary is ever saved from a state a concurrent writer has changed.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Connection, text

from feedback_loop.store.retention import pruned_before

FORMAT_VERSION = 1
_MAGIC = b"FLDS"
_HEADER = struct.Struct("<4sHqq?q")  # magic, format, rows, fixed cells, unstable, extras bytes


@dataclass
class Summary:
    """Counts of some rows on a reference's cells.

    ``fixed`` holds the cells whose position the layout fixes (deciles, profiled categories,
    missing and not-null counts); ``extras`` the values a layout cannot list in advance
    (categories the reference never saw, predicted class codes), per column. ``unstable`` says
    some value could not be counted the way a whole window would count it (a category logged as
    a number, text in a numeric column): checks over such rows read the rows instead.
    """

    n_rows: int
    fixed: np.ndarray  # int64
    extras: dict[str, dict[str, int]] = field(default_factory=dict)
    unstable: bool = False

    @classmethod
    def empty(cls, width: int) -> Summary:
        return cls(0, np.zeros(width, dtype=np.int64))

    def add(self, other: Summary) -> None:
        """Add ``other``'s counts to these (same layout)."""
        self.n_rows += other.n_rows
        self.fixed = self.fixed + other.fixed
        self.unstable = self.unstable or other.unstable
        for column, counts in other.extras.items():
            mine = self.extras.setdefault(column, {})
            for label, count in counts.items():
                mine[label] = mine.get(label, 0) + count


def pack(summary: Summary) -> bytes:
    """A versioned binary blob: a header, the fixed cells as int64, the extras as JSON."""
    extras = json.dumps(summary.extras, separators=(",", ":")).encode() if summary.extras else b""
    fixed = np.ascontiguousarray(summary.fixed, dtype="<i8")
    header = _HEADER.pack(
        _MAGIC, FORMAT_VERSION, summary.n_rows, fixed.size, summary.unstable, len(extras)
    )
    return header + fixed.tobytes() + extras


def unpack(blob: bytes) -> Summary | None:
    """The summary in ``blob``, or None when it is of another format (then it is rebuilt)."""
    if len(blob) < _HEADER.size:
        return None
    magic, version, n_rows, width, unstable, n_extras = _HEADER.unpack_from(blob)
    if magic != _MAGIC or version != FORMAT_VERSION:
        return None
    fixed = np.frombuffer(blob, dtype="<i8", count=width, offset=_HEADER.size).astype(np.int64)
    start = _HEADER.size + 8 * width
    extras = json.loads(bytes(blob[start : start + n_extras])) if n_extras else {}
    return Summary(int(n_rows), fixed, extras, bool(unstable))


def mark_dirty(
    conn: Connection,
    model_id: int,
    keys: Iterable[tuple[int, str]],
    counted: Iterable[str] = (),
) -> None:
    """Mark dirty every reference's summaries of the hours ``(period, version)``, but those on
    the layouts ``counted`` (the write added its counts to them).

    Hours nobody has summarised yet have no rows: the reader finds them through the metric
    blocks, which every write creates. Only clean rows are updated, so concurrent writers to
    the current hour do not queue on its rows (as ``blocks.mark_dirty``). Hours retention has
    pruned keep their counts (``store/retention.py``).
    """
    kept = sorted(set(counted))
    marks = {f"k{i}": k for i, k in enumerate(kept)}
    hours = sorted({(int(p), v) for p, v in keys})
    floor = pruned_before(conn, model_id) if hours else None
    rows = [
        {"m": model_id, "p": p, "v": v, **marks} for p, v in hours if floor is None or p >= floor
    ]
    if not rows:
        return
    condition = f" AND layout NOT IN ({', '.join(':' + k for k in marks)})" if kept else ""
    conn.execute(
        text(
            "UPDATE drift_summaries SET data = NULL WHERE model_id = :m AND period = :p "
            f"AND version = :v AND data IS NOT NULL{condition}"
        ),
        rows,
    )


@dataclass(frozen=True)
class Stored:
    """One stored summary row (``summary`` None: dirty, or of another format)."""

    period: int
    version: str
    summary: Summary | None


def read_summaries(
    conn: Connection,
    model_id: int,
    layout: str,
    start: int,
    end: int,
    version: str | None,
) -> list[Stored]:
    """The summary rows on ``layout`` of hours in ``[start, end)`` (of one version, if given)."""
    query = (
        "SELECT period, version, data FROM drift_summaries WHERE model_id = :m "
        "AND layout = :l AND period >= :a AND period < :b"
        + (" AND version = :v" if version is not None else "")
    )
    found = conn.execute(
        text(query), {"m": model_id, "l": layout, "a": start, "b": end, "v": version}
    ).all()
    return [
        Stored(int(row.period), row.version, None if row.data is None else unpack(row.data))
        for row in found
    ]


def hours_with_data(
    conn: Connection, model_id: int, start: int, end: int, version: str | None
) -> set[tuple[int, str]]:
    """The ``(period, version)`` of the hours in ``[start, end)`` that hold predictions (every
    write creates its hours' metric blocks in the same transaction)."""
    query = (
        "SELECT period, version FROM metric_blocks WHERE model_id = :m "
        "AND period >= :a AND period < :b" + (" AND version = :v" if version is not None else "")
    )
    found = conn.execute(text(query), {"m": model_id, "a": start, "b": end, "v": version}).all()
    return {(int(p), v) for p, v in found}


def save_summaries(
    conn: Connection,
    model_id: int,
    layout: str,
    summaries: dict[tuple[int, str], Summary],
) -> None:
    """Store clean summaries (replacing what the rows held). Call under the exclusive lock.

    In an hour retention pruned, a clean summary is kept: it counted rows that are gone, and
    the ones counted now are only the hour's late rows."""
    if not summaries:
        return
    upsert = (
        "INSERT INTO drift_summaries (model_id, layout, period, version, data) "
        "VALUES (:m, :l, :p, :v, :d) "
        "ON CONFLICT (model_id, layout, period, version) DO UPDATE SET data = excluded.data"
    )
    floor = pruned_before(conn, model_id)
    ordered = sorted(summaries.items(), key=lambda item: item[0])
    pruned = [
        {"m": model_id, "l": layout, "p": p, "v": v, "d": pack(s)}
        for (p, v), s in ordered
        if floor is not None and p < floor
    ]
    rows = [
        {"m": model_id, "l": layout, "p": p, "v": v, "d": pack(s)}
        for (p, v), s in ordered
        if floor is None or p >= floor
    ]
    if pruned:
        conn.execute(text(upsert + " WHERE drift_summaries.data IS NULL"), pruned)
    if rows:
        conn.execute(text(upsert), rows)


def merge_summaries(
    conn: Connection,
    model_id: int,
    layout: str,
    counted: dict[tuple[int, str], Summary],
    created: set[tuple[int, str]],
) -> None:
    """Add a write's counts ``(period, version) -> Summary`` to the stored summaries on
    ``layout``, in the write's transaction.

    ``created`` are the hours the write opened (no earlier prediction of that version): their
    counts are the whole hour, stored as they are. Other hours add to a clean summary; a dirty
    or missing one stays so (the reader counts it from the log). On PostgreSQL the summaries are
    read ``FOR UPDATE``: two writers adding to one hour add in turn.
    """
    if not counted:
        return
    fresh = {key: s for key, s in counted.items() if key in created}
    if fresh:
        save_summaries(conn, model_id, layout, fresh)
    rest = sorted(key for key in counted if key not in created)
    if not rest:
        return
    lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""
    found = conn.execute(
        text(
            "SELECT period, version, data FROM drift_summaries WHERE model_id = :m "
            f"AND layout = :l AND period >= :a AND period <= :b AND data IS NOT NULL{lock}"
        ),
        {"m": model_id, "l": layout, "a": rest[0][0], "b": rest[-1][0]},
    ).all()
    stored = {(int(r.period), r.version): r.data for r in found}
    updates = []
    for key in rest:
        blob = stored.get(key)
        summary = None if blob is None else unpack(bytes(blob))
        if summary is None:
            continue
        summary.add(counted[key])
        updates.append({"m": model_id, "l": layout, "p": key[0], "v": key[1], "d": pack(summary)})
    if updates:
        conn.execute(
            text(
                "UPDATE drift_summaries SET data = :d "
                "WHERE model_id = :m AND layout = :l AND period = :p AND version = :v"
            ),
            updates,
        )


def forget_layouts(conn: Connection, model_id: int, keep: Iterable[str]) -> None:
    """Drop the summaries on cells no reference of the model uses any more."""
    kept = sorted(set(keep))
    marks = ", ".join(f":k{i}" for i in range(len(kept)))
    condition = f" AND layout NOT IN ({marks})" if kept else ""
    conn.execute(
        text(f"DELETE FROM drift_summaries WHERE model_id = :m{condition}"),
        {"m": model_id, **{f"k{i}": k for i, k in enumerate(kept)}},
    )


def stored_references(conn: Connection, model_id: int) -> list[dict[str, Any]]:
    """The data of every reference the model has (to know which cells are still in use)."""
    found = conn.execute(
        text("SELECT data FROM reference_profiles WHERE model_id = :m"), {"m": model_id}
    ).scalars()
    return [json.loads(data) for data in found]


def reference_texts(conn: Connection, model_id: int) -> list[str]:
    """The stored JSON of every reference the model has, unparsed (a writer parses only the
    ones it has not seen)."""
    found = conn.execute(
        text("SELECT data FROM reference_profiles WHERE model_id = :m"), {"m": model_id}
    ).scalars()
    return list(found)
