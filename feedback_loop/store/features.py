"""Reading the features logged with a window's predictions, as columns.

Numeric features were stored as packed float64 rows, so a window's worth decodes into a matrix
with one ``frombuffer`` per schema; the other features (and tags) are JSON, parsed once per
distinct text. Both are fetched as a few whole columns, never as one Python object per row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, select

from feedback_loop.store.models import feature_value_table
from feedback_loop.store.reader import WindowFilter, fetch_arrow, read_rows
from feedback_loop.store.tables import feature_schemas


@dataclass
class WindowFeatures:
    """The predictions of a window: features and what the model said, row-aligned."""

    features: pd.DataFrame
    score: np.ndarray  # float64, NaN where none
    pred_code: np.ndarray  # int64, -2 where none (regression)
    actual_code: np.ndarray  # int64, -2 where unlabeled
    pred_value: np.ndarray
    actual_value: np.ndarray
    labeled: np.ndarray  # bool
    tags: pd.DataFrame  # one column per tag key
    ts: np.ndarray  # int64 µs, prediction time


def read_features(conn: Connection, window: WindowFilter, *, regression: bool) -> WindowFeatures:
    """The window's predictions, ordered by row id (the order they were logged)."""
    rows = read_rows(conn, window, regression=regression, with_id=True)
    ids = rows.ids if rows.ids is not None else np.empty(0, np.int64)
    n = len(rows)
    packed = _read_packed(conn, window)
    texts = _read_texts(conn, window, "pp.features", _PAYLOADS)
    tags = _read_texts(conn, window, "p.tags", "FROM predictions p")
    schemas = dict(
        conn.execute(
            select(feature_schemas.c.id, feature_schemas.c.names).where(
                feature_schemas.c.model_id == window.model_id
            )
        ).all()
    )
    values = feature_value_table(conn, window.model_id)
    frame = _combined(_numeric_frame(ids, packed, schemas, values), _json_frame(ids, texts))
    regression_pair = (rows.a, rows.b) if regression else (np.full(n, np.nan), np.full(n, np.nan))
    code_pair = (rows.a, rows.b) if not regression else (np.full(n, -2), np.full(n, -2))
    return WindowFeatures(
        features=frame,
        score=rows.score,
        pred_code=np.asarray(code_pair[0], dtype=np.int64),
        actual_code=np.where(rows.labeled, code_pair[1], -2).astype(np.int64),
        pred_value=np.asarray(regression_pair[0], dtype=np.float64),
        actual_value=np.where(rows.labeled, regression_pair[1], np.nan),
        labeled=rows.labeled,
        tags=_json_frame(ids, tags),
        ts=rows.ts,
    )


_PAYLOADS = "FROM predictions p JOIN prediction_payloads pp ON pp.id = p.id"
_TEXT_SEP = "\x1e"  # a control character: never raw inside JSON text


@dataclass
class _Packed:
    """The packed numeric rows of one feature schema: row ids and their float64 matrix."""

    schema_id: int
    ids: npt.NDArray[np.int64]
    matrix_bytes: memoryview | bytes


@dataclass
class _Texts:
    """JSON texts of some rows: their ids, and per row a code into the distinct texts."""

    ids: npt.NDArray[np.int64]
    codes: npt.NDArray[np.int64]
    uniques: list[str]


def _read_packed(conn: Connection, window: WindowFilter) -> list[_Packed]:
    """The window's packed numeric rows, one contiguous buffer per schema.

    SQLite concatenates each schema's blobs itself (``group_concat`` of blobs, read back as one
    blob); PostgreSQL returns them as an Arrow binary column, whose data buffer holds them end
    to end. No Python object per row either way."""
    if conn.dialect.name == "sqlite":
        where, params = window.where(True, alias="p")
        found = _raw_fetchall(
            conn,
            "SELECT pp.schema_id, group_concat(p.id, char(10)), "
            f"CAST(group_concat(pp.numeric, '') AS BLOB) {_PAYLOADS} "
            f"WHERE {where} AND pp.numeric IS NOT NULL GROUP BY pp.schema_id",
            params,
        )
        return [_Packed(int(sid), _int_lines(id_text), blob or b"") for sid, id_text, blob in found]
    where, params = window.where(False, alias="p")
    table = fetch_arrow(
        conn.engine,
        f"SELECT p.id AS id, pp.schema_id AS sid, pp.numeric AS blob {_PAYLOADS} "
        f"WHERE {where} AND pp.numeric IS NOT NULL",
        params,
    )
    if table.num_rows == 0:
        return []
    table = table.combine_chunks()
    schema_ids = table.column("sid").to_numpy()
    out = []
    for sid in np.unique(schema_ids).tolist():
        mine = table.filter(pa.array(schema_ids == sid))
        blobs = mine.column("blob").combine_chunks()
        wide = pa.types.is_large_binary(blobs.type)
        offsets = np.frombuffer(blobs.buffers()[1], dtype=np.int64 if wide else np.int32)
        offsets = offsets[blobs.offset : blobs.offset + len(blobs) + 1]
        data = memoryview(blobs.buffers()[2])[int(offsets[0]) : int(offsets[-1])]
        ids = np.asarray(mine.column("id").to_numpy(), dtype=np.int64)
        out.append(_Packed(int(sid), ids, data))
    return out


def _read_texts(conn: Connection, window: WindowFilter, column: str, source: str) -> _Texts:
    """The non-NULL JSON texts of ``column`` in the window, dictionary-encoded in Arrow."""
    if conn.dialect.name == "sqlite":
        where, params = window.where(True, alias="p")
        found = _raw_fetchall(
            conn,
            f"SELECT group_concat(p.id, char(10)), group_concat({column}, char(30)) "
            f"{source} WHERE {where} AND {column} IS NOT NULL",
            params,
        )
        id_text, joined = found[0] if found else (None, None)
        if joined is None:
            return _Texts(np.empty(0, np.int64), np.empty(0, np.int64), [])
        ids = _int_lines(id_text)
        texts = pc.split_pattern(pa.array([joined], pa.large_string()), _TEXT_SEP).flatten()
    else:
        where, params = window.where(False, alias="p")
        table = fetch_arrow(
            conn.engine,
            f"SELECT p.id AS id, CAST({column} AS text) AS t {source} "
            f"WHERE {where} AND {column} IS NOT NULL",
            params,
        )
        ids = table.column("id").to_numpy().astype(np.int64)
        texts = table.column("t").combine_chunks()
    encoded = pc.dictionary_encode(texts)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return _Texts(ids, codes, encoded.dictionary.to_pylist())


def _raw_fetchall(conn: Connection, sql: str, params: list[Any]) -> list[Any]:
    raw = conn.connection.driver_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        return list(cursor.execute(sql, params).fetchall())
    finally:
        cursor.close()


def _int_lines(text: str | bytes | None) -> npt.NDArray[np.int64]:
    """Integers, one per line, parsed by Arrow."""
    if not text:
        return np.empty(0, np.int64)
    if isinstance(text, bytes):
        text = text.decode()
    lines = pc.split_pattern(pa.array([text], pa.large_string()), "\n").flatten()
    return np.asarray(pc.cast(lines, pa.int64()).to_numpy(), dtype=np.int64)


def _combined(packed: pd.DataFrame, parsed: pd.DataFrame) -> pd.DataFrame:
    """One frame of both storages. A feature can be packed in some rows and JSON in others (a
    column file and JSON bodies logged to one model); each row holds it in one place."""
    overlap = packed.columns.intersection(parsed.columns)
    frame = packed.join(parsed.drop(columns=overlap), how="outer")
    for name in overlap:
        numeric = packed[name].astype(object)
        frame[name] = numeric.where(numeric.notna(), parsed[name]).infer_objects()
    return frame


def _numeric_frame(
    ids: np.ndarray,
    packed: list[_Packed],
    schemas: dict[int, str],
    values: dict[str, list[str | None]],
) -> pd.DataFrame:
    n = len(ids)
    columns: dict[str, np.ndarray] = {}
    categorical_codes: dict[str, npt.NDArray[np.int64]] = {}
    if not packed:
        return pd.DataFrame(index=pd.RangeIndex(n))
    for part in packed:
        layout = json.loads(schemas[part.schema_id])
        matrix = np.frombuffer(part.matrix_bytes, dtype=np.float64).reshape(
            len(part.ids), len(layout)
        )
        rows = np.searchsorted(ids, part.ids)
        for j, (name, kind) in enumerate(layout):
            if kind == "categorical":
                raw = matrix[:, j]
                coded = categorical_codes.setdefault(name, np.full(n, -1, dtype=np.int64))
                coded[rows] = np.where(np.isnan(raw), -1, raw).astype(np.int64)
            else:
                column = columns.setdefault(name, np.full(n, np.nan))
                column[rows] = matrix[:, j]
    for name, coded in categorical_codes.items():
        # dictionary-encoded, as stored: counting categories then never touches Python objects
        labels = pd.Index(
            [v if v is not None else f"<code {i}>" for i, v in enumerate(values.get(name, []))]
        )
        columns[name] = pd.Categorical.from_codes(coded, categories=labels)  # type: ignore[assignment]
    return pd.DataFrame(columns, index=pd.RangeIndex(n))


def _json_frame(ids: np.ndarray, found: _Texts) -> pd.DataFrame:
    """JSON objects as columns, each distinct text parsed once."""
    n = len(ids)
    if len(found.ids) == 0:
        return pd.DataFrame(index=pd.RangeIndex(n))
    where = np.searchsorted(ids, found.ids)
    parsed = pd.DataFrame.from_records([json.loads(t) for t in found.uniques])
    columns = {}
    for name in parsed.columns:
        column = np.full(n, None, dtype=object)
        column[where] = parsed[name].to_numpy(dtype=object)[found.codes]
        columns[name] = pd.Series(column).infer_objects()
    return pd.DataFrame(columns, index=pd.RangeIndex(n))
