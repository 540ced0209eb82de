"""Columnar reads of the prediction log.

Monitoring reads whole windows, up to millions of rows, and row-by-row fetching through a Python
driver costs more than the metrics themselves. PostgreSQL windows are read through ADBC (Arrow
Database Connectivity, binary COPY) straight into Arrow columns. SQLite windows come back as one
text per column, built by SQLite in C and parsed by Arrow's CSV reader: a handful of Python objects
instead of millions. (ADBC's SQLite driver is not an option: it carries its own SQLite library,
and two SQLite libraries in one process release each other's file locks.)
"""

from __future__ import annotations

import atexit
import io
import os
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from sqlalchemy import Connection, Engine, event, text

from feedback_loop.errors import ValidationError
from feedback_loop.store.predictions import unpack_proba

_TAG = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
_SEP = "\x1f"  # never inside a version string (validated at ingest)


_IDLE_PER_ENGINE = 4
_idle: dict[tuple[int, int], list[Any]] = {}  # (pid, engine id) -> idle ADBC connections
_idle_lock = threading.Lock()


def _connect(engine: Engine) -> Any:
    import adbc_driver_postgresql.dbapi as pg_driver

    url = engine.url.set(drivername="postgresql")
    # autocommit: an idle pooled connection holds no snapshot and no lock
    return pg_driver.connect(url.render_as_string(hide_password=False), autocommit=True)


def _close_idle(engine: Engine) -> None:
    with _idle_lock:
        idle = _idle.pop((os.getpid(), id(engine)), [])
    for conn in idle:
        with suppress(Exception):
            conn.close()


@atexit.register
def _close_all_idle() -> None:
    """Close this process's kept connections before the interpreter tears their driver down."""
    with _idle_lock:
        mine = [key for key in _idle if key[0] == os.getpid()]
        kept = [conn for key in mine for conn in _idle.pop(key)]
    for conn in kept:
        with suppress(Exception):
            conn.close()


@contextmanager
def arrow_connection(engine: Engine) -> Iterator[Any]:
    """An ADBC connection to a PostgreSQL engine's database, kept for the next read: opening
    one costs a quarter of a second, many times a small read (a chart reads sixty windows)."""
    key = (os.getpid(), id(engine))  # a forked worker opens its own
    with _idle_lock:
        idle = _idle.get(key)
        conn = idle.pop() if idle else None
        if key not in _idle:
            _idle[key] = []
            event.listen(engine, "engine_disposed", _close_idle)
    if conn is None:
        conn = _connect(engine)
    try:
        yield conn
    except BaseException:
        with suppress(Exception):
            conn.close()
        raise
    with _idle_lock:
        idle = _idle.get(key)
        if idle is not None and len(idle) < _IDLE_PER_ENGINE:
            idle.append(conn)
            return
    conn.close()


def fetch_arrow(engine: Engine, sql: str, params: list[Any]) -> pa.Table:
    """Run ``sql`` on PostgreSQL with positional ``?`` parameters; the result as Arrow. A kept
    connection that the server closed meanwhile is replaced once."""
    counter = iter(range(1, len(params) + 1))
    sql = re.sub(r"\?", lambda _m: f"${next(counter)}", sql)
    for attempt in (1, 2):
        try:
            with arrow_connection(engine) as conn:
                cursor = conn.cursor()
                try:
                    cursor.execute(sql, params or None)
                    table: pa.Table = cursor.fetch_arrow_table()
                finally:
                    cursor.close()
                return table
        except Exception as exc:
            if attempt == 2 or not _is_connection_error(exc):
                raise
    raise AssertionError("unreachable")


def _is_connection_error(exc: Exception) -> bool:
    import adbc_driver_manager

    return isinstance(exc, adbc_driver_manager.OperationalError)


@dataclass
class WindowFilter:
    """Which predictions: one model, a half-open range of event times, optional filters."""

    model_id: int
    start_us: int
    end_us: int
    version: str | None = None
    segment: dict[str, str] | None = None

    def where(self, sqlite: bool, alias: str = "") -> tuple[str, list[Any]]:
        """SQL conditions with ``?`` parameters; ``alias`` qualifies the predictions columns."""
        t = f"{alias}." if alias else ""
        clauses = [f"{t}model_id = ?", f"{t}ts >= ?", f"{t}ts < ?"]
        params: list[Any] = [self.model_id, self.start_us, self.end_us]
        if self.version is not None:
            clauses.append(f"{t}version = ?")
            params.append(str(self.version))
        for key, value in (self.segment or {}).items():
            if not _TAG.match(key):
                raise ValidationError(f"{key!r} is not a tag name", field="segment")
            if sqlite:
                clauses.append(f"json_extract({t}tags, ?) = ?")
                params.extend([f'$."{key}"', str(value)])
            else:
                clauses.append(f"(CAST({t}tags AS json) ->> ?) = ?")
                params.extend([key, str(value)])
        return " AND ".join(clauses), params

    def between(self, start_us: int, end_us: int) -> WindowFilter:
        return WindowFilter(self.model_id, start_us, end_us, self.version, self.segment)


@dataclass
class Rows:
    """Predictions of a window, column by column (unlabeled rows included)."""

    ts: np.ndarray  # int64 µs
    version: np.ndarray  # str, '' when none
    labeled: np.ndarray  # bool
    a: np.ndarray  # predicted code (int64) or value (float64)
    b: np.ndarray  # actual code or value (sentinel where unlabeled)
    score: np.ndarray  # float64, NaN where none
    delay_us: np.ndarray  # int64, first label time minus prediction time
    ids: np.ndarray | None = None  # row ids, when asked for

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, mask: np.ndarray) -> Rows:
        return Rows(*(getattr(self, f)[mask] for f in _FIELDS))

    @staticmethod
    def concat(parts: list[Rows], regression: bool) -> Rows:
        if not parts:
            return empty_rows(regression)
        return Rows(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))


_FIELDS = ("ts", "version", "labeled", "a", "b", "score", "delay_us")


def empty_rows(regression: bool) -> Rows:
    kind = np.float64 if regression else np.int64
    return Rows(
        np.empty(0, np.int64),
        np.empty(0, object),
        np.empty(0, bool),
        np.empty(0, kind),
        np.empty(0, kind),
        np.empty(0),
        np.empty(0, np.int64),
    )


def _columns(regression: bool, sqlite: bool) -> list[str]:
    if regression:
        pair = ["COALESCE(pred_value, 0.0)", "COALESCE(actual_value, 0.0)"]
    else:
        pair = ["COALESCE(pred_code, -2)", "COALESCE(actual_code, -2)"]
    exact = (lambda e: f"printf('%!.17g', {e})") if sqlite else (lambda e: e)
    floats = [exact(e) for e in pair] if regression else pair
    return [
        "ts",
        "'v' || COALESCE(version, '')",  # never an empty line
        "CASE WHEN actual_ts IS NULL THEN 0 ELSE 1 END",
        *floats,
        exact("COALESCE(score, -1.0)"),
        "COALESCE(label_ts - ts, 0)",
    ]


def read_rows(
    conn: Connection, window: WindowFilter, *, regression: bool, with_id: bool = False
) -> Rows:
    """Every prediction of ``window`` (SQLite: on ``conn``, inside its transaction).

    With ``with_id`` the rows come back sorted by row id, which is returned in ``ids``."""
    sqlite = conn.dialect.name == "sqlite"
    columns = _columns(regression, sqlite) + (["id"] if with_id else [])
    pair = pa.float64() if regression else pa.int64()
    kinds = [pa.int64(), pa.string(), pa.int64(), pair, pair, pa.float64(), pa.int64()]
    kinds += [pa.int64()] if with_id else []
    arrays = _read_columns(conn, window, columns, kinds)
    ts, version, labeled, a, b, score, delay = arrays[:7]
    rows = Rows(ts, version, labeled.astype(bool), a, b, _nan_for_none(score), delay)
    if not with_id:
        return rows
    ids = arrays[7]
    order = np.argsort(ids, kind="stable")
    rows = rows.take(order)
    rows.ids = ids[order]
    return rows


def read_labeled_of(
    conn: Connection, model_id: int, pid_query: str, params: dict[str, Any], *, regression: bool
) -> Rows:
    """The labeled predictions among those ``pid_query`` names (SQL selecting prediction ids,
    with named ``params``), read on ``conn`` itself so a writer sees its own uncommitted rows
    and staging tables: one text of the rows, built by the database and parsed by Arrow."""
    sqlite = conn.dialect.name == "sqlite"
    every = _columns(regression, sqlite)
    columns = [every[0], "COALESCE(version, '')", *every[3:]]
    if sqlite:
        line = " || char(31) || ".join(columns)
        select = f"group_concat({line}, char(10))"
    else:
        line = " || chr(31) || ".join(f"CAST({c} AS text)" for c in columns)
        select = f"string_agg({line}, chr(10))"
    found = conn.execute(
        text(
            f"SELECT {select} FROM predictions WHERE model_id = :m "
            f"AND actual_ts IS NOT NULL AND prediction_id IN ({pid_query})"
        ),
        {"m": model_id, **params},
    ).scalar_one()
    if not found:
        return empty_rows(regression)
    pair = pa.float64() if regression else pa.int64()
    kinds = [pa.int64(), pa.string(), pair, pair, pa.float64(), pa.int64()]
    names = ["ts", "version", "a", "b", "score", "delay"]
    table = pa_csv.read_csv(
        io.BytesIO(found.encode()),
        read_options=pa_csv.ReadOptions(column_names=names),
        parse_options=pa_csv.ParseOptions(delimiter=_SEP, quote_char=False),
        convert_options=pa_csv.ConvertOptions(
            column_types=dict(zip(names, kinds, strict=True)),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    version = np.asarray(table.column("version").to_numpy(zero_copy_only=False), dtype=object)
    ts, a, b, score, delay = (
        _numpy(table.column(name), kind)
        for name, kind in zip(names, kinds, strict=True)
        if name != "version"
    )
    return Rows(ts, version, np.ones(len(ts), bool), a, b, _nan_for_none(score), delay)


@dataclass
class Outputs:
    """What the model said and what happened, per prediction of a window, in row-id order:
    the columns a features read needs (no version strings, no label delays)."""

    ids: np.ndarray  # int64
    ts: np.ndarray  # int64 µs
    labeled: np.ndarray  # bool
    a: np.ndarray  # predicted code (int64) or value (float64)
    b: np.ndarray  # actual code or value (sentinel where unlabeled)
    score: np.ndarray  # float64, NaN where none


def read_outputs(conn: Connection, window: WindowFilter, *, regression: bool) -> Outputs:
    """The window's predictions and outcomes, sorted by row id."""
    every = _columns(regression, conn.dialect.name == "sqlite")
    pair = pa.float64() if regression else pa.int64()
    columns = [every[0], every[2], every[3], every[4], every[5], "id"]
    kinds = [pa.int64(), pa.int64(), pair, pair, pa.float64(), pa.int64()]
    ts, labeled, a, b, score, ids = _read_columns(conn, window, columns, kinds)
    order = np.argsort(ids, kind="stable")
    return Outputs(
        ids[order],
        ts[order],
        labeled.astype(bool)[order],
        a[order],
        b[order],
        _nan_for_none(score)[order],
    )


def read_scores(conn: Connection, window: WindowFilter) -> np.ndarray:
    """The logged scores of ``window`` (float64, NaN where none), in no particular order: one
    column read instead of the whole row."""
    score = _columns(False, conn.dialect.name == "sqlite")[5]
    return _nan_for_none(_read_columns(conn, window, [score], [pa.float64()])[0])


def _nan_for_none(score: np.ndarray) -> np.ndarray:
    score = score.astype(np.float64)
    score[score < 0] = np.nan  # stored scores are probabilities: -1.0 stands for none
    return score


def _read_columns(
    conn: Connection, window: WindowFilter, columns: list[str], kinds: list[pa.DataType]
) -> list[np.ndarray]:
    """SQL expressions over the window's predictions, one array each. SQLite builds each column
    as one text (``group_concat``) that Arrow's CSV reader parses; PostgreSQL sends Arrow."""
    sqlite = conn.dialect.name == "sqlite"
    where, params = window.where(sqlite)
    if sqlite:
        select = ", ".join(f"group_concat({c}, char(10))" for c in columns)
        raw = conn.connection.driver_connection
        assert raw is not None
        cursor = raw.cursor()
        try:
            texts = cursor.execute(
                f"SELECT {select} FROM predictions WHERE {where}", params
            ).fetchone()
        finally:
            cursor.close()
        return [_parse_lines(t, k) for t, k in zip(texts, kinds, strict=True)]
    names = [f"c{i}" for i in range(len(columns))]
    select = ", ".join(f"{c} AS {n}" for c, n in zip(columns, names, strict=True))
    table = fetch_arrow(conn.engine, f"SELECT {select} FROM predictions WHERE {where}", params)
    return [_numpy(table.column(n), k) for n, k in zip(names, kinds, strict=True)]


# Below this many characters NumPy (or str.split) parses a column of floats (or strings) faster
# than Arrow's CSV reader, whose set-up (threads, buffers) costs more than a small window's
# parse; whole numbers NumPy parses faster at any length.
_SMALL_FLOATS = 16_384


def _parse_lines(text: str | None, kind: pa.DataType) -> np.ndarray:
    if text is None:
        return np.empty(0, dtype=object if kind == pa.string() else kind.to_pandas_dtype())
    if kind == pa.int64() or (kind == pa.float64() and len(text) < _SMALL_FLOATS):
        parsed = _parse_numbers(text, kind.to_pandas_dtype())
        if parsed is not None:
            return parsed
    if kind == pa.string() and len(text) < _SMALL_FLOATS and "\r" not in text:
        # each value is prefixed with 'v' (see ``_numpy``); Arrow would also end lines at '\r'
        return np.array([line[1:] for line in text.split("\n")], dtype=object)
    table = pa_csv.read_csv(
        io.BytesIO(text.encode()),
        read_options=pa_csv.ReadOptions(column_names=["v"]),
        parse_options=pa_csv.ParseOptions(delimiter=_SEP, quote_char=False),
        convert_options=pa_csv.ConvertOptions(
            column_types={"v": kind}, strings_can_be_null=False, quoted_strings_can_be_null=False
        ),
    )
    return _numpy(table.column("v"), kind)


def _parse_numbers(text: str, dtype: Any) -> np.ndarray | None:
    """One number per line, parsed by NumPy; None unless every line is exactly one number
    (then Arrow's reader parses it, and names what it cannot)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a partial parse warns: read it as a failure
        try:
            values = np.fromstring(text, dtype=dtype, sep="\n")
        except (ValueError, DeprecationWarning):
            return None
    return values if len(values) == text.count("\n") + 1 else None


def _numpy(column: pa.ChunkedArray, kind: pa.DataType) -> np.ndarray:
    if kind == pa.string():
        stripped = pc.utf8_slice_codeunits(column, 1)  # drop the 'v' prefix
        return np.asarray(stripped.to_numpy(zero_copy_only=False), dtype=object)
    dtype = kind.to_pandas_dtype()
    if len(column) == 0:
        return np.empty(0, dtype=dtype)
    return np.asarray(column.to_numpy(), dtype=dtype).copy()


def read_proba(
    conn: Connection, window: WindowFilter, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(actual codes, probability matrix)`` of the labeled predictions that logged class
    probabilities (multiclass). Rows are decoded one by one: a slower path than the blocks."""
    where, params = window.where(conn.dialect.name == "sqlite")
    marks = where if conn.dialect.name == "sqlite" else _pyformat(where)
    raw = conn.connection.driver_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        cursor.execute(
            "SELECT p.actual_code, pp.proba FROM predictions p "
            "JOIN prediction_payloads pp ON pp.id = p.id "
            f"WHERE {marks} AND p.actual_ts IS NOT NULL AND pp.proba IS NOT NULL",
            params,
        )
        rows = cursor.fetchall()
    finally:
        cursor.close()
    actual = np.array([r[0] for r in rows], dtype=np.int64)
    proba = np.zeros((len(rows), n_classes))
    for i, (_, blob) in enumerate(rows):
        proba[i] = unpack_proba(bytes(blob), n_classes)
    return actual, proba


def _pyformat(where: str) -> str:
    return where.replace("?", "%s")
