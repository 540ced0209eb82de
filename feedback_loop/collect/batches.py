"""Turning what users log into validated, columnar batches.

Rows arrive one at a time (keyword arguments), as a list of dicts, a pandas DataFrame or an Arrow
table. They all become one :class:`PredictionBatch` (or :class:`OutcomeBatch`), validated as a
whole before anything is written, so a bad row fails the batch with its row number and field.

Columns of a prediction batch: ``prediction_id`` (or any single ``*_id`` column), ``timestamp``,
``prediction``, ``actual``, ``version``, ``tags`` (a dict of segment tags), ``latency_ms`` and
``features`` (a dict). Without a ``features`` column every other column is a feature.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from feedback_loop.core.limits import (
    MAX_ID_LENGTH,
    MAX_TAG_KEY_LENGTH,
    MAX_VERSION_LENGTH,
    check_feature_json,
    check_feature_names,
    check_json_text,
    check_json_texts,
    check_prediction_id,
    check_tags,
    check_text,
    check_texts,
    check_time,
    check_time_range,
    label_problem,
    tag_problem,
)
from feedback_loop.core.tasks import (
    ParsedPrediction,
    TaskSpec,
    infer_task,
    parse_actual,
    parse_prediction,
)
from feedback_loop.core.timeutil import to_us, to_us_array
from feedback_loop.errors import ValidationError

RESERVED = ("prediction_id", "timestamp", "prediction", "actual", "version", "tags", "latency_ms")
OUTCOME_SOURCES = ("natural", "feedback", "review", "business")


@dataclass
class PredictionBatch:
    """Validated predictions, column by column (row ``i`` of every list belongs together)."""

    prediction_id: list[str]
    ts: np.ndarray  # int64 epoch microseconds
    version: list[str | None]
    tags: list[str | None]  # canonical JSON
    features: list[str | None]  # canonical JSON of the features not in ``numeric``
    prediction: list[str]  # canonical JSON of the prediction as logged
    label: list[Any]  # classification: normalised label (None for regression)
    score: np.ndarray  # float64, NaN when absent
    proba: list[dict[Any, float] | None]
    value: np.ndarray  # float64 regression value, NaN for classification
    latency_ms: np.ndarray  # float64, NaN when absent
    actual: list[Any]  # parsed actual or None
    ts_given: np.ndarray  # bool: False where the time was filled in with "now"
    # Feature columns given as DataFrame columns of numbers or strings, as a float64 matrix:
    # numbers as they are, strings as codes into ``categories`` (NaN where missing).
    matrix: np.ndarray | None = None
    matrix_columns: tuple[tuple[str, str], ...] = ()  # (name, 'numeric' | 'categorical')
    categories: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prediction_id)


def single_prediction(
    spec: TaskSpec,
    now_us: int,
    *,
    prediction_id: str,
    prediction: Any,
    features: Any,
    actual: Any,
    timestamp: Any,
    version: Any,
    tags: Any,
    latency_ms: Any,
) -> PredictionBatch:
    """One prediction given as keyword arguments, validated, as a batch of one row."""
    ts = now_us if timestamp is None else to_us(timestamp)
    check_time(ts)
    parsed = parse_prediction(prediction, spec)
    if features is not None and not isinstance(features, dict):
        raise ValidationError("must be a dict", field="features")
    if tags is not None and not isinstance(tags, dict):
        raise ValidationError("must be a dict", field="tags")
    if latency_ms is not None and (
        isinstance(latency_ms, bool)
        or not isinstance(latency_ms, int | float)
        or not np.isfinite(latency_ms)
        or latency_ms < 0
    ):
        raise ValidationError("must be a non-negative number", field="latency_ms")
    if version is not None and (isinstance(version, bool) or not isinstance(version, str | int)):
        raise ValidationError("must be a string", field="version")
    if features is not None:
        check_feature_names(map(str, features))
    parsed_actual = None if actual is None else parse_actual(actual, spec)
    _check_single_labels(parsed, parsed_actual)
    version_text = None if version is None else str(version)
    texts: dict[str, str | None] = {
        "tags": None if tags is None else canonical_json(tags, field="tags", row=None),
        "features": (
            None if features is None else canonical_json(features, field="features", row=None)
        ),
        "prediction": canonical_json(prediction, field="prediction", row=None),
    }
    _check_single_texts(prediction_id, version_text, tags, texts)
    return PredictionBatch(
        prediction_id=[prediction_id],
        ts=np.array([ts], dtype=np.int64),
        version=[version_text],
        tags=[texts["tags"]],
        features=[texts["features"]],
        prediction=[texts["prediction"] or "null"],
        label=[parsed.label],
        score=np.array([np.nan if parsed.score is None else parsed.score]),
        proba=[parsed.proba],
        value=np.array([np.nan if parsed.value is None else parsed.value]),
        latency_ms=np.array([np.nan if latency_ms is None else float(latency_ms)]),
        actual=[parsed_actual],
        ts_given=np.array([timestamp is not None]),
    )


def _check_single_labels(parsed: ParsedPrediction, actual: Any) -> None:
    """One row's class labels, as the store checks a batch's new labels."""
    for name, labels in (
        ("prediction", [parsed.label, *(parsed.proba or ())]),
        ("actual", [actual]),
    ):
        for label in labels:
            problem = label_problem(label)
            if problem is not None:
                raise ValidationError(problem, field=name)


def _check_single_texts(
    prediction_id: str,
    version: str | None,
    tags: dict[str, Any] | None,
    texts: dict[str, str | None],
) -> None:
    """``check_prediction_batch`` for one row, value by value (the single-call fast path)."""
    check_prediction_id(prediction_id)
    if version is not None:
        if len(version) > MAX_VERSION_LENGTH:
            raise ValidationError(
                f"must be at most {MAX_VERSION_LENGTH} characters", field="version"
            )
        check_text(version, field="version")
    for name, text in texts.items():
        if text is not None:
            check_json_text(text, field=name)
    if tags is not None and len(texts["tags"] or "") > MAX_TAG_KEY_LENGTH:
        problem = tag_problem(tags)
        if problem is not None:
            raise ValidationError(problem, field="tags")


def check_prediction_batch(batch: PredictionBatch, *, single: bool = False) -> None:
    """The limits of ``feedback_loop.core.limits`` on every stored column, one column at a time
    (class labels are checked as they get their codes, once per new label)."""
    check_time_range(batch.ts, single=single)
    check_texts(batch.prediction_id, field="prediction_id", max_length=MAX_ID_LENGTH, single=single)
    check_texts(batch.version, field="version", max_length=MAX_VERSION_LENGTH, single=single)
    check_tags(batch.tags, single=single)
    check_json_texts(batch.features, field="features", single=single)
    check_json_texts(batch.prediction, field="prediction", single=single)
    check_feature_names(name for name, _ in batch.matrix_columns)
    for name, values in batch.categories.items():
        check_texts(values, field=name)


B = TypeVar("B", "PredictionBatch", "OutcomeBatch")


def concat_batches(batches: Sequence[B]) -> B:
    """One batch holding the rows of ``batches`` in order: lists joined, arrays concatenated
    (for batches without a feature matrix, as single calls make them)."""
    if any(getattr(batch, "matrix", None) is not None for batch in batches):
        raise ValueError("batches with feature matrices are stored one by one")
    first = batches[0]
    columns: dict[str, Any] = {}
    for spec in fields(first):
        values = [getattr(batch, spec.name) for batch in batches]
        if isinstance(values[0], np.ndarray):
            columns[spec.name] = np.concatenate(values)
        elif isinstance(values[0], list):
            columns[spec.name] = [value for column in values for value in column]
        # else: the matrix's (empty) companions keep their defaults
    return type(first)(**columns)


@dataclass
class OutcomeBatch:
    prediction_id: list[str]
    ts: np.ndarray
    source: list[str]
    actual: list[Any]  # parsed label / number, or None when only ``correct`` is known
    actual_json: list[str | None]
    correct: list[bool | None]

    def __len__(self) -> int:
        return len(self.prediction_id)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def canonical_json(value: Any, *, field: str, row: int | None) -> str:
    """Deterministic JSON (sorted keys, no NaN) so an identical retry compares equal."""
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False, default=_json_default)
    except ValueError:
        return canonical_json(_clean_nan(value), field=field, row=row)
    except TypeError as exc:
        raise ValidationError(str(exc), field=field, row=row) from exc


def _clean_nan(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        if np.isnan(value):
            return None
        raise ValidationError("infinite values cannot be stored", field="features")
    if isinstance(value, dict):
        return {k: _clean_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_nan(v) for v in value]
    return value


def scalar_json(values: list[Any]) -> list[str]:
    """``json.dumps`` of each parsed label or number, by type rather than row by row (the
    ``map`` calls run in C; strings are encoded once per distinct value)."""
    kinds = set(map(type, values))
    if kinds == {int}:
        return list(map(str, values))
    if kinds == {float}:
        return list(map(repr, values))  # finite numbers: JSON writes floats as repr does
    if kinds == {str}:
        text = {value: json.dumps(value) for value in set(values)}
        return list(map(text.__getitem__, values))
    return list(map(json.dumps, values))


def new_ids(n: int) -> list[str]:
    """Random 128-bit hexadecimal ids, made in one call for a whole batch."""
    blob = os.urandom(16 * n).hex()
    return [blob[i : i + 32] for i in range(0, 32 * n, 32)]


def to_frame(rows: Any) -> pd.DataFrame:
    """A list of dicts, a DataFrame or an Arrow table, as a DataFrame with a clean index."""
    if isinstance(rows, pd.DataFrame):
        return rows.reset_index(drop=True)
    if hasattr(rows, "to_pandas") and hasattr(rows, "schema"):
        return rows.to_pandas().reset_index(drop=True)
    if isinstance(rows, list | tuple):
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise ValidationError(f"must be a dict, got {type(row).__name__}", row=i)
        try:
            return pd.DataFrame.from_records(list(rows))
        except UnicodeEncodeError:  # pandas keeps strings as UTF-8 (Arrow): a lone surrogate
            _refuse_surrogate_records(rows)
            raise
    raise ValidationError(
        f"rows must be a list of dicts, a pandas DataFrame or an Arrow table, "
        f"got {type(rows).__name__}"
    )


def _refuse_surrogate_records(rows: Sequence[dict[str, Any]]) -> None:
    """Name the row and field of the first string holding a lone surrogate (an error path)."""
    for i, row in enumerate(rows):
        for name, value in row.items():
            if isinstance(value, str):
                check_text(value, field=str(name), row=i)


def id_column(columns: list[str]) -> str | None:
    """``prediction_id``, else the single column named ``*_id`` (the seed's ``game_id``)."""
    if "prediction_id" in columns:
        return "prediction_id"
    named = [c for c in columns if isinstance(c, str) and c.endswith("_id")]
    if len(named) > 1:
        raise ValidationError(
            f"several id columns {named}: name the prediction id `prediction_id`",
            field="prediction_id",
        )
    return named[0] if named else None


def _ids(frame: pd.DataFrame, column: str | None) -> list[str]:
    if column is None:
        return new_ids(len(frame))
    values = frame[column]
    missing = values.isna().to_numpy()
    if values.dtype.kind in "iu":
        as_text: list[str] = values.astype(str).tolist()
        return as_text
    if _is_string_dtype(values) and not missing.any():
        return _string_ids(values, column)
    out: list[str] = values.tolist()
    bad_type = [
        i
        for i, v in enumerate(out)
        if not isinstance(v, str)
        and (isinstance(v, bool) or not isinstance(v, int | np.integer))
        and not missing[i]
    ]
    if bad_type:
        check_prediction_id(out[bad_type[0]], field=column, row=bad_type[0])
    if missing.any():
        fill = iter(new_ids(int(missing.sum())))
        for i in np.flatnonzero(missing).tolist():
            out[i] = next(fill)
    try:
        text = pd.Series(out, dtype=object).map(str)
    except UnicodeEncodeError:  # pandas keeps strings as UTF-8 (Arrow): a lone surrogate
        check_texts([v if isinstance(v, str) else "" for v in out], field=column)
        raise
    lengths = text.str.len().to_numpy()
    bad = (lengths < 1) | (lengths > MAX_ID_LENGTH)
    if bad.any():
        row = int(np.argmax(bad))
        check_prediction_id(text.iloc[row], field=column, row=row)
    ids: list[str] = text.tolist()
    check_texts(ids, field=column)
    return ids


def _string_ids(values: pd.Series, column: str) -> list[str]:
    """Ids from a string column without a missing value: lengths counted in C, the characters
    checked on the joined text (``check_texts``)."""
    ids: list[str] = values.tolist()
    lengths = values.str.len().to_numpy()
    bad = (lengths < 1) | (lengths > MAX_ID_LENGTH)
    if bad.any():
        row = int(np.argmax(bad))
        check_prediction_id(ids[row], field=column, row=row)
    check_texts(ids, field=column)
    return ids


def _optional_text(frame: pd.DataFrame, column: str) -> list[str | None]:
    if column not in frame:
        return [None] * len(frame)
    values = frame[column]
    if _is_string_dtype(values):  # strings or missing, known from the dtype: no row to check
        boxed = values.to_numpy(dtype=object)
        boxed[values.isna().to_numpy()] = None
        out: list[str | None] = boxed.tolist()
        return out
    if values.dtype.kind in "iu":
        digits: list[Any] = values.astype(str).tolist()
        return digits
    out = []
    for i, value in enumerate(values.tolist()):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            out.append(None)
        elif isinstance(value, str | int | np.integer) and not isinstance(value, bool):
            out.append(str(value))
        else:
            raise ValidationError("must be a string", field=column, row=i)
    return out


def _is_string_dtype(values: pd.Series) -> bool:
    """A pandas string column (Arrow or Python backed): every value a string or missing."""
    return isinstance(values.dtype, pd.StringDtype)


def _dict_json(frame: pd.DataFrame, column: str) -> list[str | None]:
    if column not in frame:
        return [None] * len(frame)
    out: list[str | None] = []
    for i, value in enumerate(frame[column].tolist()):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            out.append(None)
        elif isinstance(value, dict):
            out.append(canonical_json(value, field=column, row=i))
        else:
            raise ValidationError(
                f"must be a dict, got {type(value).__name__}", field=column, row=i
            )
    return out


def _json_column(values: pd.Series, name: str) -> list[str]:
    """One feature column as JSON value strings, vectorised by dtype."""
    missing = values.isna().to_numpy()
    kind = values.dtype.kind
    if kind == "b":
        text = ["true" if v else "false" for v in values.tolist()]
    elif kind in "iu":
        text = list(map(str, values.tolist()))
    elif kind == "f":
        array = values.to_numpy(dtype=np.float64)
        if np.isinf(array).any():
            row = int(np.argmax(np.isinf(array)))
            raise ValidationError("infinite values cannot be stored", field=name, row=row)
        text = list(map(repr, array.tolist()))  # shortest exact round trip
    elif kind == "M":
        text = [f'"{v}"' for v in values.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").tolist()]
    else:
        text = [
            canonical_json(v, field=name, row=i) if not missing[i] else "null"
            for i, v in enumerate(values.tolist())
        ]
    if missing.any():
        for i in np.flatnonzero(missing).tolist():
            text[i] = "null"
    return text


def _flat_features_json(frame: pd.DataFrame, columns: list[str]) -> list[str | None]:
    """Feature columns as one canonical JSON object per row (keys sorted)."""
    if not columns:
        return [None] * len(frame)
    for name in columns:
        if not isinstance(name, str):
            raise ValidationError("feature names must be strings", field=str(name))
    names = sorted(columns)
    template = "{" + ",".join(json.dumps(name).replace("%", "%%") + ":%s" for name in names) + "}"
    texts = [_json_column(frame[name], name) for name in names]
    return [template % values for values in zip(*texts, strict=True)]


def _is_text_column(values: pd.Series) -> bool:
    if values.dtype.kind != "O" and not isinstance(values.dtype, pd.StringDtype):
        return False
    present = values.dropna()
    return len(present) > 0 and all(type(v) is str for v in present.tolist())


def _split_features(
    frame: pd.DataFrame, columns: list[str]
) -> tuple[list[str | None], np.ndarray | None, tuple[tuple[str, str], ...], dict[str, list[str]]]:
    """Number and string columns into one float64 matrix (strings as codes); the rest (booleans,
    dates, nested values) as JSON."""
    numeric = sorted(c for c in columns if isinstance(c, str) and frame[c].dtype.kind in "iuf")
    text = sorted(
        c for c in columns if isinstance(c, str) and c not in numeric and _is_text_column(frame[c])
    )
    others = [c for c in columns if c not in numeric and c not in text]
    if not numeric and not text:
        return _flat_features_json(frame, others), None, (), {}
    matrix = np.empty((len(frame), len(numeric) + len(text)))
    if numeric:
        matrix[:, : len(numeric)] = frame[numeric].to_numpy(dtype=np.float64, na_value=np.nan)
        infinite = np.isinf(matrix[:, : len(numeric)])
        if infinite.any():
            row, col = np.argwhere(infinite)[0]
            raise ValidationError(
                "infinite values cannot be stored", field=numeric[col], row=int(row)
            )
    categories: dict[str, list[str]] = {}
    for j, name in enumerate(text, start=len(numeric)):
        codes, uniques = pd.factorize(frame[name], use_na_sentinel=True)
        matrix[:, j] = np.where(codes < 0, np.nan, codes)
        categories[name] = [str(u) for u in uniques]
    kinds = tuple((c, "numeric") for c in numeric) + tuple((c, "categorical") for c in text)
    return _flat_features_json(frame, others), matrix, kinds, categories


def _numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), np.nan)
    values = frame[column]
    if values.dtype == object:
        for i, value in enumerate(values.tolist()):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float | np.number)
            ):
                raise ValidationError("must be a number", field=column, row=i)
    elif pd.api.types.is_bool_dtype(values.dtype) or not pd.api.types.is_numeric_dtype(
        values.dtype
    ):
        raise ValidationError("must be a number", field=column, row=0)
    out = values.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isinf(out)
    if bad.any():
        raise ValidationError("must be finite", field=column, row=int(np.argmax(bad)))
    if column == "latency_ms" and (out < 0).any():
        raise ValidationError("cannot be negative", field=column, row=int(np.argmax(out < 0)))
    return out


def resolve_task(spec: TaskSpec, first_prediction: Any) -> TaskSpec:
    """Fill in an undeclared task from the first prediction logged."""
    if spec.task is not None:
        return spec
    spec.task = infer_task(first_prediction)
    return spec


def prediction_batch(rows: Any, spec: TaskSpec, now_us: int) -> PredictionBatch:
    """Validate ``rows`` for a model whose task is known (see :func:`resolve_task`)."""
    frame = to_frame(rows)
    n = len(frame)
    columns = [str(c) for c in frame.columns]
    if n and "prediction" not in columns:
        raise ValidationError("is required", field="prediction", row=0)
    id_col = id_column(columns)
    ids = _ids(frame, id_col)
    ts = (
        to_us_array(frame["timestamp"], now_us)
        if "timestamp" in frame
        else np.full(n, now_us, dtype=np.int64)
    )
    matrix: np.ndarray | None = None
    matrix_columns: tuple[tuple[str, str], ...] = ()
    categories: dict[str, list[str]] = {}
    if "features" in frame:
        features = _dict_json(frame, "features")
        check_feature_json(features)
        extra = [c for c in columns if c not in RESERVED and c not in ("features", id_col)]
        if extra:
            raise ValidationError(
                f"unknown columns {extra}: put features in the `features` dict", field=extra[0]
            )
    else:
        feature_cols = [c for c in columns if c not in RESERVED and c != id_col]
        features, matrix, matrix_columns, categories = _split_features(frame, feature_cols)
    parsed = parse_prediction_column(frame["prediction"], spec) if n else _empty_parsed()
    read = _actual_column(frame, spec, n)
    actual: list[Any] = [None] * n if read is None else read[0]
    if read is None:
        for i, value in enumerate(frame["actual"].tolist()):
            if value is not None and not (isinstance(value, float) and np.isnan(value)):
                actual[i] = parse_actual(value, spec, row=i)
    ts_given = (
        frame["timestamp"].notna().to_numpy() if "timestamp" in frame else np.zeros(n, dtype=bool)
    )
    batch = PredictionBatch(
        prediction_id=ids,
        ts=ts,
        version=_optional_text(frame, "version"),
        tags=_dict_json(frame, "tags"),
        features=features,
        prediction=parsed.json,
        label=parsed.label,
        score=parsed.score,
        proba=parsed.proba,
        value=parsed.value,
        latency_ms=_numbers(frame, "latency_ms"),
        actual=actual,
        ts_given=ts_given,
        matrix=matrix,
        matrix_columns=matrix_columns,
        categories=categories,
    )
    check_prediction_batch(batch)
    return dedupe_predictions(batch)


@dataclass
class ParsedColumn:
    label: list[Any]
    score: np.ndarray
    proba: list[dict[Any, float] | None]
    value: np.ndarray
    json: list[str]


def _empty_parsed() -> ParsedColumn:
    return ParsedColumn([], np.empty(0), [], np.empty(0), [])


def parse_prediction_column(values: pd.Series, spec: TaskSpec) -> ParsedColumn:
    """Read a column of predictions; plain label or number columns without a Python loop."""
    n = len(values)
    nan = np.full(n, np.nan)
    kind = values.dtype.kind
    if kind in "iub" or (kind == "f" and not values.isna().any()):
        array = values.to_numpy()
        if kind == "f" and not np.isfinite(array).all():
            raise ValidationError(
                "must be finite", field="prediction", row=int(np.argmax(~np.isfinite(array)))
            )
        whole = kind in "iub" or bool((array == np.round(array)).all())
        if spec.task == "regression":
            number = array.astype(np.float64)
            return ParsedColumn(
                [None] * n, nan, [None] * n, number, [repr(v) for v in number.tolist()]
            )
        if whole:
            as_python = array.astype(bool if kind == "b" else np.int64).tolist()
            json_text = (
                [("true" if v else "false") for v in as_python]
                if kind == "b"
                else list(map(str, as_python))
            )
            return ParsedColumn(as_python, nan, [None] * n, nan, json_text)
    items = values.tolist()
    if all(type(v) is str for v in items):
        if "" in items:
            raise ValidationError(
                "a label cannot be empty", field="prediction", row=items.index("")
            )
        json_text = [json.dumps(v) for v in items]
        return ParsedColumn(items, nan, [None] * n, nan, json_text)
    parsed = [parse_prediction(p, spec, row=i) for i, p in enumerate(items)]
    return ParsedColumn(
        label=[p.label for p in parsed],
        score=np.array([np.nan if p.score is None else p.score for p in parsed], dtype=float),
        proba=[p.proba for p in parsed],
        value=np.array([np.nan if p.value is None else p.value for p in parsed], dtype=float),
        json=[canonical_json(p, field="prediction", row=i) for i, p in enumerate(items)],
    )


def dedupe_predictions(batch: PredictionBatch) -> PredictionBatch:
    """Collapse identical repeats of an id inside one batch; refuse conflicting ones."""
    if len(set(batch.prediction_id)) == len(batch):
        return batch
    repeated = pd.Series(batch.prediction_id).duplicated(keep="first").to_numpy()
    first = {pid: i for i, pid in reversed(list(enumerate(batch.prediction_id)))}
    for i in np.flatnonzero(repeated).tolist():
        j = first[batch.prediction_id[i]]
        if _row_key(batch, i) != _row_key(batch, j):
            raise ValidationError(
                f"prediction id {batch.prediction_id[i]!r} appears twice with different content"
                f" (first at row {j})",
                field="prediction_id",
                row=int(i),
            )
    keep = np.flatnonzero(~repeated)
    return take(batch, keep)


def _row_key(batch: PredictionBatch, i: int) -> tuple[Any, ...]:
    return (
        int(batch.ts[i]) if batch.ts_given[i] else None,
        batch.version[i],
        batch.tags[i],
        batch.features[i],
        None if batch.matrix is None else batch.matrix[i].tobytes(),
        batch.prediction[i],
        None if np.isnan(batch.latency_ms[i]) else float(batch.latency_ms[i]),
        json.dumps(batch.actual[i]),
    )


def take(batch: PredictionBatch, index: np.ndarray) -> PredictionBatch:
    """The rows at ``index``, in that order."""
    pick = index.tolist()
    return PredictionBatch(
        prediction_id=[batch.prediction_id[i] for i in pick],
        ts=batch.ts[index],
        version=[batch.version[i] for i in pick],
        tags=[batch.tags[i] for i in pick],
        features=[batch.features[i] for i in pick],
        prediction=[batch.prediction[i] for i in pick],
        label=[batch.label[i] for i in pick],
        score=batch.score[index],
        proba=[batch.proba[i] for i in pick],
        value=batch.value[index],
        latency_ms=batch.latency_ms[index],
        actual=[batch.actual[i] for i in pick],
        ts_given=batch.ts_given[index],
        matrix=None if batch.matrix is None else batch.matrix[index],
        matrix_columns=batch.matrix_columns,
        categories=batch.categories,
    )


FEEDBACK_WORDS = {"up": True, "down": False, "correct": True, "wrong": False, "incorrect": False}


def _feedback(value: Any, row: int) -> bool | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str) and value.lower() in FEEDBACK_WORDS:
        return FEEDBACK_WORDS[value.lower()]
    if isinstance(value, int | np.integer) and value in (1, -1, 0):
        return bool(value == 1)
    raise ValidationError(
        "must be 'up'/'down', True/False or 1/-1 (thumbs up: the prediction was right)",
        field="feedback",
        row=row,
    )


def outcome_batch(rows: Any, spec: TaskSpec, now_us: int) -> OutcomeBatch:
    """Validate outcome rows: ``prediction_id`` (or a ``*_id``), ``actual`` and/or
    ``feedback``, optional ``source`` and ``timestamp``."""
    frame = to_frame(rows)
    n = len(frame)
    columns = [str(c) for c in frame.columns]
    id_col = id_column(columns)
    if n and id_col is None:
        raise ValidationError("is required", field="prediction_id", row=0)
    unknown = [c for c in columns if c not in ("actual", "feedback", "source", "timestamp", id_col)]
    if unknown:
        raise ValidationError(f"unknown outcome columns {unknown}", field=unknown[0])
    ids = _ids(frame, id_col) if n else []
    if id_col is not None and frame[id_col].isna().any():
        row = int(np.argmax(frame[id_col].isna().to_numpy()))
        raise ValidationError("is required", field=id_col, row=row)
    ts = (
        to_us_array(frame["timestamp"], now_us)
        if "timestamp" in frame
        else np.full(n, now_us, dtype=np.int64)
    )
    # a few rows (single calls) are read row by row: cheaper than pandas' set-up per column
    columns_read = _outcome_columns(frame, spec, n) if n > 64 else None
    if columns_read is None:  # an unusual column, or a bad row: read row by row for the message
        columns_read = _outcome_rows(frame, spec, n)
    source, actual, actual_json, correct = columns_read
    check_time_range(ts)
    check_json_texts(actual_json, field="actual")
    return OutcomeBatch(ids, ts, source, actual, actual_json, correct)


_OutcomeColumns = tuple[list[str], list[Any], list[str | None], list[bool | None]]


def _outcome_rows(frame: pd.DataFrame, spec: TaskSpec, n: int) -> _OutcomeColumns:
    """Outcome columns read row by row: any input, and the first bad row named exactly."""
    sources = _optional_text(frame, "source")
    source: list[str] = []
    for i, s in enumerate(sources):
        value = s or "natural"
        if value not in OUTCOME_SOURCES:
            raise ValidationError(
                f"{value!r} is not one of {', '.join(OUTCOME_SOURCES)}", field="source", row=i
            )
        source.append(value)
    raw_actual = frame["actual"].tolist() if "actual" in frame else [None] * n
    raw_feedback = frame["feedback"].tolist() if "feedback" in frame else [None] * n
    actual: list[Any] = []
    actual_json: list[str | None] = []
    correct: list[bool | None] = []
    for i in range(n):
        raw = raw_actual[i]
        thumbs = _feedback(raw_feedback[i], i)
        present = raw is not None and not (isinstance(raw, float) and np.isnan(raw))
        if not present and thumbs is None:
            raise ValidationError("give an actual or a feedback", field="actual", row=i)
        actual.append(parse_actual(raw, spec, row=i) if present else None)
        actual_json.append(canonical_json(raw, field="actual", row=i) if present else None)
        correct.append(thumbs)
    return source, actual, actual_json, correct


def _outcome_columns(frame: pd.DataFrame, spec: TaskSpec, n: int) -> _OutcomeColumns | None:
    """Outcome columns read whole, by dtype, when every row is valid; None when a column is of
    a kind only the row-by-row reader handles or holds a bad row (which that reader names)."""
    source = _source_column(frame, n)
    correct = _feedback_column(frame, n)
    read = _actual_column(frame, spec, n)
    if source is None or correct is None or read is None:
        return None
    actual, actual_json, present = read
    if correct[1] is not None and not (present | correct[1]).all():
        return None  # a row with neither
    if correct[1] is None and not present.all():
        return None
    return source, actual, actual_json, correct[0]


def _source_column(frame: pd.DataFrame, n: int) -> list[str] | None:
    if "source" not in frame:
        return ["natural"] * n
    values = frame["source"]
    if not _is_string_dtype(values):
        return None
    filled = values.fillna("natural").replace("", "natural")
    if not filled.isin(OUTCOME_SOURCES).all():
        return None
    out: list[str] = filled.tolist()
    return out


def _feedback_column(
    frame: pd.DataFrame, n: int
) -> tuple[list[bool | None], np.ndarray | None] | None:
    """Thumbs as True / False / None and where they were given (None: no feedback column)."""
    if "feedback" not in frame:
        return [None] * n, None
    values = frame["feedback"]
    given = values.notna().to_numpy()
    if not given.any():
        return [None] * n, given
    if values.dtype.kind in "biu" and not given.all():
        return None
    if values.dtype.kind == "b":
        thumbs = values.to_numpy()
    elif values.dtype.kind in "iu":
        array = values.to_numpy()
        if not np.isin(array, (1, -1, 0)).all():
            return None
        thumbs = array == 1
    elif _is_string_dtype(values):
        words = values.str.lower().map(FEEDBACK_WORDS, na_action="ignore")
        if words.isna().to_numpy()[given].any():
            return None
        thumbs = words.fillna(False).to_numpy(dtype=bool)
    else:
        return None
    out: list[bool | None] = thumbs.astype(bool).tolist()
    if not given.all():
        for i in np.flatnonzero(~given).tolist():
            out[i] = None
    return out, given


def _actual_column(
    frame: pd.DataFrame, spec: TaskSpec, n: int
) -> tuple[list[Any], list[str | None], np.ndarray] | None:
    """Actuals parsed (labels or numbers), their JSON and where they were given, for a column of
    numbers, booleans or strings; None for anything else or a bad value."""
    if "actual" not in frame:
        return [None] * n, [None] * n, np.zeros(n, dtype=bool)
    values = frame["actual"]
    kind = values.dtype.kind
    present = values.notna().to_numpy()
    regression = spec.task == "regression"
    if kind in "biu" and not present.all():  # nullable integers or booleans with a gap
        return None
    if kind in "iu":
        as_int: list[Any] = values.to_numpy(dtype=np.int64).tolist()
        text = list(map(str, as_int))
        numbers = values.to_numpy(dtype=np.float64).tolist() if regression else as_int
        return numbers, list(text), present
    if kind == "b" and not regression:
        flags: list[Any] = values.to_numpy().tolist()
        return flags, ["true" if v else "false" for v in flags], present
    if kind == "f":
        array = values.to_numpy(dtype=np.float64)
        given = array[present]
        if not np.isfinite(given).all():
            return None
        if not regression and not (given == np.round(given)).all():
            return None
        whole = np.where(present, array, 0.0)
        parsed: list[Any] = array.tolist() if regression else whole.astype(np.int64).tolist()
        json_text: list[str | None] = list(map(repr, array.tolist()))
        if not present.all():
            for i in np.flatnonzero(~present).tolist():
                parsed[i] = None
                json_text[i] = None
        return parsed, json_text, present
    if _is_string_dtype(values) and not regression:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        labels = [str(u) for u in uniques]
        if "" in labels:
            return None
        lookup_label = np.array([*labels, None], dtype=object)
        lookup_json = np.array([*map(json.dumps, labels), None], dtype=object)
        return lookup_label[codes].tolist(), lookup_json[codes].tolist(), present
    return None
