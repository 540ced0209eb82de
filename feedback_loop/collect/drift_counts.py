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
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from feedback_loop.stats.reference import LABEL, PREDICTION, categorical_values
from feedback_loop.store.summaries import (
    Summary,
    mark_dirty,
    merge_summaries,
    reference_texts,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection


NUMERIC = "numeric"
CATEGORICAL = "categorical"
CODES = "codes"  # class codes of a classifier's predictions, mapped to labels when checked
_STABLE_OBJECTS = ("string", "boolean", "empty")
_DENSE_CODES = 1 << 16


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
    groups = np.zeros(len(features), dtype=np.int64)
    return count_groups(
        layout, features, groups, 1, score=score, pred_code=pred_code, pred_value=pred_value
    )[0]


def count_groups(
    layout: Layout,
    features: pd.DataFrame,
    groups: np.ndarray,
    n_groups: int,
    *,
    score: np.ndarray,
    pred_code: np.ndarray,
    pred_value: np.ndarray,
) -> list[Summary]:
    """Counts of each group of rows (``groups[i]`` in ``range(n_groups)``: row ``i``'s hour and
    version) in one pass per column: a cell per row by ``searchsorted`` or a category lookup,
    then one ``bincount`` over ``group * cells + cell``."""
    counter = _Counter(layout, groups, n_groups)
    for cells in layout.features:
        column = features[cells.name] if cells.name in features.columns else None
        if cells.kind == NUMERIC:
            counter.numeric(cells, column)
        else:
            counter.categorical(cells, column)
    prediction = layout.prediction
    if prediction is not None:
        if prediction.kind == CODES:
            counter.codes(prediction, np.asarray(pred_code, dtype=np.int64))
        elif layout.task == "binary":  # the logged scores, where there is one
            finite = np.isfinite(score)
            counter.put_numeric(prediction, score, finite, missing_is_zero=True)
        else:  # regression: every row's value
            counter.put_numeric(prediction, pred_value, np.isfinite(pred_value))
    return counter.summaries()


class _Counter:
    """Counts of ``n_groups`` groups of rows on one layout, filled column by column."""

    def __init__(self, layout: Layout, groups: np.ndarray, n_groups: int) -> None:
        self.groups = np.asarray(groups, dtype=np.int64)
        self.k = n_groups
        self.sizes = np.bincount(self.groups, minlength=n_groups)
        self.fixed = np.zeros((n_groups, layout.width), dtype=np.int64)
        self.extras: list[dict[str, dict[str, int]]] = [{} for _ in range(n_groups)]
        self.unstable = False

    def summaries(self) -> list[Summary]:
        return [
            Summary(int(self.sizes[g]), self.fixed[g], self.extras[g], self.unstable)
            for g in range(self.k)
        ]

    def _tally(self, rows: np.ndarray, slots: np.ndarray, n_slots: int) -> np.ndarray:
        """``(n_groups, n_slots)`` counts of the rows ``rows`` (a mask) in their ``slots``."""
        flat = self.groups[rows] * n_slots + slots
        return np.bincount(flat, minlength=self.k * n_slots).reshape(self.k, n_slots)

    def _per_group(self, rows: np.ndarray) -> np.ndarray:
        return np.bincount(self.groups[rows], minlength=self.k)

    def put_numeric(
        self,
        cells: ColumnCells,
        values: np.ndarray,
        finite: np.ndarray,
        *,
        not_null: np.ndarray | None = None,
        missing_is_zero: bool = False,
    ) -> None:
        """Numbers on the cells (bin ``i`` holds ``edges[i-1] <= x < edges[i]``, as
        ``bin_counts``); what is not finite is missing, or not counted at all (scores)."""
        assert cells.edges is not None
        end = cells.start + cells.n_cells
        slots = np.searchsorted(cells.edges, values[finite], side="right")
        self.fixed[:, cells.start : end] = self._tally(finite, slots, cells.n_cells)
        counted = self._per_group(finite)
        self.fixed[:, end] = 0 if missing_is_zero else self.sizes - counted
        if not_null is None:
            not_null = counted if missing_is_zero else self.sizes
        self.fixed[:, end + 1] = not_null

    def numeric(self, cells: ColumnCells, column: pd.Series | None) -> None:
        if column is None:  # no row has it: all missing
            self.fixed[:, cells.start + cells.n_cells] = self.sizes
            return
        try:
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):  # text in a numeric column: the check reads the rows
            self.unstable = True
            return
        not_null = self.sizes - self._per_group(column.isna().to_numpy())
        self.put_numeric(cells, values, np.isfinite(values), not_null=not_null)

    def categorical(self, cells: ColumnCells, column: pd.Series | None) -> None:
        end = cells.start + cells.n_cells
        if column is None:
            self.fixed[:, end] = self.sizes
            return
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes = np.asarray(column.array.codes, dtype=np.int64)
            uniques: list[Any] = column.cat.categories.tolist()
        elif pd.api.types.infer_dtype(column, skipna=True) in _STABLE_OBJECTS:
            factor, found = pd.factorize(categorical_values(column), use_na_sentinel=True)
            codes = np.asarray(factor, dtype=np.int64)
            uniques = list(found)
        else:  # numbers as categories: their text depends on the window's other rows
            self.unstable = True
            return
        assert cells.index is not None
        other = cells.n_cells - 1
        extra: list[str] = []
        lookup = np.empty(len(uniques), dtype=np.int64)
        for j, label in enumerate(uniques):  # per distinct value, never per row
            i = cells.index.get(label)
            if i is None and cells.truncated:
                i = other
            elif i is None:
                if not isinstance(label, str):
                    self.unstable = True
                i = cells.n_cells + len(extra)
                extra.append(str(label))
            lookup[j] = i
        present = codes >= 0
        tally = self._tally(present, lookup[codes[present]], cells.n_cells + len(extra))
        self.fixed[:, cells.start : end] = tally[:, : cells.n_cells]
        missing = self.sizes - self._per_group(present)
        self.fixed[:, end] = missing
        self.fixed[:, end + 1] = self.sizes - missing
        for g, e in zip(*np.nonzero(tally[:, cells.n_cells :]), strict=True):
            self.extras[g].setdefault(cells.name, {})[extra[e]] = int(tally[g, cells.n_cells + e])

    def codes(self, cells: ColumnCells, codes: np.ndarray) -> None:
        """Class codes, counted per code (mapped to labels when checked)."""
        if codes.size and codes.min() >= 0 and codes.max() < _DENSE_CODES:
            # class codes are small: a bincount finds them without sorting a window's rows
            present = np.bincount(codes)
            found = np.flatnonzero(present)
            if self.k == 1:  # one group (a whole window): the bincount is the tally
                tally = present[found].reshape(1, -1)
            else:
                lookup = np.zeros(present.size, dtype=np.int64)
                lookup[found] = np.arange(found.size)
                tally = self._tally(np.ones(codes.size, dtype=bool), lookup[codes], found.size)
        else:
            found, slots = np.unique(codes, return_inverse=True)
            every = np.ones(codes.size, dtype=bool)
            tally = self._tally(every, slots.reshape(-1), found.size)
        for g, j in zip(*np.nonzero(tally), strict=True):
            self.extras[g].setdefault(cells.name, {})[str(found[j])] = int(tally[g, j])
        self.fixed[:, cells.start + 1] = self.sizes


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
        layout = Layout(task, (), cells, cells.width, "")
        counter = _Counter(layout, np.zeros(actual_value.size, np.int64), 1)
        finite = np.isfinite(actual_value)
        counter.put_numeric(cells, actual_value, finite, not_null=counter.sizes)
        return cells, counter.summaries()[0]
    cells = ColumnCells(LABEL, CODES, 0)
    layout = Layout(task, (), cells, cells.width, "")
    counter = _Counter(layout, np.zeros(actual_code.size, np.int64), 1)
    counter.codes(cells, np.asarray(actual_code, dtype=np.int64))
    return cells, counter.summaries()[0]


def count_at_ingest(
    conn: Connection,
    model_id: int,
    task: str | None,
    rows: IngestRows,
    created: set[tuple[int, str]],
) -> None:
    """In a prediction write's transaction: add the new rows' counts to the drift summaries of
    the hours ``(hour, version)`` they fall in, on the cells of every reference the model has,
    so a check reads the hours as they are, without counting the log again.

    Summaries on other cells (none stored now, or dirty) are marked dirty as before; the reader
    counts those hours from the log (see ``monitor.window.summarised_window``).
    """
    layouts = {layout.digest: layout for layout in reference_layouts(conn, model_id, task)}
    mark_dirty(conn, model_id, rows.keys, counted=layouts)
    if not layouts or not rows.keys:
        return
    frame = rows.features()
    for layout in layouts.values():
        counted = count_groups(
            layout,
            frame,
            rows.groups,
            len(rows.keys),
            score=rows.score,
            pred_code=rows.pred_code,
            pred_value=rows.pred_value,
        )
        merge_summaries(
            conn, model_id, layout.digest, dict(zip(rows.keys, counted, strict=True)), created
        )


_LAYOUTS: dict[tuple[str | None, str], Layout] = {}  # (task, digest of the JSON) -> layout
_LAYOUTS_KEPT = 64
_layouts_lock = threading.Lock()


def reference_layouts(conn: Connection, model_id: int, task: str | None) -> list[Layout]:
    """The layouts of the model's references. A reference's JSON holds samples and runs to
    megabytes: each distinct text is parsed once per process, not once per write."""
    layouts = []
    for data in reference_texts(conn, model_id):
        key = (task, hashlib.sha256(data.encode()).hexdigest())
        with _layouts_lock:
            layout = _LAYOUTS.get(key)
        if layout is None:
            layout = layout_of(json.loads(data), task)
            with _layouts_lock:
                if len(_LAYOUTS) >= _LAYOUTS_KEPT:
                    _LAYOUTS.pop(next(iter(_LAYOUTS)))
                _LAYOUTS[key] = layout
        layouts.append(layout)
    return layouts


@dataclass(frozen=True)
class IngestRows:
    """The new rows of a write as a check reads them back: their block ``keys[groups[i]]``
    (hour, version), the model's outputs (``pred_code`` -2 and ``pred_value`` 0.0 where none,
    as stored) and a way to build their feature frame (built only when a reference needs it)."""

    keys: list[tuple[int, str]]
    groups: np.ndarray
    score: np.ndarray
    pred_code: np.ndarray
    pred_value: np.ndarray
    features: Callable[[], pd.DataFrame]
