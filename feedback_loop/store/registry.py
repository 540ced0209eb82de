"""Model versions, aliases and the history of every alias move."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from feedback_loop.errors import FeedbackLoopError
from feedback_loop.store.tables import alias_history, aliases, model_versions, models


@dataclass(frozen=True)
class VersionRecord:
    model_id: int
    version: int
    created_at: int
    created_by: str
    artifact_uri: str
    sha256: str
    serializer: str
    size_bytes: int
    train_start: int | None
    train_end: int | None
    train_rows: int | None
    metrics: dict[str, Any]
    info: dict[str, Any]


def _record(row: Any) -> VersionRecord:
    return VersionRecord(
        model_id=row.model_id,
        version=row.version,
        created_at=row.created_at,
        created_by=row.created_by,
        artifact_uri=row.artifact_uri,
        sha256=row.sha256,
        serializer=row.serializer,
        size_bytes=row.size_bytes,
        train_start=row.train_start,
        train_end=row.train_end,
        train_rows=row.train_rows,
        metrics=json.loads(row.metrics),
        info=json.loads(row.info),
    )


def add_version(conn: Connection, model_id: int, **values: Any) -> int:
    """Insert the next version (1, 2, ...) of a model; the model row is locked meanwhile."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(models.c.id).where(models.c.id == model_id).with_for_update())
    latest = conn.execute(
        select(func.coalesce(func.max(model_versions.c.version), 0)).where(
            model_versions.c.model_id == model_id
        )
    ).scalar_one()
    version = int(latest) + 1
    values["metrics"] = json.dumps(values.get("metrics") or {}, default=float)
    values["info"] = json.dumps(values.get("info") or {}, default=str)
    conn.execute(insert(model_versions).values(model_id=model_id, version=version, **values))
    return version


def get_version(conn: Connection, model_id: int, version: int) -> VersionRecord:
    row = conn.execute(
        select(model_versions).where(
            model_versions.c.model_id == model_id, model_versions.c.version == version
        )
    ).first()
    if row is None:
        raise FeedbackLoopError(f"no version {version} of this model is registered")
    return _record(row)


def list_versions(conn: Connection, model_id: int) -> list[VersionRecord]:
    rows = conn.execute(
        select(model_versions)
        .where(model_versions.c.model_id == model_id)
        .order_by(model_versions.c.version)
    )
    return [_record(r) for r in rows]


def update_metrics(conn: Connection, model_id: int, version: int, metrics: dict[str, Any]) -> None:
    current = get_version(conn, model_id, version).metrics
    conn.execute(
        update(model_versions)
        .where(model_versions.c.model_id == model_id, model_versions.c.version == version)
        .values(metrics=json.dumps({**current, **metrics}, default=float))
    )


def get_alias(conn: Connection, model_id: int, alias: str) -> int | None:
    return conn.execute(
        select(aliases.c.version).where(aliases.c.model_id == model_id, aliases.c.alias == alias)
    ).scalar()


def all_aliases(conn: Connection, model_id: int) -> dict[str, int]:
    rows = conn.execute(
        select(aliases.c.alias, aliases.c.version).where(aliases.c.model_id == model_id)
    )
    return {alias: version for alias, version in rows}


def set_alias(
    conn: Connection,
    model_id: int,
    alias: str,
    version: int | None,
    *,
    ts: int,
    actor: str,
    reason: str,
) -> int | None:
    """Point ``alias`` at ``version`` (None removes it); returns the version it pointed at."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(models.c.id).where(models.c.id == model_id).with_for_update())
    previous = get_alias(conn, model_id, alias)
    if version is not None:
        get_version(conn, model_id, version)  # must exist
    key = (aliases.c.model_id == model_id) & (aliases.c.alias == alias)
    if version is None:
        conn.execute(aliases.delete().where(key))
    elif previous is None:
        conn.execute(
            insert(aliases).values(model_id=model_id, alias=alias, version=version, updated_at=ts)
        )
    else:
        conn.execute(update(aliases).where(key).values(version=version, updated_at=ts))
    conn.execute(
        insert(alias_history).values(
            model_id=model_id,
            alias=alias,
            version=version,
            previous_version=previous,
            ts=ts,
            actor=actor,
            reason=reason,
        )
    )
    return previous


def history(conn: Connection, model_id: int, alias: str | None = None) -> list[dict[str, Any]]:
    query = select(alias_history).where(alias_history.c.model_id == model_id)
    if alias is not None:
        query = query.where(alias_history.c.alias == alias)
    rows = conn.execute(query.order_by(alias_history.c.ts, alias_history.c.id))
    return [
        {
            "alias": r.alias,
            "version": r.version,
            "previous_version": r.previous_version,
            "ts": r.ts,
            "actor": r.actor,
            "reason": r.reason,
        }
        for r in rows
    ]
