"""Counting logged rows on a reference's cells: what a drift check needs, and all it needs.

The default drift verdict, PSI and Jensen–Shannon compare a window with a reference profile on
the profile's cells only: the deciles of a numeric column (bin ``i`` holds ``edges[i-1] <= x <
edges[i]``), the profiled categories of a categorical one. So a window can be reduced to counts
per cell (plus missing and not-null counts), and counts of hours add up to counts of a week.

:class:`Layout` fixes where each column's cells sit in a :class:`~feedback_loop.store.summaries.
Summary`; :func:`count_rows` counts a frame of logged rows on it. The same function counts an
hour for the stored summaries and a whole window read from the log, so both give the same
numbers; values whose count would depend on the other rows of the window (a category logged as
a JSON number reads as ``1`` or ``1.0`` depending on its neighbours) mark the counts unstable,
and a check over them reads the rows instead.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from feedback_loop.stats.drift.categorical import count_categories
from feedback_loop.stats.drift.univariate import bin_counts
from feedback_loop.stats.reference import LABEL, PREDICTION, categorical_values
from feedback_loop.store.blocks import period_of
from feedback_loop.store.summaries import Summary, mark_dirty

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from feedback_loop.collect.batches import PredictionBatch

NUMERIC = "numeric"
CATEGORICAL = "categorical"
CODES = "codes"  # class codes of a classifier's predictions, mapped to labels when checked
_STABLE_OBJECTS = ("string", "boolean", "empty")


@dataclass(frozen=True)
class ColumnCells:
    """Where one column's counts sit in ``Summary.fixed``: its cells, then missing, not-null."""

    name: str
    kind: str  # NUMERIC, CATEGORICAL or CODES
    start: int
    edges: np.ndarray | None = None  # numeric: the profile's bin edges
    index: dict[Any, int] | None = None  # categorical: profiled label -> cell
    truncated: bool = False  # categorical: unprofiled categories pool into one "other" cell

    @property
    def n_cells(self) -> int:
        if self.kind == NUMERIC:
            assert self.edges is not None
            return self.edges.size + 1
        if self.kind == CATEGORICAL:
            assert self.index is not None
            return len(self.index) + (1 if self.truncated else 0)
        return 0

    @property
    def width(self) -> int:
        return self.n_cells + 2

    def cells(self, summary: Summary) -> np.ndarray:
        return summary.fixed[self.start : self.start + self.n_cells]

    def missing(self, summary: Summary) -> int:
        return int(summary.fixed[self.start + self.n_cells])

    def not_null(self, summary: Summary) -> int:
        return int(summary.fixed[self.start + self.n_cells + 1])


@dataclass(frozen=True)
class Layout:
    """The cells of a reference's profiled features and prediction, and their digest."""

    task: str | None
    features: tuple[ColumnCells, ...]
    prediction: ColumnCells | None
    width: int
    digest: str

    def empty(self) -> Summary:
        return Summary.empty(self.width)


def _column(name: str, profile: dict[str, Any], start: int, kind: str | None = None) -> ColumnCells:
    if kind == CODES:
        return ColumnCells(name, CODES, start)
    if profile["kind"] == NUMERIC:
        return ColumnCells(name, NUMERIC, start, edges=np.asarray(profile["bin_edges"], np.float64))
    index = {label: i for i, label in enumerate(profile["labels"])}
    return ColumnCells(name, CATEGORICAL, start, index=index, truncated=profile["other"] > 0)


def layout_of(stored: dict[str, Any], task: str | None) -> Layout:
    """The layout of a stored reference (its ``data``) for a model of ``task``."""
    columns: list[ColumnCells] = []
    start = 0
    for name, profile in stored["features"].items():
        columns.append(_column(name, profile, start))
        start += columns[-1].width
    prediction = None
    if PREDICTION in stored and task in ("binary", "regression", "multiclass"):
        kind = CODES if task == "multiclass" else None
        prediction = _column(PREDICTION, stored[PREDICTION], start, kind)
        start += prediction.width
    shape = {
        "task": task,
        "columns": [
            [c.name, c.kind, c.truncated]
            + ([] if c.edges is None else [c.edges.tolist()])
            + ([] if c.index is None else [list(c.index)])
            for c in (*columns, *([prediction] if prediction else []))
        ],
    }
    digest = hashlib.sha256(json.dumps(shape, default=repr).encode()).hexdigest()[:32]
    return Layout(task, tuple(columns), prediction, start, digest)


def count_rows(
    layout: Layout,
    features: pd.DataFrame,
    *,
    score: np.ndarray,
    pred_code: np.ndarray,
    pred_value: np.ndarray,
) -> Summary:
    """Counts of these rows (features row-aligned with the model's outputs) on ``layout``."""
    n = len(features)
    summary = Summary(n, np.zeros(layout.width, dtype=np.int64))
    for cells in layout.features:
        column = features[cells.name] if cells.name in features.columns else None
        if cells.kind == NUMERIC:
            _count_numeric(summary, cells, column, n)
        else:
            _count_categorical(summary, cells, column, n)
    prediction = layout.prediction
    if prediction is None:
        return summary
    if prediction.kind == CODES:
        codes, tally = np.unique(np.asarray(pred_code, dtype=np.int64), return_counts=True)
        summary.extras[prediction.name] = {
            str(c): int(t) for c, t in zip(codes, tally, strict=True)
        }
        summary.fixed[prediction.start + 1] = n
    elif layout.task == "binary":  # the logged scores, where there is one
        finite = score[np.isfinite(score)]
        _put_numeric(summary, prediction, finite, missing=0, not_null=finite.size)
    else:  # regression: every row's value
        finite = pred_value[np.isfinite(pred_value)]
        _put_numeric(summary, prediction, finite, missing=n - finite.size, not_null=n)
    return summary


def _put_numeric(
    summary: Summary, cells: ColumnCells, finite: np.ndarray, *, missing: int, not_null: int
) -> None:
    assert cells.edges is not None
    end = cells.start + cells.n_cells
    summary.fixed[cells.start : end] = bin_counts(finite, cells.edges)
    summary.fixed[end] = missing
    summary.fixed[end + 1] = not_null


def _count_numeric(summary: Summary, cells: ColumnCells, column: pd.Series | None, n: int) -> None:
    if column is None:
        _put_numeric(summary, cells, np.empty(0), missing=n, not_null=0)
        return
    not_null = n - int(column.isna().sum())
    try:
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):  # text in a numeric column: the check reads the rows
        summary.unstable = True
        return
    finite = values[np.isfinite(values)]
    _put_numeric(summary, cells, finite, missing=n - finite.size, not_null=not_null)


def _count_categorical(
    summary: Summary, cells: ColumnCells, column: pd.Series | None, n: int
) -> None:
    end = cells.start + cells.n_cells
    if column is None:
        summary.fixed[end] = n
        return
    if isinstance(column.dtype, pd.CategoricalDtype):
        values: Any = column.array
    elif pd.api.types.infer_dtype(column, skipna=True) in _STABLE_OBJECTS:
        values = categorical_values(column)
    else:  # numbers as categories: their text depends on the window's other rows
        summary.unstable = True
        return
    counted = count_categories(values)
    assert cells.index is not None
    extras: dict[str, int] = {}
    for label, count in zip(counted.labels, counted.counts, strict=True):
        i = cells.index.get(label)
        if i is not None:
            summary.fixed[cells.start + i] += count
        elif cells.truncated:
            summary.fixed[end - 1] += count
        elif isinstance(label, str):
            extras[label] = extras.get(label, 0) + count
        else:
            summary.unstable = True
    if extras:
        summary.extras[cells.name] = extras
    summary.fixed[end] = counted.missing
    summary.fixed[end + 1] = n - counted.missing


def label_counts(
    task: str | None, stored: dict[str, Any], actual_code: np.ndarray, actual_value: np.ndarray
) -> tuple[ColumnCells, Summary] | None:
    """The label column's counts from the window's labeled rows (``actual_code`` without the
    thumbs-down -1, ``actual_value`` for regression), on the reference's label profile."""
    if LABEL not in stored:
        return None
    if task == "regression":
        cells = _column(LABEL, stored[LABEL], 0)
        if cells.kind != NUMERIC:
            return None
        summary = Summary(actual_value.size, np.zeros(cells.width, dtype=np.int64))
        finite = actual_value[np.isfinite(actual_value)]
        _put_numeric(
            summary, cells, finite, missing=actual_value.size - finite.size, not_null=finite.size
        )
        summary.fixed[cells.start + cells.n_cells + 1] = actual_value.size
        return cells, summary
    cells = ColumnCells(LABEL, CODES, 0)
    codes, tally = np.unique(np.asarray(actual_code, dtype=np.int64), return_counts=True)
    summary = Summary(actual_code.size, np.zeros(cells.width, dtype=np.int64))
    summary.extras[LABEL] = {str(c): int(t) for c, t in zip(codes, tally, strict=True)}
    summary.fixed[1] = actual_code.size
    return cells, summary


def note_summaries(
    conn: Connection, model_id: int, batch: PredictionBatch, new: np.ndarray
) -> None:
    """In a prediction write's transaction: the hours its new rows (positions ``new`` of
    ``batch``) fall in need counting again, for every reference.

    Marking costs one indexed ``UPDATE`` that touches nothing while an hour is still being
    written (its summaries do not exist until a check counts the whole hour), so single-row
    ingest stays as fast; counting happens once per hour, in the reader.
    """
    versions = [batch.version[i] or "" for i in new.tolist()]
    mark_dirty(conn, model_id, zip(period_of(batch.ts[new]).tolist(), versions, strict=True))
