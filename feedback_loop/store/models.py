"""Models and their class-label vocabularies."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from feedback_loop.core.tasks import TaskSpec
from feedback_loop.errors import UnknownModelError
from feedback_loop.store.tables import feature_schemas, feature_values, labels, models


@dataclass
class ModelRecord:
    id: int
    name: str
    spec: TaskSpec
    created_at: int


def _dialect_insert(conn: Connection, table: Any) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _record(row: Any) -> ModelRecord:
    positive = json.loads(row.positive_label) if row.positive_label is not None else None
    spec = TaskSpec(
        task=row.task,
        label_key=row.label_key,
        score_key=row.score_key,
        positive_label=positive,
        primary_metric=row.primary_metric,
    )
    return ModelRecord(id=row.id, name=row.name, spec=spec, created_at=row.created_at)


def find_model(conn: Connection, name: str) -> ModelRecord | None:
    row = conn.execute(select(models).where(models.c.name == name)).first()
    return _record(row) if row is not None else None


def get_model(conn: Connection, name: str) -> ModelRecord:
    record = find_model(conn, name)
    if record is None:
        raise UnknownModelError(f"no model named {name!r} has been logged to")
    return record


def list_models(conn: Connection) -> list[ModelRecord]:
    return [_record(r) for r in conn.execute(select(models).order_by(models.c.name))]


def ensure_model(conn: Connection, name: str, now_us: int) -> ModelRecord:
    """The model named ``name``, created on first use (safe under concurrent first uses)."""
    record = find_model(conn, name)
    if record is not None:
        return record
    statement = _dialect_insert(conn, models).values(name=name, created_at=now_us)
    conn.execute(statement.on_conflict_do_nothing(index_elements=["name"]))
    return get_model(conn, name)


def save_spec(conn: Connection, model_id: int, spec: TaskSpec) -> None:
    """Persist what was declared or inferred about the task (only fills unset fields)."""
    current = conn.execute(select(models).where(models.c.id == model_id)).one()
    values: dict[str, Any] = {}
    if current.task is None and spec.task is not None:
        values["task"] = spec.task
    if current.label_key is None and spec.label_key is not None:
        values["label_key"] = spec.label_key
    if current.score_key is None and spec.score_key is not None:
        values["score_key"] = spec.score_key
    if current.positive_label is None and spec.positive_label is not None:
        values["positive_label"] = json.dumps(spec.positive_label)
    if current.primary_metric is None and spec.primary_metric is not None:
        values["primary_metric"] = spec.primary_metric
    if values:
        conn.execute(update(models).where(models.c.id == model_id).values(**values))


def label_codes(conn: Connection, model_id: int) -> dict[str, int]:
    """``{label_json: code}`` for a model."""
    rows = conn.execute(select(labels.c.value, labels.c.code).where(labels.c.model_id == model_id))
    return {value: code for value, code in rows}


def label_values(conn: Connection, model_id: int) -> dict[int, Any]:
    """``{code: label}`` for a model."""
    return {code: json.loads(value) for value, code in label_codes(conn, model_id).items()}


def ensure_labels(conn: Connection, model_id: int, keys: Iterable[str]) -> dict[str, int]:
    """Codes for every label key, adding the new ones (under the model's row lock)."""
    codes = label_codes(conn, model_id)
    new = sorted(set(keys) - codes.keys())
    if not new:
        return codes
    if conn.dialect.name == "postgresql":
        conn.execute(select(models.c.id).where(models.c.id == model_id).with_for_update())
        codes = label_codes(conn, model_id)
        new = sorted(set(new) - codes.keys())
    start = conn.execute(
        select(func.coalesce(func.max(labels.c.code), -1)).where(labels.c.model_id == model_id)
    ).scalar_one()
    rows = [
        {"model_id": model_id, "code": start + 1 + i, "value": key} for i, key in enumerate(new)
    ]
    if rows:
        conn.execute(insert(labels), rows)
        codes.update({r["value"]: r["code"] for r in rows})
    return codes


def feature_schema_id(conn: Connection, model_id: int, columns: tuple[tuple[str, str], ...]) -> int:
    """The id of the model's packed-feature schema (``(name, kind)`` pairs), made on first use."""
    key = json.dumps([list(c) for c in columns])
    query = select(feature_schemas.c.id).where(
        feature_schemas.c.model_id == model_id, feature_schemas.c.names == key
    )
    found = conn.execute(query).scalar()
    if found is not None:
        return int(found)
    statement = _dialect_insert(conn, feature_schemas).values(model_id=model_id, names=key)
    conn.execute(statement.on_conflict_do_nothing())
    return int(conn.execute(query).scalar_one())


def feature_codes(conn: Connection, model_id: int, feature: str) -> dict[str, int]:
    rows = conn.execute(
        select(feature_values.c.value, feature_values.c.code).where(
            feature_values.c.model_id == model_id, feature_values.c.feature == feature
        )
    )
    return {value: code for value, code in rows}


def ensure_feature_codes(
    conn: Connection, model_id: int, feature: str, values: list[str]
) -> dict[str, int]:
    """Codes for the values of a categorical feature, adding new ones under the model's lock."""
    codes = feature_codes(conn, model_id, feature)
    new = sorted(set(values) - codes.keys())
    if not new:
        return codes
    if conn.dialect.name == "postgresql":
        conn.execute(select(models.c.id).where(models.c.id == model_id).with_for_update())
        codes = feature_codes(conn, model_id, feature)
        new = sorted(set(new) - codes.keys())
    start = max(codes.values(), default=-1) + 1
    added = {value: start + i for i, value in enumerate(new)}
    if added:
        conn.execute(
            insert(feature_values),
            [
                {"model_id": model_id, "feature": feature, "code": code, "value": value}
                for value, code in added.items()
            ],
        )
        codes.update(added)
    return codes


def feature_value_table(conn: Connection, model_id: int) -> dict[str, list[str | None]]:
    """``{feature: values by code}`` for decoding."""
    out: dict[str, dict[int, str]] = {}
    for feature, code, value in conn.execute(
        select(feature_values.c.feature, feature_values.c.code, feature_values.c.value).where(
            feature_values.c.model_id == model_id
        )
    ):
        out.setdefault(feature, {})[code] = value
    return {f: [m.get(i) for i in range(max(m) + 1)] for f, m in out.items()}
