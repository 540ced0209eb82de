"""Writing predictions and outcomes: validated batches in, one transaction each.

This is the service behind ``log_prediction(s)`` and ``log_outcome(s)``: it resolves the model's
task, turns labels into codes, and calls the store; the caller gets a result only once the
transaction has committed.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence, Sized
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar, cast

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine

from feedback_loop.collect.batches import (
    OutcomeBatch,
    PredictionBatch,
    concat_batches,
    scalar_json,
)
from feedback_loop.collect.drift_counts import IngestRows, count_at_ingest
from feedback_loop.core.limits import MAX_CLASSES, first_bad_label
from feedback_loop.core.tasks import TaskSpec, label_key
from feedback_loop.errors import ValidationError
from feedback_loop.store import models as model_store
from feedback_loop.store.blocks import add_predictions, block_groups, lock_shared
from feedback_loop.store.engine import write_transaction
from feedback_loop.store.features import batch_frame
from feedback_loop.store.outcomes import (
    OutcomeResult,
    OutcomeRows,
    insert_outcome_rows,
    join_pending,
)
from feedback_loop.store.predictions import PredictionRows, insert_predictions, pack_proba

_B = TypeVar("_B")
_R = TypeVar("_R")


@dataclass(frozen=True)
class LogResult:
    """What a logging call stored (returned only after the commit)."""

    inserted: int
    retried: int
    outcomes: int
    joined: int  # earlier outcomes joined onto these predictions
    prediction_ids: list[str] = field(repr=False)


@dataclass
class ModelState:
    """What a writer knows of a model: its id, task and label codes (append-only, so cacheable).

    A ``pending`` state is a model not stored yet, or whose task is not saved yet: ``spec`` holds
    what was declared and inferred, and the transaction that stores its first rows creates the
    model and saves the task (see :func:`settle`), so a refused first request leaves nothing.
    """

    id: int
    name: str
    spec: TaskSpec
    codes: dict[str, int]
    feature_codes: dict[str, dict[str, int]] = field(default_factory=dict)
    pending: bool = False


def settle(conn: Connection, state: ModelState, now_us: int) -> None:
    """Create a pending model and save its task, inside the caller's write transaction."""
    if not state.pending:
        return
    record = model_store.ensure_model(conn, state.name, now_us)
    spec = merge_spec(record.spec, state.spec, state.name)
    model_store.save_spec(conn, record.id, spec)
    state.id, state.spec, state.pending = record.id, spec, False
    state.codes = model_store.label_codes(conn, record.id)


def merge_spec(stored: TaskSpec, declared: TaskSpec, model: str) -> TaskSpec:
    """Stored facts win; a declaration may fill gaps but not contradict them."""
    for name in ("task", "label_key", "score_key", "positive_label"):
        mine, theirs = getattr(declared, name), getattr(stored, name)
        if mine is not None and theirs is not None and mine != theirs:
            raise ValidationError(
                f"model {model!r} is stored with {name}={theirs!r}, declared {mine!r}", field=name
            )
    return TaskSpec(
        task=stored.task or declared.task,
        label_key=stored.label_key or declared.label_key,
        score_key=stored.score_key or declared.score_key,
        positive_label=(
            stored.positive_label if stored.positive_label is not None else declared.positive_label
        ),
        primary_metric=stored.primary_metric or declared.primary_metric,
        extra=dict(declared.extra),
    )


def _codes_for(
    conn: Connection,
    state: ModelState,
    labels: list[Any],
    field_name: str,
    row_of: Callable[[int], int] | None = None,
) -> list[int | None]:
    """Integer codes for labels; the JSON key is computed once per distinct label. An error
    names the row ``row_of(position in labels)`` (the position itself by default)."""
    where = row_of or (lambda i: i)
    if len(labels) <= 64:  # one call's worth: plain dict lookups beat pandas' set-up cost
        keys = [None if v is None else label_key(v) for v in labels]
        _ensure_codes(
            conn,
            state,
            {k for k in keys if k is not None},
            field_name,
            lambda k: where(keys.index(k)),
        )
        return [None if k is None else state.codes[k] for k in keys]
    factor, uniques = pd.factorize(pd.Series(labels, dtype=object), use_na_sentinel=True)
    unique_keys = [label_key(v) for v in uniques.tolist()]
    _ensure_codes(
        conn,
        state,
        set(unique_keys),
        field_name,
        lambda k: where(int(np.argmax(factor == unique_keys.index(k)))),
    )
    lookup = np.array([state.codes[k] for k in unique_keys] + [-1], dtype=np.int64)
    codes: list[int | None] = lookup[factor].tolist()
    if (factor < 0).any():
        for i in np.flatnonzero(factor < 0).tolist():
            codes[i] = None
    return codes


def _ensure_codes(
    conn: Connection,
    state: ModelState,
    keys: set[str],
    field_name: str,
    row_of: Callable[[str], int],
) -> None:
    """Codes for new labels, once they pass the label limits (each new label is checked once,
    when it gets its code; a model has at most ``MAX_CLASSES`` labels)."""
    if keys <= state.codes.keys():
        return
    new = sorted(keys - state.codes.keys())
    bad = first_bad_label(new)
    if bad is not None:
        raise ValidationError(bad[1], field=field_name, row=row_of(bad[0]))
    if len(state.codes) + len(new) > MAX_CLASSES:  # refused before the labels are written
        _too_many_classes(len(state.codes) + len(new), field_name)
    state.codes = model_store.ensure_labels(conn, state.id, keys)
    if len(state.codes) > MAX_CLASSES:  # labels another writer added meanwhile
        _too_many_classes(len(state.codes), field_name)
    if state.spec.task == "binary" and len(state.codes) > 2:
        raise ValidationError(
            f"a binary model has two labels; now seen {sorted(state.codes)}", field=field_name
        )


def _too_many_classes(count: int, field_name: str) -> NoReturn:
    raise ValidationError(
        f"a model has at most {MAX_CLASSES} distinct class labels; these rows would make it "
        f"{count}",
        field=field_name,
    )


def _proba_blobs(
    conn: Connection, state: ModelState, proba: list[dict[Any, float] | None]
) -> list[bytes | None]:
    """Each row's class probabilities as its own (codes, probabilities): the stored size follows
    what the row gave, not the model's whole label vocabulary."""
    if proba.count(None) == len(proba):
        return [None] * len(proba)
    sizes = np.array([len(p) if p else 0 for p in proba], dtype=np.int64)
    ends = np.cumsum(sizes)
    every = [label for p in proba if p for label in p]
    codes = _codes_for(
        conn, state, every, "prediction", lambda i: int(np.searchsorted(ends, i, side="right"))
    )
    values = [value for p in proba if p for value in p.values()]
    return pack_proba(
        np.array(codes, dtype=np.int32), np.array(values), sizes, [p is None for p in proba]
    )


def _pack(conn: Connection, state: ModelState, batch: PredictionBatch) -> list[bytes | None]:
    """The feature matrix as one packed float64 row per prediction, string columns holding the
    model's stable codes for their values."""
    if batch.matrix is None:
        return [None] * len(batch)
    matrix = batch.matrix
    for j, (name, kind) in enumerate(batch.matrix_columns):
        if kind != "categorical":
            continue
        values = batch.categories[name]
        known = state.feature_codes.get(name, {})
        if not set(values) <= known.keys():
            known = model_store.ensure_feature_codes(conn, state.id, name, values)
            state.feature_codes[name] = known
        if matrix is batch.matrix:
            matrix = matrix.copy()
        lookup = np.array([known[v] for v in values] + [np.nan])
        local = matrix[:, j]
        matrix[:, j] = lookup[np.where(np.isnan(local), len(values), local).astype(np.int64)]
    # each row's bytes as one fixed-width void item: ``tolist`` makes the bytes objects in C
    row_bytes = np.dtype((np.void, matrix.shape[1] * 8))
    rows: list[Any] = np.ascontiguousarray(matrix).view(row_bytes).ravel().tolist()
    return rows


@contextmanager
def _restoring_codes(state: ModelState) -> Iterator[None]:
    """Codes added in a transaction that rolls back never existed: forget them too (and a model
    settled in it stays pending)."""
    labels, features = dict(state.codes), {k: dict(v) for k, v in state.feature_codes.items()}
    settled = (state.id, state.spec, state.pending)
    try:
        yield
    except BaseException:
        state.codes, state.feature_codes = labels, features
        state.id, state.spec, state.pending = settled
        raise


def store_predictions(
    engine: Engine, state: ModelState, batch: PredictionBatch, now_us: int
) -> LogResult:
    with _restoring_codes(state):
        return _store_predictions(engine, state, batch, now_us).result()


def store_prediction_groups(
    engine: Engine, state: ModelState, batches: Sequence[PredictionBatch], now_us: int
) -> list[LogResult | BaseException]:
    """Store several callers' batches in one transaction, one result each.

    Should the transaction fail, each batch is stored again on its own, so a bad row fails only
    the batch it came in and the others are stored as if sent alone.
    """
    ids = [pid for batch in batches for pid in batch.prediction_id]
    if len(batches) > 1 and len(set(ids)) == len(ids):  # a repeated id: one batch at a time
        try:
            with _restoring_codes(state):
                stored = _store_predictions(engine, state, concat_batches(batches), now_us)
            return [stored.result(a, b) for a, b in _bounds(batches)]
        except Exception:
            pass
    return _each_alone(lambda batch: store_predictions(engine, state, batch, now_us), batches)


def _bounds(batches: Sequence[Sized]) -> list[tuple[int, int]]:
    """Where each batch's rows are in the batches joined."""
    ends = np.cumsum([0, *(len(b) for b in batches)]).tolist()
    return list(itertools.pairwise(ends))


def _each_alone(store: Callable[[_B], _R], batches: Sequence[_B]) -> list[_R | BaseException]:
    """Each batch in a transaction of its own: its result, or the error it alone caused."""
    results: list[_R | BaseException] = []
    for batch in batches:
        try:
            results.append(store(batch))
        except Exception as exc:
            results.append(exc)
    return results


@dataclass(frozen=True)
class _Stored:
    """Row by row, what one transaction stored."""

    prediction_ids: list[str]
    inserted: np.ndarray  # bool: stored now (else an identical retry)
    outcomes: np.ndarray  # int: outcomes logged with the prediction and stored now
    joined: np.ndarray  # int: earlier outcomes joined onto the prediction

    def result(self, start: int = 0, stop: int | None = None) -> LogResult:
        part = slice(start, len(self.prediction_ids) if stop is None else stop)
        inserted = int(self.inserted[part].sum())
        return LogResult(
            inserted=inserted,
            retried=len(self.inserted[part]) - inserted,
            outcomes=int(self.outcomes[part].sum()),
            joined=int(self.joined[part].sum()),
            prediction_ids=self.prediction_ids[part],
        )


def _store_predictions(
    engine: Engine, state: ModelState, batch: PredictionBatch, now_us: int
) -> _Stored:
    bad_version = [v for v in set(batch.version) if v is not None and not v.isprintable()]
    if bad_version:  # checked once per distinct version; the error names the first row
        row = min(batch.version.index(v) for v in bad_version)
        raise ValidationError("must be printable text", field="version", row=row)
    n = len(batch)
    inserted = np.zeros(n, dtype=bool)
    outcomes = np.zeros(n, dtype=np.int64)
    joined = np.zeros(n, dtype=np.int64)
    with write_transaction(engine) as conn:
        settle(conn, state, now_us)
        lock_shared(conn, state.id)
        rows = PredictionRows(
            prediction_id=batch.prediction_id,
            ts=batch.ts,
            version=batch.version,
            tags=batch.tags,
            pred_code=_codes_for(conn, state, batch.label, "prediction"),
            score=batch.score,
            pred_value=batch.value,
            latency_ms=batch.latency_ms,
            features=batch.features,
            prediction=batch.prediction,
            proba=_proba_blobs(conn, state, batch.proba),
            ts_given=batch.ts_given,
            numeric=_pack(conn, state, batch),
            schema_id=(
                model_store.feature_schema_id(conn, state.id, batch.matrix_columns)
                if batch.matrix_columns
                else None
            ),
        )
        result = insert_predictions(conn, state.name, state.id, rows, now_us)
        new = result.new_index
        inserted[new] = True
        _count_new(conn, state, batch, rows, new)
        if result.inserted:
            matched = join_pending(conn, state.id, result.new_ids_query, **result.new_ids_params)
            if matched:
                position = {pid: i for i, pid in enumerate(batch.prediction_id)}
                np.add.at(joined, [position[pid] for pid in matched], 1)
        with_actual = _with_actual(batch, new)
        if with_actual:
            pick = np.array(with_actual, dtype=np.int64)
            inline = OutcomeBatch(
                prediction_id=[batch.prediction_id[i] for i in with_actual],
                ts=batch.ts[pick],
                source=["natural"] * len(with_actual),
                actual=[batch.actual[i] for i in with_actual],
                actual_json=cast(
                    "list[str | None]", scalar_json([batch.actual[i] for i in with_actual])
                ),
                correct=[None] * len(with_actual),
            )
            _insert_outcome_batch(conn, state, inline, now_us, lambda i: with_actual[i])
            outcomes[pick] = 1  # a new prediction has no outcome yet: its own is always stored
    return _Stored(batch.prediction_id, inserted, outcomes, joined)


def _count_new(
    conn: Connection, state: ModelState, batch: PredictionBatch, rows: PredictionRows, new: Any
) -> None:
    """Count the rows stored now into their hours' metric blocks and drift summaries, from the
    batch's own arrays (never read back), so the first check after a bulk load counts nothing."""
    index = np.asarray(new, dtype=np.int64)
    if index.size == 0:
        return
    whole = index.size == len(batch)
    versions = pd.Series(batch.version, dtype=object).fillna("").to_numpy(dtype=object)
    keys, groups = block_groups(batch.ts[index], versions if whole else versions[index])
    sizes = np.bincount(groups, minlength=len(keys))
    created = add_predictions(conn, state.id, dict(zip(keys, sizes.tolist(), strict=True)))
    regression = state.spec.task == "regression"

    def pick(values: np.ndarray) -> np.ndarray:
        return values if whole else values[index]

    def features() -> pd.DataFrame:
        texts = np.asarray(batch.features, dtype=object)
        matrix = batch.matrix
        return batch_frame(
            None if matrix is None else pick(matrix),
            batch.matrix_columns,
            batch.categories,
            pick(texts),
        )

    if regression:
        pred_code = np.full(index.size, -2, dtype=np.int64)
        pred_value = np.nan_to_num(pick(batch.value), nan=0.0)
    else:
        codes = pd.Series(rows.pred_code, dtype="Int64").fillna(-2)
        pred_code = pick(codes.to_numpy(dtype=np.int64))
        pred_value = np.full(index.size, np.nan)
    count_at_ingest(
        conn,
        state.id,
        state.spec.task,
        IngestRows(keys, groups, pick(batch.score), pred_code, pred_value, features),
        created,
    )


def _with_actual(batch: PredictionBatch, index: np.ndarray) -> list[int]:
    """Positions (among ``index``) of the rows that came with an actual."""
    if batch.actual.count(None) == len(batch.actual):
        return []
    if len(batch) <= 64:
        return [i for i in index.tolist() if batch.actual[i] is not None]
    given = pd.Series(batch.actual, dtype=object).notna().to_numpy()
    picked: list[int] = index[given[index]].tolist()
    return picked


def _insert_outcome_batch(
    conn: Connection,
    state: ModelState,
    batch: OutcomeBatch,
    now_us: int,
    row_of: Callable[[int], int] | None = None,
) -> np.ndarray:
    """Store the outcomes; whether each found its prediction (``row_of`` numbers the rows of an
    error as the caller's batch does)."""
    regression = state.spec.task == "regression"
    n = len(batch)
    rows = OutcomeRows(
        prediction_id=batch.prediction_id,
        ts=batch.ts,
        source=batch.source,
        actual_json=batch.actual_json,
        actual_code=(
            [None] * n if regression else _codes_for(conn, state, batch.actual, "actual", row_of)
        ),
        actual_value=list(batch.actual) if regression else [None] * n,
        correct=batch.correct,
    )
    return insert_outcome_rows(conn, state.id, rows, now_us)


def _outcome_result(matched: np.ndarray) -> OutcomeResult:
    found = int(matched.sum())
    return OutcomeResult(stored=len(matched), matched=found, unmatched=len(matched) - found)


def store_outcomes(
    engine: Engine, state: ModelState, batch: OutcomeBatch, now_us: int
) -> OutcomeResult:
    with _restoring_codes(state), write_transaction(engine) as conn:
        settle(conn, state, now_us)
        lock_shared(conn, state.id)
        return _outcome_result(_insert_outcome_batch(conn, state, batch, now_us))


def store_outcome_groups(
    engine: Engine, state: ModelState, batches: Sequence[OutcomeBatch], now_us: int
) -> list[OutcomeResult | BaseException]:
    """Several callers' outcomes in one transaction, one result each (on failure each batch
    is stored again on its own, as in ``store_prediction_groups``)."""
    if len(batches) > 1:
        try:
            with _restoring_codes(state), write_transaction(engine) as conn:
                settle(conn, state, now_us)
                lock_shared(conn, state.id)
                matched = _insert_outcome_batch(conn, state, concat_batches(batches), now_us)
            return [_outcome_result(matched[a:b]) for a, b in _bounds(batches)]
        except Exception:
            pass
    return _each_alone(lambda batch: store_outcomes(engine, state, batch, now_us), batches)
