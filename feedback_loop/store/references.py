"""Stored reference profiles."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from feedback_loop.store.tables import reference_profiles


def save_reference(
    conn: Connection,
    *,
    model_id: int,
    name: str,
    version: str,
    created_at: int,
    n_rows: int,
    source: str,
    data: dict[str, Any],
) -> None:
    """Store (or replace) the reference ``name`` of a model version."""
    key = (
        (reference_profiles.c.model_id == model_id)
        & (reference_profiles.c.name == name)
        & (reference_profiles.c.version == version)
    )
    conn.execute(delete(reference_profiles).where(key))
    conn.execute(
        insert(reference_profiles).values(
            model_id=model_id,
            name=name,
            version=version,
            created_at=created_at,
            n_rows=n_rows,
            source=source,
            data=json.dumps(data),
        )
    )


def load_reference(
    conn: Connection, model_id: int, name: str, version: str | None
) -> dict[str, Any] | None:
    """The reference ``name`` of ``version``, else of any version (the newest)."""
    query = select(reference_profiles).where(
        reference_profiles.c.model_id == model_id, reference_profiles.c.name == name
    )
    if version is not None:
        query = query.where(reference_profiles.c.version == version)
    row = conn.execute(query.order_by(reference_profiles.c.created_at.desc()).limit(1)).first()
    if row is None:
        return None
    return {
        "name": row.name,
        "version": row.version,
        "n_rows": row.n_rows,
        "source": row.source,
        "created_at": row.created_at,
        "data": json.loads(row.data),
    }
