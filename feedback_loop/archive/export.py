"""Export a model's log as Parquet, partitioned by model and day, for lake engines.

The layout is hive style, ``OUT/model=NAME/date=YYYY-MM-DD/part-NNNNN.parquet`` (UTC days of
prediction time), which DuckDB, Spark, Polars and ``pyarrow.dataset`` read as one table with
``model`` and ``date`` columns. One row per prediction:

``prediction_id``, ``timestamp`` (UTC), ``version``, ``prediction`` (the label, or the value of a
regression), ``score``, ``actual`` (the current outcome; null when unlabeled or when a thumbs
down says only that the prediction was wrong), ``correct`` (classification), ``labeled_at``
(the first outcome's time), ``latency_ms``, then one ``feature.NAME`` column per feature and
one ``tag.KEY`` column per tag. Numeric features come back as float64.

The log is read a chunk at a time (whole hours of one day, about ``chunk_rows`` rows), each as
Arrow columns in one pass: memory stays bounded whatever the log's size. Every file of an
export has the same schema: a chunk that lacks a column, or holds it with a narrower type, is
rewritten to the export's schema at the end (rarely: only when features change over time).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feedback_loop.collect.handle import ModelHandle
from feedback_loop.core.timeutil import to_us
from feedback_loop.errors import ValidationError
from feedback_loop.store import models as model_store
from feedback_loop.store.blocks import PERIOD_US
from feedback_loop.store.engine import read_transaction
from feedback_loop.store.features import WindowFeatures, read_features
from feedback_loop.store.log_columns import LogColumns, hour_counts, read_log_columns
from feedback_loop.store.reader import WindowFilter

Progress = Callable[[int, int], None]  # (rows written, rows in the export)

_DAY_US = 24 * PERIOD_US
_TIME = pa.timestamp("us", tz="UTC")
_FIXED = (
    "prediction_id",
    "timestamp",
    "version",
    "prediction",
    "score",
    "actual",
    "correct",
    "labeled_at",
    "latency_ms",
)


@dataclass(frozen=True)
class ExportResult:
    """Where an export went and what it holds."""

    model: str
    path: Path  # the model's folder, ``OUT/model=NAME``
    rows: int
    files: list[Path] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "path": str(self.path),
            "rows": self.rows,
            "files": [str(f) for f in self.files],
            "dates": self.dates,
        }


def export_log(
    handle: ModelHandle,
    out: str | Path,
    *,
    since: Any = None,
    until: Any = None,
    chunk_rows: int = 100_000,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> ExportResult:
    """Write the predictions of ``[since, until)`` (default: all up to now) under ``out``.

    Days already exported under ``out`` for this model are an error unless ``overwrite``, which
    replaces them (only the days this export writes)."""
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ValidationError(f"{root} is a file, not a folder", field="out")
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValidationError("must be a positive integer", field="chunk_rows")
    start = -(2**62) if since is None else to_us(since, field="since")
    end = handle.now_us() + 1 if until is None else to_us(until, field="until")
    if end <= start:
        raise ValidationError("must be after since", field="until")
    state = handle.read_state()
    folder = root / f"model={quote(handle.name, safe='')}"
    with read_transaction(handle.engine) as conn:
        hours = hour_counts(conn, state.id, start, end)
    chunks = plan_chunks(hours, chunk_rows)
    dates = sorted({_date(a) for a, _, _ in chunks})
    existing = [folder / f"date={d}" for d in dates if (folder / f"date={d}").exists()]
    if existing and not overwrite:
        raise ValidationError(
            f"{existing[0]} already holds an export (pass overwrite to replace it)", field="out"
        )
    for path in existing:
        shutil.rmtree(path)
    total = sum(n for _, _, n in chunks)
    regression = state.spec.task == "regression"
    written: list[tuple[Path, pa.Schema]] = []
    done = 0
    if progress is not None:
        progress(0, total)
    for i, (a, b, _) in enumerate(chunks):
        window = WindowFilter(state.id, max(a, start), min(b, end))
        with read_transaction(handle.engine) as conn:
            data = read_features(conn, window, regression=regression)
            log = read_log_columns(conn, window)
            labels = model_store.label_values(conn, state.id)
        table = chunk_table(data, log, labels, regression)
        if table.num_rows == 0:
            continue
        path = folder / f"date={_date(a)}" / f"part-{i:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        written.append((path, table.schema))
        done += table.num_rows
        if progress is not None:
            progress(done, total)
    _conform_files(written)
    return ExportResult(handle.name, folder, done, [p for p, _ in written], dates)


def plan_chunks(hours: list[tuple[int, int]], chunk_rows: int) -> list[tuple[int, int, int]]:
    """Consecutive ``(hour, rows)`` into ``[start, end)`` chunks of whole hours of one UTC day,
    of at most ``chunk_rows`` rows unless one hour alone holds more."""
    chunks: list[tuple[int, int, int]] = []
    for hour, n in hours:
        if chunks:
            a, _, rows = chunks[-1]
            if a // _DAY_US == hour // _DAY_US and rows + n <= chunk_rows:
                chunks[-1] = (a, hour + PERIOD_US, rows + n)
                continue
        chunks.append((hour, hour + PERIOD_US, n))
    return chunks


def _date(us: int) -> str:
    return datetime.fromtimestamp(us // 1_000_000, UTC).strftime("%Y-%m-%d")


def chunk_table(
    data: WindowFeatures, log: LogColumns, labels: dict[int, Any], regression: bool
) -> pa.Table:
    """One chunk's rows as an Arrow table. The two reads are aligned on row ids: on
    PostgreSQL each runs at its own snapshot, so a row only one of them saw is left out."""
    assert data.ids is not None
    keep = np.isin(data.ids, log.ids)
    at = np.searchsorted(log.ids, data.ids[keep])
    log = log.take(at)
    rows = np.flatnonzero(keep)
    labeled = data.labeled[rows]
    columns: dict[str, pa.Array] = {
        "prediction_id": log.prediction_id,
        "timestamp": pa.array(data.ts[rows], _TIME),
        "version": log.version,
    }
    if regression:
        columns["prediction"] = pa.array(data.pred_value[rows], pa.float64())
        columns["score"] = _floats(data.score[rows])
        columns["actual"] = pa.array(data.actual_value[rows], pa.float64(), mask=~labeled)
    else:
        dictionary = _label_dictionary(labels)
        pred, actual = data.pred_code[rows], data.actual_code[rows]
        columns["prediction"] = _decode(dictionary, pred)
        columns["score"] = _floats(data.score[rows])
        columns["actual"] = _decode(dictionary, np.where(labeled, actual, -2))
        columns["correct"] = pa.array(actual == pred, pa.bool_(), mask=~labeled)
    columns["labeled_at"] = pa.array(log.label_ts, _TIME, mask=~labeled)
    columns["latency_ms"] = log.latency_ms
    for name in sorted(data.features.columns):
        columns[f"feature.{name}"] = _arrow(data.features[name].iloc[rows])
    for key in sorted(data.tags.columns):
        columns[f"tag.{key}"] = _arrow(data.tags[key].iloc[rows])
    return pa.table(columns)


def _floats(values: np.ndarray) -> pa.Array:
    return pa.array(values, pa.float64(), mask=np.isnan(values))


def _label_dictionary(labels: dict[int, Any]) -> pa.Array:
    """The model's labels by code, typed when they share a type (JSON text when they do not:
    ``1``, ``true`` and ``"1"`` stay apart)."""
    size = max(labels, default=-1) + 1
    values = [labels.get(code) for code in range(size)]
    present = [v for v in values if v is not None]
    kinds = {type(v) for v in present}
    if kinds <= {bool}:
        return pa.array(values, pa.bool_())
    if kinds <= {int}:
        return pa.array(values, pa.int64())
    if kinds <= {str}:
        return pa.array(values, pa.large_string())
    return pa.array([None if v is None else json.dumps(v) for v in values], pa.large_string())


def _decode(dictionary: pa.Array, codes: np.ndarray) -> pa.Array:
    """Label codes to labels in one take; codes without a label (none, thumbs down) as null."""
    valid = (codes >= 0) & (codes < len(dictionary))
    index = pa.array(np.where(valid, codes, 0), pa.int64(), mask=~valid)
    return dictionary.take(index)


def _arrow(series: pd.Series) -> pa.Array:
    """A feature or tag column in Arrow: categories as strings, numbers with NaN as null; a
    column of values of mixed kinds (JSON) as JSON text."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        coded = pa.array(series)
        return pc.cast(coded.dictionary_decode(), pa.large_string())
    try:
        array = pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # mixed kinds in one column (a number in some rows, text in others): rare, row by row
        texts = [None if _missing(v) else json.dumps(v) for v in series.tolist()]
        return pa.array(texts, pa.large_string())
    if pa.types.is_string(array.type):
        return pc.cast(array, pa.large_string())
    return array


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _conform_files(written: list[tuple[Path, pa.Schema]]) -> None:
    """Give every file of the export one schema: the union of the chunks' columns, fixed
    columns first, types widened where chunks disagree (text when nothing else holds both)."""
    if len({s for _, s in written}) <= 1:
        return
    schema = _union([s for _, s in written])
    for path, own in written:
        if own.equals(schema):
            continue
        table = pq.read_table(path)
        columns = []
        for target in schema:
            if target.name in table.column_names:
                column = table.column(target.name)
                columns.append(column if column.type == target.type else _cast(column, target))
            else:
                columns.append(pa.nulls(table.num_rows, target.type))
        pq.write_table(pa.table(columns, schema=schema), path)


def _union(schemas: list[pa.Schema]) -> pa.Schema:
    types: dict[str, list[pa.DataType]] = {}
    for schema in schemas:
        for f in schema:
            types.setdefault(f.name, []).append(f.type)
    fields = []
    for name, found in types.items():
        try:
            merged = pa.unify_schemas(
                [pa.schema([(name, t)]) for t in found], promote_options="permissive"
            ).field(name)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            merged = pa.field(name, pa.large_string())
        fields.append(merged)
    order = {name: i for i, name in enumerate(_FIXED)}
    fields.sort(key=lambda f: (order.get(f.name, len(order)), f.name))
    return pa.schema(fields)


def _cast(column: pa.ChunkedArray, target: pa.Field) -> pa.ChunkedArray:
    try:
        return pc.cast(column, target.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        texts = [None if v is None else json.dumps(v) for v in column.to_pylist()]
        return pa.chunked_array([pa.array(texts, target.type)])
