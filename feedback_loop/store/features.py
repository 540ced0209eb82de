"""Reading the features logged with a window's predictions, as columns.

Numeric features were stored as packed float64 rows, so a window's worth decodes into a matrix
with one ``frombuffer``; the other features (and tags) are JSON, parsed once per
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
from feedback_loop.store.reader import WindowFilter, fetch_arrow, read_outputs
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
    ids: np.ndarray | None = None  # int64 row ids (what other reads of the window align on)


def read_features(conn: Connection, window: WindowFilter, *, regression: bool) -> WindowFeatures:
    """The window's predictions, ordered by row id (the order they were logged)."""
    rows = read_outputs(conn, window, regression=regression)
    ids = rows.ids
    n = len(ids)
    layouts = {
        int(sid): [(str(name), str(kind)) for name, kind in json.loads(names)]
        for sid, names in conn.execute(
            select(feature_schemas.c.id, feature_schemas.c.names).where(
                feature_schemas.c.model_id == window.model_id
            )
        ).all()
    }
    packed = _read_packed(conn, window, {sid: len(cols) for sid, cols in layouts.items()})
    texts = _read_texts(conn, window, "pp.features", _PAYLOADS)
    tags = _read_texts(conn, window, "p.tags", "FROM predictions p")
    # PostgreSQL reads go through their own connections, each at its own snapshot: rows a
    # concurrent writer committed after the outputs were read are left out
    packed = packed.take(_among(ids, packed.ids))
    texts, tags = texts.take(_among(ids, texts.ids)), tags.take(_among(ids, tags.ids))
    values = feature_value_table(conn, window.model_id)
    frame = _combined(_numeric_frame(ids, packed, layouts, values), _json_frame(ids, texts))
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
        ids=ids,
    )


def batch_frame(
    matrix: np.ndarray | None,
    columns: tuple[tuple[str, str], ...],
    categories: dict[str, list[str]],
    texts: np.ndarray,
) -> pd.DataFrame:
    """The feature frame of rows about to be stored, as :func:`read_features` will read them
    back: the packed matrix (categories as codes into ``categories``) joined with the JSON
    features ``texts`` (None where a row has none), each distinct text parsed once."""
    n = len(texts)
    ids = np.arange(n, dtype=np.int64)
    if matrix is None or not columns:
        packed = pd.DataFrame(index=pd.RangeIndex(n))
    else:
        numeric = [j for j, (_, kind) in enumerate(columns) if kind != "categorical"]
        packed = pd.DataFrame(
            np.ascontiguousarray(matrix[:, numeric]),
            columns=[columns[j][0] for j in numeric],
            index=pd.RangeIndex(n),
            copy=False,
        )
        for j, (name, kind) in enumerate(columns):
            if kind == "categorical":
                raw = matrix[:, j]
                codes = np.where(np.isnan(raw), -1, raw).astype(np.int64)
                labels = pd.Index(categories[name], dtype=object)
                packed[name] = pd.Categorical.from_codes(codes, categories=labels)
    given = pd.notna(texts)
    if not given.any():
        return _combined(packed, pd.DataFrame(index=pd.RangeIndex(n)))
    encoded = pc.dictionary_encode(pa.array(texts[given].tolist(), pa.large_string()))
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    found = _Texts(ids[given], codes, encoded.dictionary.to_pylist())
    return _combined(packed, _json_frame(ids, found))


_PAYLOADS = "FROM predictions p JOIN prediction_payloads pp ON pp.id = p.id"
_TEXT_SEP = "\x1e"  # a control character: never raw inside JSON text


@dataclass
class _Packed:
    """The window's packed numeric rows end to end: row ids, schema ids, and where each row's
    float64 values start in ``words``."""

    ids: npt.NDArray[np.int64]
    schema_ids: npt.NDArray[np.int64]
    words: npt.NDArray[np.float64]
    starts: npt.NDArray[np.int64]

    def take(self, keep: npt.NDArray[np.bool_]) -> _Packed:
        """The rows where ``keep`` holds (their words stay where they are)."""
        if keep.all():
            return self
        return _Packed(self.ids[keep], self.schema_ids[keep], self.words, self.starts[keep])


@dataclass
class _Texts:
    """JSON texts of some rows: their ids, and per row a code into the distinct texts."""

    ids: npt.NDArray[np.int64]
    codes: npt.NDArray[np.int64]
    uniques: list[str]

    def take(self, keep: npt.NDArray[np.bool_]) -> _Texts:
        """The rows where ``keep`` holds."""
        if keep.all():
            return self
        return _Texts(self.ids[keep], self.codes[keep], self.uniques)


def _among(ids: np.ndarray, found: np.ndarray) -> npt.NDArray[np.bool_]:
    """Which of the ``found`` row ids are among the (sorted) ``ids``."""
    if ids.size == 0:
        return np.zeros(found.size, dtype=bool)
    at = np.minimum(np.searchsorted(ids, found), ids.size - 1)
    return np.asarray(ids[at] == found)


def _read_packed(conn: Connection, window: WindowFilter, widths: dict[int, int]) -> _Packed:
    """The window's packed numeric rows as one buffer (``widths``: values per row of a schema).

    SQLite concatenates the blobs itself (``group_concat`` of blobs, read back as one blob; no
    ``GROUP BY``, which would sort a million blobs through a temporary b-tree); PostgreSQL
    returns them as an Arrow binary column, whose data buffer holds them end to end. No Python
    object per row either way."""
    if conn.dialect.name == "sqlite":
        where, params = window.where(True, alias="p")
        found = _raw_fetchall(
            conn,
            "SELECT group_concat(p.id, char(10)), group_concat(pp.schema_id, char(10)), "
            f"CAST(group_concat(pp.numeric, '') AS BLOB) {_PAYLOADS} "
            f"WHERE {where} AND pp.numeric IS NOT NULL",
            params,
        )
        id_text, sid_text, blob = found[0] if found else (None, None, None)
        ids, schema_ids = _int_lines(id_text), _int_lines(sid_text)
        sizes = _row_widths(schema_ids, widths)
        starts = np.zeros(len(sizes), np.int64)
        np.cumsum(sizes[:-1], out=starts[1:])
        return _Packed(ids, schema_ids, np.frombuffer(blob or b"", dtype=np.float64), starts)
    where, params = window.where(False, alias="p")
    table = fetch_arrow(
        conn.engine,
        f"SELECT p.id AS id, pp.schema_id AS sid, pp.numeric AS blob {_PAYLOADS} "
        f"WHERE {where} AND pp.numeric IS NOT NULL",
        params,
    )
    if table.num_rows == 0:
        empty = np.empty(0, np.int64)
        return _Packed(empty, empty, np.empty(0), empty)
    table = table.combine_chunks()
    blobs = table.column("blob").chunk(0)
    wide = pa.types.is_large_binary(blobs.type)
    offsets = np.frombuffer(blobs.buffers()[1], dtype=np.int64 if wide else np.int32)
    offsets = offsets[blobs.offset : blobs.offset + len(blobs) + 1].astype(np.int64)
    data = np.frombuffer(blobs.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return _Packed(
        np.asarray(table.column("id").to_numpy(), dtype=np.int64),
        np.asarray(table.column("sid").to_numpy(), dtype=np.int64),
        data.view(np.float64) if data.size % 8 == 0 else np.empty(0),
        (offsets[:-1] - offsets[0]) // 8,
    )


def _row_widths(schema_ids: np.ndarray, widths: dict[int, int]) -> npt.NDArray[np.int64]:
    """Values per row, looked up by schema id."""
    if schema_ids.size == 0:
        return np.empty(0, np.int64)
    table = np.zeros(int(schema_ids.max()) + 1, np.int64)
    for sid, width in widths.items():
        if sid < len(table):
            table[sid] = width
    return table[schema_ids]


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
    packed: _Packed,
    layouts: dict[int, list[tuple[str, str]]],
    values: dict[str, list[str | None]],
) -> pd.DataFrame:
    """The packed features as columns: numbers in one float64 block (NaN where a row did not
    log them), categories dictionary-encoded as stored."""
    n = len(ids)
    if packed.ids.size == 0:
        return pd.DataFrame(index=pd.RangeIndex(n))
    present = [int(sid) for sid in np.unique(packed.schema_ids)]
    numeric: dict[str, int] = {}
    categorical: dict[str, npt.NDArray[np.int64]] = {}
    for sid in present:
        for name, kind in layouts[sid]:
            if kind == "categorical":
                categorical.setdefault(name, np.full(n, -1, dtype=np.int64))
            else:
                numeric.setdefault(name, len(numeric))
    block = np.full((len(numeric), n), np.nan)
    positions = np.searchsorted(ids, packed.ids)
    for sid in present:
        layout = layouts[sid]
        width = len(layout)
        if len(present) == 1 and packed.words.size == len(positions) * width:
            rows = positions
            matrix = packed.words[: len(rows) * width].reshape(len(rows), width)
        else:
            mine = np.flatnonzero(packed.schema_ids == sid)
            rows = positions[mine]
            matrix = packed.words[packed.starts[mine][:, None] + np.arange(width)]
        by_column = np.ascontiguousarray(matrix.T)  # one pass, then every column is contiguous
        for j, (name, kind) in enumerate(layout):
            if kind == "categorical":
                raw = by_column[j]
                categorical[name][rows] = np.where(np.isnan(raw), -1, raw).astype(np.int64)
            else:
                block[numeric[name], rows] = by_column[j]
    frame = pd.DataFrame(block.T, columns=list(numeric), index=pd.RangeIndex(n), copy=False)
    for name, coded in categorical.items():
        # dictionary-encoded, as stored: counting categories then never touches Python objects
        labels = pd.Index(
            [v if v is not None else f"<code {i}>" for i, v in enumerate(values.get(name, []))]
        )
        frame[name] = pd.Categorical.from_codes(coded, categories=labels)
    return frame


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
