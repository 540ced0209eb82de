"""The event log: every state change, with who, why and the evidence behind it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from feedback_loop.core.timeutil import from_us
from feedback_loop.store.tables import events, models


@dataclass(frozen=True)
class Event:
    """One entry of the audit trail."""

    id: int
    time: datetime
    kind: str
    model: str | None
    version: str | None
    actor: str
    reason: str
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": self.time.isoformat(),
            "kind": self.kind,
            "model": self.model,
            "version": self.version,
            "actor": self.actor,
            "reason": self.reason,
            "evidence": self.evidence,
        }


def write_event(
    conn: Connection,
    *,
    ts_us: int,
    kind: str,
    model_id: int | None,
    version: str | None,
    actor: str,
    reason: str,
    evidence: dict[str, Any],
) -> int:
    result = conn.execute(
        insert(events)
        .values(
            ts=ts_us,
            kind=kind,
            model_id=model_id,
            version=version,
            actor=actor,
            reason=reason,
            evidence=json.dumps(evidence, sort_keys=True, default=str),
        )
        .returning(events.c.id)
    )
    return int(result.scalar_one())


def get_event(conn: Connection, event_id: int) -> Event:
    """One event by id."""
    query = (
        select(events, models.c.name.label("model_name"))
        .join(models, models.c.id == events.c.model_id, isouter=True)
        .where(events.c.id == event_id)
    )
    return _event(conn.execute(query).one())


def _event(r: Any) -> Event:
    return Event(
        id=r.id,
        time=from_us(r.ts),
        kind=r.kind,
        model=r.model_name,
        version=r.version,
        actor=r.actor,
        reason=r.reason,
        evidence=json.loads(r.evidence),
    )


def read_events(
    conn: Connection,
    *,
    model_id: int | None = None,
    kinds: Sequence[str] | None = None,
    since_us: int | None = None,
    until_us: int | None = None,
    limit: int | None = 100,
) -> list[Event]:
    """Events, newest first."""
    query = select(events, models.c.name.label("model_name")).join(
        models, models.c.id == events.c.model_id, isouter=True
    )
    if model_id is not None:
        query = query.where(events.c.model_id == model_id)
    if kinds:
        query = query.where(events.c.kind.in_(list(kinds)))
    if since_us is not None:
        query = query.where(events.c.ts >= since_us)
    if until_us is not None:
        query = query.where(events.c.ts < until_us)
    query = query.order_by(events.c.ts.desc(), events.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [_event(r) for r in conn.execute(query)]
