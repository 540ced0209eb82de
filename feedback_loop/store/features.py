"""Reading the features logged with a window's predictions, as columns.

Numeric features were stored as packed float64 rows, so a window's worth decodes into a matrix
with one ``frombuffer``; the other features are JSON, parsed once per distinct text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from feedback_loop.store.models import feature_value_table
from feedback_loop.store.reader import WindowFilter


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


def read_features(conn: Connection, window: WindowFilter) -> WindowFeatures:
    sqlite = conn.dialect.name == "sqlite"
    where, params = window.where(sqlite)
    if not sqlite:
        where = where.replace("?", "%s")
    raw = conn.connection.driver_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        cursor.execute(
            "SELECT pp.schema_id, pp.numeric, pp.features, p.tags, COALESCE(p.score, -1.0), "
            "COALESCE(p.pred_code, -2), COALESCE(p.actual_code, -2), "
            "COALESCE(p.pred_value, 'NaN'), COALESCE(p.actual_value, 'NaN'), "
            "CASE WHEN p.actual_ts IS NULL THEN 0 ELSE 1 END, p.ts "
            "FROM predictions p JOIN prediction_payloads pp ON pp.id = p.id "
            f"WHERE {where} ORDER BY p.id",
            params,
        )
        rows = cursor.fetchall()
        schemas = dict(cursor.execute("SELECT id, names FROM feature_schemas").fetchall())
        values = feature_value_table(conn, window.model_id)
    finally:
        cursor.close()
    n = len(rows)
    if n == 0:
        empty = np.empty(0)
        return WindowFeatures(
            pd.DataFrame(),
            empty,
            empty.astype(np.int64),
            empty.astype(np.int64),
            empty,
            empty,
            empty.astype(bool),
            pd.DataFrame(),
            empty.astype(np.int64),
        )
    (schema_id, numeric, text, tags, score, pred, actual, pred_value, actual_value, labeled, ts) = (
        list(column) for column in zip(*rows, strict=True)
    )
    frame = _numeric_frame(schema_id, numeric, schemas, values, n).join(
        _json_frame(text, n), how="outer"
    )
    score_array = np.array(score, dtype=np.float64)
    score_array[score_array < 0] = np.nan
    return WindowFeatures(
        features=frame,
        score=score_array,
        pred_code=np.array(pred, dtype=np.int64),
        actual_code=np.array(actual, dtype=np.int64),
        pred_value=np.array(pred_value, dtype=np.float64),
        actual_value=np.array(actual_value, dtype=np.float64),
        labeled=np.array(labeled, dtype=bool),
        tags=_json_frame(tags, n),
        ts=np.array(ts, dtype=np.int64),
    )


def _numeric_frame(
    schema_id: list[int | None],
    blobs: list[bytes | None],
    schemas: dict[int, str],
    values: dict[str, list[str | None]],
    n: int,
) -> pd.DataFrame:
    ids = np.array([-1 if s is None else s for s in schema_id], dtype=np.int64)
    columns: dict[str, np.ndarray] = {}
    for sid in np.unique(ids[ids >= 0]).tolist():
        layout = json.loads(schemas[sid])
        rows = np.flatnonzero(ids == sid)
        buffer = b"".join(bytes(blobs[i]) for i in rows.tolist())  # type: ignore[arg-type]
        matrix = np.frombuffer(buffer, dtype=np.float64).reshape(len(rows), len(layout))
        for j, (name, kind) in enumerate(layout):
            if kind == "categorical":
                names = np.array([*values.get(name, []), None], dtype=object)
                codes = matrix[:, j]
                decoded = names[np.where(np.isnan(codes), len(names) - 1, codes).astype(np.int64)]
                column = columns.setdefault(name, np.full(n, None, dtype=object))
                column[rows] = decoded
            else:
                column = columns.setdefault(name, np.full(n, np.nan))
                column[rows] = matrix[:, j]
    return pd.DataFrame(columns, index=pd.RangeIndex(n))


def _json_frame(texts: list[str | None], n: int) -> pd.DataFrame:
    codes, uniques = pd.factorize(pd.Series(texts, dtype=object), use_na_sentinel=True)
    if len(uniques) == 0:
        return pd.DataFrame(index=pd.RangeIndex(n))
    parsed = pd.DataFrame.from_records([json.loads(t) for t in uniques.tolist()])
    parsed.loc[len(parsed)] = None  # the row that missing texts point at
    codes = np.where(codes < 0, len(parsed) - 1, codes)
    return parsed.iloc[codes].reset_index(drop=True)
