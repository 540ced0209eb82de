"""Reading the features logged with a window's predictions, as columns.

Numeric features were stored as packed float64 rows, so a window's worth decodes into a matrix
with one ``frombuffer``; the other features are JSON, parsed once per distinct text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import Connection

from feedback_loop.store.models import feature_value_table
from feedback_loop.store.reader import WindowFilter, read_rows


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
    sqlite = conn.dialect.name == "sqlite"
    where, params = window.where(sqlite, alias="p")
    if not sqlite:
        where = where.replace("?", "%s")
    join = "FROM predictions p JOIN prediction_payloads pp ON pp.id = p.id"
    raw = conn.connection.driver_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        packed = cursor.execute(
            f"SELECT p.id, pp.schema_id, pp.numeric {join} WHERE {where} "
            "AND pp.numeric IS NOT NULL",
            params,
        ).fetchall()
        texts = cursor.execute(
            f"SELECT p.id, pp.features {join} WHERE {where} AND pp.features IS NOT NULL", params
        ).fetchall()
        tags = cursor.execute(
            f"SELECT p.id, p.tags FROM predictions p WHERE {where} AND p.tags IS NOT NULL",
            params,
        ).fetchall()
        schemas = dict(cursor.execute("SELECT id, names FROM feature_schemas").fetchall())
    finally:
        cursor.close()
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


def _combined(packed: pd.DataFrame, parsed: pd.DataFrame) -> pd.DataFrame:
    """One frame of both storages. A feature can be packed in some rows and JSON in others (a
    column file and JSON bodies logged to one model); each row holds it in one place."""
    overlap = packed.columns.intersection(parsed.columns)
    frame = packed.join(parsed.drop(columns=overlap), how="outer")
    for name in overlap:
        numeric = packed[name].astype(object)
        frame[name] = numeric.where(numeric.notna(), parsed[name]).infer_objects()
    return frame


def _positions(ids: np.ndarray, found: list[Any]) -> np.ndarray:
    """Where each fetched ``(id, ...)`` row sits in the window's id order."""
    fetched = np.fromiter((r[0] for r in found), dtype=np.int64, count=len(found))
    return np.searchsorted(ids, fetched)


def _numeric_frame(
    ids: np.ndarray,
    packed: list[Any],
    schemas: dict[int, str],
    values: dict[str, list[str | None]],
) -> pd.DataFrame:
    n = len(ids)
    columns: dict[str, np.ndarray] = {}
    categorical_codes: dict[str, npt.NDArray[np.int64]] = {}
    if not packed:
        return pd.DataFrame(index=pd.RangeIndex(n))
    where = _positions(ids, packed)
    schema_ids = np.fromiter((r[1] for r in packed), dtype=np.int64, count=len(packed))
    for sid in np.unique(schema_ids).tolist():
        layout = json.loads(schemas[sid])
        mine = np.flatnonzero(schema_ids == sid)
        buffer = b"".join([bytes(packed[i][2]) for i in mine.tolist()])
        matrix = np.frombuffer(buffer, dtype=np.float64).reshape(len(mine), len(layout))
        rows = where[mine]
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


def _json_frame(ids: np.ndarray, found: list[Any]) -> pd.DataFrame:
    """JSON objects (one per fetched row) as columns, parsed once per distinct text."""
    n = len(ids)
    if not found:
        return pd.DataFrame(index=pd.RangeIndex(n))
    where = _positions(ids, found)
    codes, uniques = pd.factorize(pd.Series([r[1] for r in found], dtype=object))
    parsed = pd.DataFrame.from_records([json.loads(t) for t in uniques.tolist()])
    columns = {}
    for name in parsed.columns:
        column = np.full(n, None, dtype=object)
        column[where] = parsed[name].to_numpy(dtype=object)[codes]
        columns[name] = pd.Series(column).infer_objects()
    return pd.DataFrame(columns, index=pd.RangeIndex(n))
