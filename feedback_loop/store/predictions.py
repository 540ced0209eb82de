"""Writing the prediction log.

A batch goes in whole or not at all. A prediction id already stored for the model is accepted
only as an identical retry (then nothing is written again); different content is refused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
from sqlalchemy import Connection, bindparam, text

from feedback_loop.errors import DuplicatePredictionError
from feedback_loop.store.bulk import create_stage, fill_stage, nullable

STAGE = "stage_predictions"
_COLUMNS = (
    ("prediction_id", "VARCHAR(200)"),
    ("ts", "BIGINT"),
    ("version", "VARCHAR(100)"),
    ("tags", "TEXT"),
    ("pred_code", "INTEGER"),
    ("score", "DOUBLE PRECISION"),
    ("pred_value", "DOUBLE PRECISION"),
    ("latency_ms", "DOUBLE PRECISION"),
)
SMALL_BATCH = 200  # PostgreSQL: fewer rows than this skip the staging table
_PAYLOAD = "id, features, prediction, proba, schema_id, numeric"
_COPIED = (
    "prediction_id",
    "ts",
    "version",
    "tags",
    "pred_code",
    "score",
    "pred_value",
    "latency_ms",
)


# Class probabilities: each row keeps the classes it gave, as one byte b"\x01" then the
# probabilities (float64) then the label codes (int32), 1 + 12k bytes for k classes. Rows stored
# before this layout are a float64 vector indexed by code (8 bytes times the model's classes
# then): their length is a multiple of 8, which 1 + 12k never is, so both read back.
SPARSE_PROBA = b"\x01"


def pack_proba(
    codes: np.ndarray, values: np.ndarray, sizes: np.ndarray, missing: list[bool]
) -> list[bytes | None]:
    """Rows of (code, probability) pairs, given as flat arrays and each row's count."""
    ends = np.cumsum(sizes).tolist()
    starts = [0, *ends[:-1]]
    codes_blob = codes.astype("<i4").tobytes()
    values_blob = values.astype("<f8").tobytes()
    return [
        None if absent else SPARSE_PROBA + values_blob[8 * a : 8 * b] + codes_blob[4 * a : 4 * b]
        for absent, a, b in zip(missing, starts, ends, strict=True)
    ]


def unpack_proba(blob: bytes, n_classes: int) -> np.ndarray:
    """One row's stored probabilities as a dense vector of ``n_classes`` (either layout)."""
    out = np.zeros(n_classes)
    if len(blob) % 8 == 0:  # the dense layout of earlier versions
        values = np.frombuffer(blob, dtype="<f8")
        out[: len(values)] = values[:n_classes]
        return out
    k = (len(blob) - 1) // 12
    values = np.frombuffer(blob, dtype="<f8", count=k, offset=1)
    codes = np.frombuffer(blob, dtype="<i4", count=k, offset=1 + 8 * k)
    known = codes < n_classes
    out[codes[known]] = values[known]
    return out


@dataclass
class PredictionRows:
    """Predictions ready to store: labels already turned into codes."""

    prediction_id: list[str]
    ts: np.ndarray
    version: list[str | None]
    tags: list[str | None]
    pred_code: list[int | None]
    score: np.ndarray
    pred_value: np.ndarray
    latency_ms: np.ndarray
    features: list[str | None]
    prediction: list[str]
    proba: list[bytes | None]
    ts_given: np.ndarray  # retries that let the time default are compared without it
    numeric: list[bytes | None]
    schema_id: int | None


@dataclass(frozen=True)
class InsertResult:
    inserted: int
    retried: int  # identical re-sends, accepted and not stored twice
    new_index: np.ndarray  # batch positions of the rows stored now
    new_ids_query: str  # SQL selecting (at least) the prediction ids stored now
    new_ids_params: dict[str, Any]


def insert_predictions(
    conn: Connection, model: str, model_id: int, rows: PredictionRows, now_us: int
) -> InsertResult:
    """Insert the rows not stored yet; the rest must be identical retries."""
    n = len(rows.prediction_id)
    if n == 0:
        return InsertResult(0, 0, np.empty(0, dtype=np.int64), "SELECT NULL WHERE 1 = 0", {})
    # Columns, not rows: each becomes a Python list in C and ``zip`` makes the tuples, so no
    # Python code runs per row between the batch's arrays and the driver.
    columns = (
        rows.prediction_id,
        rows.ts.tolist(),
        rows.version,
        rows.tags,
        rows.pred_code,
        nullable(rows.score),
        nullable(rows.pred_value),
        nullable(rows.latency_ms),
    )
    if conn.dialect.name == "postgresql" and n <= SMALL_BATCH:
        stored, new_query, params = _insert_postgresql_small(conn, model_id, columns, now_us)
    elif conn.dialect.name == "postgresql":
        stored, new_query, params = _insert_postgresql(conn, model_id, columns, now_us)
    else:
        stored, new_query, params = _insert_sqlite(conn, model_id, columns, now_us)
    if isinstance(stored, range):  # every row is new, with these row ids in batch order
        new_index = np.arange(n, dtype=np.int64)
        row_ids: Sequence[int] = stored
    else:
        row_id = dict(stored)
        if len(row_id) < n:
            _check_retries(conn, model, model_id, rows, row_id)
        new_index = np.array(
            [i for i, pid in enumerate(rows.prediction_id) if pid in row_id], dtype=np.int64
        )
        row_ids = [row_id[rows.prediction_id[i]] for i in new_index.tolist()]
    _insert_payloads(conn, rows, new_index, row_ids)
    return InsertResult(len(new_index), n - len(new_index), new_index, new_query, params)


_Stored = range | list[tuple[str, int]]


def _insert_postgresql_small(
    conn: Connection, model_id: int, columns: Sequence[list[Any]], now_us: int
) -> tuple[_Stored, str, dict[str, Any]]:
    """A few rows: one multi-row INSERT with bound values, no staging table."""
    rows = list(zip(repeat(model_id), *columns, repeat(now_us)))
    copied = ", ".join(_COPIED)
    marks = "(" + ", ".join(["%s"] * (len(_COPIED) + 2)) + ")"
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO predictions (model_id, {copied}, ingested_at) VALUES "
            + ", ".join([marks] * len(rows))
            + " ON CONFLICT (model_id, prediction_id) DO NOTHING RETURNING prediction_id, id",
            [value for row in rows for value in row],
        )
        returned = cursor.fetchall()
    query = (
        "SELECT prediction_id FROM predictions WHERE model_id = :m AND prediction_id = ANY(:ids)"
    )
    return returned, query, {"m": model_id, "ids": columns[0]}


def _insert_postgresql(
    conn: Connection, model_id: int, columns: Sequence[list[Any]], now_us: int
) -> tuple[_Stored, str, dict[str, Any]]:
    """COPY into a staging table, then one INSERT ... ON CONFLICT DO NOTHING RETURNING."""
    create_stage(conn, STAGE, _COLUMNS)
    fill_stage(conn, STAGE, list(_COPIED), zip(*columns, strict=True))
    copied = ", ".join(_COPIED)
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO predictions (model_id, {copied}, ingested_at)
            SELECT %s, {copied}, %s FROM {STAGE}
            ON CONFLICT (model_id, prediction_id) DO NOTHING
            RETURNING prediction_id, id
            """,
            (model_id, now_us),
        )
        returned = cursor.fetchall()
    return returned, f"SELECT prediction_id FROM {STAGE}", {}


def _insert_sqlite(
    conn: Connection, model_id: int, columns: Sequence[list[Any]], now_us: int
) -> tuple[_Stored, str, dict[str, Any]]:
    """SQLite holds the write lock (BEGIN IMMEDIATE), so the new rows are exactly the ids
    above the largest id before the insert. When every row went in, those ids are the next
    ``n`` integers in batch order (SQLite gives a new row the largest id plus one), which is
    checked against the new largest id instead of reading the ids back."""
    raw = conn.connection.driver_connection
    assert raw is not None
    copied = ", ".join(_COPIED)
    marks = ", ".join("?" for _ in range(len(_COPIED) + 2))
    n = len(columns[0])
    cursor = raw.cursor()
    try:
        before = cursor.execute("SELECT COALESCE(MAX(id), 0) FROM predictions").fetchone()[0]
        cursor.executemany(
            f"INSERT INTO predictions (model_id, {copied}, ingested_at) VALUES ({marks}) "
            "ON CONFLICT (model_id, prediction_id) DO NOTHING",
            zip(repeat(model_id), *columns, repeat(now_us)),
        )
        inserted = cursor.rowcount
        after = cursor.execute("SELECT MAX(id) FROM predictions").fetchone()[0]
        returned: _Stored
        if inserted == n and after == before + n:
            returned = range(before + 1, after + 1)
        else:
            returned = cursor.execute(
                "SELECT prediction_id, id FROM predictions WHERE id > ?", (before,)
            ).fetchall()
    finally:
        cursor.close()
    query = "SELECT prediction_id FROM predictions WHERE model_id = :m AND id > :first"
    return returned, query, {"m": model_id, "first": before}


def _insert_payloads(
    conn: Connection, rows: PredictionRows, index: np.ndarray, ids: Sequence[int]
) -> None:
    if len(index) == 0:
        return
    every = len(index) == len(rows.prediction_id)
    pick = index.tolist()

    def column(values: list[Any]) -> list[Any]:
        return values if every else [values[i] for i in pick]

    numeric = column(rows.numeric)
    schema: Any
    if rows.schema_id is None or numeric.count(None) == 0:
        schema = repeat(rows.schema_id)
    else:
        schema = [None if blob is None else rows.schema_id for blob in numeric]
    payload = zip(
        ids,
        column(rows.features),
        column(rows.prediction),
        column(rows.proba),
        schema,
        numeric,
        strict=False,  # ``schema`` may be an endless repeat; the other columns are as long
    )
    raw = conn.connection.driver_connection
    assert raw is not None
    if conn.dialect.name == "postgresql":
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY prediction_payloads ({_PAYLOAD}) FROM STDIN") as copy,
        ):
            for row in payload:
                copy.write_row(row)
        return
    cursor = raw.cursor()
    try:
        cursor.executemany(
            f"INSERT INTO prediction_payloads ({_PAYLOAD}) VALUES (?, ?, ?, ?, ?, ?)", payload
        )
    finally:
        cursor.close()


def _check_retries(
    conn: Connection, model: str, model_id: int, rows: PredictionRows, inserted: dict[str, int]
) -> None:
    """Every id not inserted must be an identical copy of the stored prediction."""
    position = {pid: i for i, pid in enumerate(rows.prediction_id) if pid not in inserted}
    stored: dict[str, Any] = {}
    pids = list(position)
    query = text(
        """
        SELECT p.prediction_id, p.ts, p.version, p.tags, p.latency_ms, pp.features, pp.prediction,
               pp.numeric
        FROM predictions p JOIN prediction_payloads pp ON pp.id = p.id
        WHERE p.model_id = :m AND p.prediction_id IN :pids
        """
    ).bindparams(bindparam("pids", expanding=True))
    for start in range(0, len(pids), 500):
        for r in conn.execute(query, {"m": model_id, "pids": pids[start : start + 500]}):
            stored[r.prediction_id] = (
                r.ts,
                r.version,
                r.tags,
                r.latency_ms,
                r.features,
                r.prediction,
                None if r.numeric is None else bytes(r.numeric),
            )
    different = []
    for pid, i in position.items():
        latency = None if np.isnan(rows.latency_ms[i]) else float(rows.latency_ms[i])
        mine = (
            int(rows.ts[i]),
            rows.version[i],
            rows.tags[i],
            latency,
            rows.features[i],
            rows.prediction[i],
            rows.numeric[i],
        )
        found = stored.get(pid)
        if found is not None and not rows.ts_given[i]:
            found = (mine[0], *found[1:])
        if found != mine:
            different.append(pid)
    if different:
        raise DuplicatePredictionError(model, different)


def fetch_prediction(conn: Connection, model_id: int, prediction_id: str) -> dict[str, Any] | None:
    """One stored prediction as logged, with its current actual (label codes left to the caller)."""
    row = conn.execute(
        text(
            """
            SELECT p.prediction_id, p.ts, p.version, p.tags, p.latency_ms, p.actual_code,
                   p.actual_value, p.label_ts, p.actual_ts, pp.features, pp.prediction,
                   pp.numeric, fs.names
            FROM predictions p JOIN prediction_payloads pp ON pp.id = p.id
            LEFT JOIN feature_schemas fs ON fs.id = pp.schema_id
            WHERE p.model_id = :m AND p.prediction_id = :pid
            """
        ),
        {"m": model_id, "pid": prediction_id},
    ).first()
    if row is None:
        return None
    features: dict[str, Any] = json.loads(row.features) if row.features else {}
    if row.numeric is not None:
        numbers = np.frombuffer(bytes(row.numeric), dtype=np.float64).tolist()
        for (name, kind), number in zip(json.loads(row.names), numbers, strict=True):
            if number != number:  # NaN: missing
                features[name] = None
            elif kind == "categorical":
                features[name] = conn.execute(
                    text(
                        "SELECT value FROM feature_values "
                        "WHERE model_id = :m AND feature = :f AND code = :c"
                    ),
                    {"m": model_id, "f": name, "c": int(number)},
                ).scalar_one()
            else:
                features[name] = number
    return {
        "prediction_id": row.prediction_id,
        "ts": row.ts,
        "prediction": json.loads(row.prediction),
        "features": dict(sorted(features.items())) or None,
        "version": row.version,
        "tags": json.loads(row.tags) if row.tags else None,
        "latency_ms": row.latency_ms,
        "actual_code": row.actual_code,
        "actual_value": row.actual_value,
        "label_ts": row.label_ts,
    }
