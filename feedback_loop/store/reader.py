"""Columnar reads of the prediction log.

Monitoring reads whole windows, up to millions of rows. Row-by-row fetching through a Python
driver costs more than the metrics themselves, so PostgreSQL windows are read through ADBC (Arrow
Database Connectivity, binary COPY) straight into Arrow columns, and SQLite windows as one text per
column (see ``_read_labeled_sqlite``).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import Engine

from feedback_loop.errors import ValidationError
from feedback_loop.store.engine import is_sqlite

_TAG = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")


@contextmanager
def arrow_connection(engine: Engine) -> Iterator[Any]:
    """An ADBC connection to a PostgreSQL engine's database."""
    if is_sqlite(engine):
        raise ValueError("ADBC is used for PostgreSQL only (see _read_labeled_sqlite)")
    import adbc_driver_postgresql.dbapi as pg_driver

    url = engine.url.set(drivername="postgresql")
    conn = pg_driver.connect(url.render_as_string(hide_password=False))
    try:
        yield conn
    finally:
        conn.close()


def fetch_arrow(engine: Engine, sql: str, params: list[Any]) -> pa.Table:
    """Run ``sql`` (PostgreSQL) with positional ``?`` parameters; the result as Arrow."""
    counter = iter(range(1, len(params) + 1))
    sql = re.sub(r"\?", lambda _m: f"${next(counter)}", sql)
    with arrow_connection(engine) as conn:
        cursor = conn.cursor()
        try:
            cursor.execute(sql, params or None)
            table: pa.Table = cursor.fetch_arrow_table()
        finally:
            cursor.close()
        return table


@dataclass
class WindowFilter:
    model_id: int
    start_us: int
    end_us: int
    version: str | None = None
    segment: dict[str, str] | None = None

    def where(self, sqlite: bool) -> tuple[str, list[Any]]:
        clauses = ["model_id = ?", "ts >= ?", "ts < ?"]
        params: list[Any] = [self.model_id, self.start_us, self.end_us]
        if self.version is not None:
            clauses.append("version = ?")
            params.append(str(self.version))
        for key, value in (self.segment or {}).items():
            if not _TAG.match(key):
                raise ValidationError(f"{key!r} is not a tag name", field="segment")
            if sqlite:
                clauses.append("json_extract(tags, ?) = ?")
                params.extend([f'$."{key}"', str(value)])
            else:
                clauses.append("(CAST(tags AS json) ->> ?) = ?")
                params.extend([key, str(value)])
        return " AND ".join(clauses), params


@dataclass
class LabeledWindow:
    """The labeled predictions of a window, as arrays, plus the window's counts."""

    predictions: int
    labeled: int
    pred_code: np.ndarray
    actual_code: np.ndarray
    score: np.ndarray  # NaN where no score was logged
    pred_value: np.ndarray
    actual_value: np.ndarray
    delay_s: np.ndarray


def read_labeled(engine: Engine, window: WindowFilter, *, regression: bool) -> LabeledWindow:
    """The labeled rows of a window as arrays (order is irrelevant to every metric)."""
    if is_sqlite(engine):
        return _read_labeled_sqlite(engine, window, regression=regression)
    where, params = window.where(sqlite=False)
    counts = fetch_arrow(
        engine,
        f"SELECT COUNT(*) AS n, COUNT(actual_ts) AS labeled FROM predictions WHERE {where}",
        params,
    )
    n = int(counts.column("n")[0].as_py())
    labeled = int(counts.column("labeled")[0].as_py())
    if regression:
        columns = "COALESCE(pred_value, 0.0) AS a, COALESCE(actual_value, 0.0) AS b, "
    else:
        columns = "COALESCE(pred_code, -2) AS a, COALESCE(actual_code, -2) AS b, "
    table = fetch_arrow(
        engine,
        f"""
        SELECT {columns}
               COALESCE(score, -1.0) AS score,
               (label_ts - ts) AS delay
        FROM predictions WHERE {where} AND actual_ts IS NOT NULL
        """,
        params,
    )
    return _window(
        n,
        labeled,
        _numpy(table, "a", np.float64 if regression else np.int64),
        _numpy(table, "b", np.float64 if regression else np.int64),
        _numpy(table, "score", np.float64),
        _numpy(table, "delay", np.float64),
        regression=regression,
    )


def _window(
    n: int,
    labeled: int,
    a: np.ndarray,
    b: np.ndarray,
    score: np.ndarray,
    delay_us: np.ndarray,
    *,
    regression: bool,
) -> LabeledWindow:
    score[score < 0] = np.nan
    empty = np.empty(0)
    return LabeledWindow(
        predictions=n,
        labeled=labeled,
        pred_code=empty if regression else a,
        actual_code=empty if regression else b,
        score=score,
        pred_value=a if regression else empty,
        actual_value=b if regression else empty,
        delay_s=delay_us / 1e6,
    )


def _read_labeled_sqlite(
    engine: Engine, window: WindowFilter, *, regression: bool
) -> LabeledWindow:
    """SQLite has no columnar interface in this process's SQLite library, and a second SQLite
    library in one process breaks SQLite's file locks. So each column comes back as one
    newline-joined text built by SQLite in C and parsed by Arrow's multithreaded CSV reader:
    four Python objects instead of millions."""
    where, params = window.where(sqlite=True)
    if regression:
        first, second = "printf('%.17g', pred_value)", "printf('%.17g', actual_value)"
    else:
        first, second = "COALESCE(pred_code, -2)", "COALESCE(actual_code, -2)"
    sql = f"""
        SELECT COUNT(*),
               group_concat({first}, char(10)),
               group_concat({second}, char(10)),
               group_concat(printf('%.17g', COALESCE(score, -1.0)), char(10)),
               group_concat(label_ts - ts, char(10))
        FROM predictions WHERE {where} AND actual_ts IS NOT NULL
    """
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        cursor = raw.cursor()
        try:
            total = cursor.execute(
                f"SELECT COUNT(*) FROM predictions WHERE {where}", params
            ).fetchone()[0]
            labeled, *texts = cursor.execute(sql, params).fetchone()
        finally:
            cursor.close()
    pair_kind = pa.float64() if regression else pa.int64()
    kinds = (pair_kind, pair_kind, pa.float64(), pa.float64())
    a, b, score, delay = (_parse_lines(text, kind) for text, kind in zip(texts, kinds, strict=True))
    return _window(int(total), int(labeled), a, b, score, delay, regression=regression)


def _parse_lines(text: str | None, kind: pa.DataType) -> np.ndarray:
    if not text:
        return np.empty(0, dtype=kind.to_pandas_dtype())
    table = pa_csv.read_csv(
        io.BytesIO(text.encode()),
        read_options=pa_csv.ReadOptions(column_names=["v"]),
        convert_options=pa_csv.ConvertOptions(column_types={"v": kind}),
    )
    return np.asarray(table.column("v").to_numpy(), dtype=kind.to_pandas_dtype()).copy()


def _numpy(table: pa.Table, column: str, dtype: Any) -> np.ndarray:
    if table.num_rows == 0:
        return np.empty(0, dtype=dtype)
    chunked = table.column(column)
    return np.asarray(chunked.to_numpy(), dtype=dtype).copy()
