"""Structured fields in CSV files.

A CSV cell holds text, so the structured fields of a prediction or an outcome are carried in
one of two ways (both may be mixed in one file):

* JSON cells in the ``prediction``, ``actual``, ``tags`` and ``features`` columns:
  ``{"label": 1, "score": 0.9}``, ``{"region": "eu"}``. In ``prediction`` and ``actual``, once a
  column holds a JSON object or list, every cell that reads as JSON is taken as JSON (``1`` is
  the number 1, ``"cat"`` in quotes or a bare ``cat`` the string);
* flat columns named ``<field>.<key>``: ``prediction.label`` and ``prediction.score`` make the
  prediction ``{"label": ..., "score": ...}`` (likewise ``actual.<key>``), ``tags.region`` the
  tag ``region``, and ``features.x`` the feature ``x`` (a column as any other feature column,
  in any order). Empty cells are left out of the row's dict; a key given both in a JSON cell
  and in a column of the same row is an error.

Without these, every column that is not a known field is a feature, as in a DataFrame.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from feedback_loop.errors import ValidationError

JSON_COLUMNS = ("prediction", "actual", "tags", "features")
DICT_COLUMNS = ("tags", "features")
NESTED = ("prediction", "actual", "tags")  # ``<field>.<key>`` columns that build a dict


def decode_csv(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as read from a CSV file, with its structured fields decoded (see above)."""
    frame = frame.copy()
    for name in JSON_COLUMNS:
        if name in frame:
            frame[name] = _json_cells(frame[name], name)
    for name in NESTED:
        frame = _nest(frame, name)
    flat_features = [c for c in frame.columns if str(c).startswith("features.")]
    if flat_features:
        if "features" in frame:
            raise ValidationError(
                "give features as a `features` JSON column or as `features.<name>` columns, "
                "not both",
                field="features",
            )
        renamed = {c: str(c)[len("features.") :] for c in flat_features}
        clash = [new for new in renamed.values() if new in frame.columns or not new]
        if clash:
            raise ValidationError(
                f"feature column {clash[0]!r} given twice", field=f"features.{clash[0]}"
            )
        frame = frame.rename(columns=renamed)
    return frame


def _json_cells(column: pd.Series, name: str) -> pd.Series:
    """JSON text cells as values; in a column without objects or lists, cells stay as read."""
    if column.dtype.kind != "O" and not pd.api.types.is_string_dtype(column.dtype):
        return column
    texts = column.tolist()
    structured = [
        i for i, v in enumerate(texts) if isinstance(v, str) and v.lstrip()[:1] in ("{", "[")
    ]
    if not structured and name not in DICT_COLUMNS:
        return column
    out: list[Any] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            out.append(None)
            continue
        try:
            out.append(json.loads(text))
        except ValueError as exc:
            if i in structured or name in DICT_COLUMNS:
                raise ValidationError(f"is not valid JSON: {exc}", field=name, row=i) from exc
            out.append(text)  # a bare label such as cat
    return pd.Series(out, index=column.index, dtype=object)


def _nest(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """``<name>.<key>`` columns into one ``name`` column of dicts (merged into its JSON dicts)."""
    prefix = f"{name}."
    keys = [c for c in frame.columns if str(c).startswith(prefix) and len(str(c)) > len(prefix)]
    if not keys:
        return frame
    if name in frame and name not in DICT_COLUMNS:
        raise ValidationError(
            f"give `{name}` or `{prefix}<key>` columns, not both", field=str(keys[0])
        )
    columns = {str(c)[len(prefix) :]: _python_values(frame[c]) for c in keys}
    base = frame[name].tolist() if name in frame else [None] * len(frame)
    rows: list[dict[str, Any] | None] = []
    for i, given in enumerate(base):
        row = dict(given) if isinstance(given, dict) else {}
        for key, values in columns.items():
            if values[i] is None:
                continue
            if key in row:  # a JSON cell and a column both give it: neither silently wins
                raise ValidationError(
                    f"{key!r} is given in the `{name}` cell and in this column",
                    field=f"{prefix}{key}",
                    row=i,
                )
            row[key] = values[i]
        rows.append(row or None)
    out = frame.drop(columns=keys)
    out[name] = pd.Series(rows, index=frame.index, dtype=object)
    return out


def _python_values(column: pd.Series) -> list[Any]:
    """A column's cells as plain Python values, ``None`` where empty; whole floats in a column
    of numbers with gaps (pandas reads them as floats) become integers again."""
    values = column.astype(object).where(column.notna(), None).tolist()
    if column.dtype.kind == "f":
        finite = column.dropna().to_numpy()
        if len(finite) and bool(np.all(finite == np.round(finite))):
            return [None if v is None else int(v) for v in values]
    return values
