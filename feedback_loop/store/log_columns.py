"""The columns of the log an export needs beside the features: ids, versions, latencies and
label times, read as whole columns (never one Python object per row).

SQLite concatenates each text column end to end with its rows' byte lengths beside it, and the
Arrow string array is built from those offsets: a prediction id may hold any character (a
newline included), so no separator is safe. PostgreSQL sends Arrow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, text

from feedback_loop.store.blocks import PERIOD_SQL
from feedback_loop.store.reader import WindowFilter, fetch_arrow


@dataclass
class LogColumns:
    """Per prediction of a window, in row-id order."""

    ids: np.ndarray  # int64
    prediction_id: pa.Array  # large_string
    version: pa.Array  # large_string, null when none
    latency_ms: pa.Array  # float64, null when none
    label_ts: np.ndarray  # int64 µs, 0 where unlabeled

    def take(self, rows: np.ndarray) -> LogColumns:
        index = pa.array(rows, pa.int64())
        return LogColumns(
            self.ids[rows],
            self.prediction_id.take(index),
            self.version.take(index),
            self.latency_ms.take(index),
            self.label_ts[rows],
        )


def hour_counts(
    conn: Connection, model_id: int, start_us: int, end_us: int
) -> list[tuple[int, int]]:
    """``(hour, predictions)`` of the model's hours in ``[start_us, end_us)``, in order."""
    found = conn.execute(
        text(
            f"SELECT {PERIOD_SQL} AS period, COUNT(*) AS n FROM predictions "
            "WHERE model_id = :m AND ts >= :a AND ts < :b GROUP BY 1 ORDER BY 1"
        ),
        {"m": model_id, "a": start_us, "b": end_us},
    ).all()
    return [(int(p), int(n)) for p, n in found]


def read_log_columns(conn: Connection, window: WindowFilter) -> LogColumns:
    """The window's ids, prediction ids, versions, latencies and first label times."""
    if conn.dialect.name == "sqlite":
        columns = _sqlite_columns(conn, window)
    else:
        where, params = window.where(False)
        table = fetch_arrow(
            conn.engine,
            "SELECT id, prediction_id, version, latency_ms, COALESCE(label_ts, 0) AS label_ts "
            f"FROM predictions WHERE {where}",
            params,
        )
        columns = LogColumns(
            np.asarray(table.column("id").to_numpy(), dtype=np.int64),
            pc.cast(table.column("prediction_id").combine_chunks(), pa.large_string()),
            pc.cast(table.column("version").combine_chunks(), pa.large_string()),
            pc.cast(table.column("latency_ms").combine_chunks(), pa.float64()),
            np.asarray(table.column("label_ts").to_numpy(), dtype=np.int64),
        )
    return columns.take(np.argsort(columns.ids, kind="stable"))


def _sqlite_columns(conn: Connection, window: WindowFilter) -> LogColumns:
    where, params = window.where(True)
    raw = conn.connection.driver_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        found = cursor.execute(
            "SELECT group_concat(id, char(10)), "
            "group_concat(prediction_id, ''), "
            "group_concat(length(CAST(prediction_id AS BLOB)), char(10)), "
            "group_concat(COALESCE(version, ''), ''), "
            "group_concat(CASE WHEN version IS NULL THEN -1 "
            "ELSE length(CAST(version AS BLOB)) END, char(10)), "
            "group_concat(printf('%!.17g', COALESCE(latency_ms, 0)), char(10)), "
            "group_concat(latency_ms IS NULL, char(10)), "
            f"group_concat(COALESCE(label_ts, 0), char(10)) FROM predictions WHERE {where}",
            params,
        ).fetchone()
    finally:
        cursor.close()
    ids_t, pid_t, pid_n, version_t, version_n, latency_t, latency_null, label_t = found
    latency = _lines(latency_t, pa.float64())
    missing = _lines(latency_null, pa.int64()).astype(bool)
    return LogColumns(
        _lines(ids_t, pa.int64()),
        _strings(pid_t, _lines(pid_n, pa.int64())),
        _strings(version_t, _lines(version_n, pa.int64())),
        pa.array(latency, pa.float64(), mask=missing),
        _lines(label_t, pa.int64()),
    )


def _lines(joined: str | None, kind: pa.DataType) -> np.ndarray:
    """Numbers, one per line, parsed by Arrow."""
    if not joined:
        return np.empty(0, dtype=kind.to_pandas_dtype())
    lines = pc.split_pattern(pa.array([joined], pa.large_string()), "\n").flatten()
    return np.asarray(pc.cast(lines, kind).to_numpy(), dtype=kind.to_pandas_dtype())


def _strings(joined: str | None, lengths: np.ndarray) -> pa.Array:
    """Texts concatenated end to end, cut at their byte ``lengths`` (-1: a null)."""
    data = (joined or "").encode()
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(np.maximum(lengths, 0), out=offsets[1:])
    valid = lengths >= 0
    validity = None if valid.all() else pa.array(valid).buffers()[1]
    return pa.Array.from_buffers(
        pa.large_string(),
        len(lengths),
        [validity, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)],
        null_count=int((~valid).sum()),
    )
