"""The outbox of webhook deliveries: one row per (webhook, event), pending until delivered or
failed for good.

Each poll queues the new events a webhook wants, then the dispatcher claims and sends the due
ones. A claim is a conditional update, so when several server processes poll the same
database, each attempt is made by one of them only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from feedback_loop.core.timeutil import from_us
from feedback_loop.server.webhooks import Webhook, webhook_from_row
from feedback_loop.store.engine import read_transaction, write_transaction
from feedback_loop.store.events import Event
from feedback_loop.store.tables import events, models, webhook_deliveries, webhooks

# Event ids are handed out before commit, so on PostgreSQL an event may become visible after a
# later one. Each poll looks this far back below the newest queued id for such late arrivals.
RESCAN_IDS = 1000
ENQUEUE_BATCH = 500


@dataclass(frozen=True)
class Delivery:
    """One delivery as recorded: its status, attempts so far and last error."""

    id: int
    webhook_id: int
    event_id: int
    status: str  # pending, delivered or failed
    attempts: int
    last_error: str | None
    delivered_at: datetime | None
    next_attempt_at: int


@dataclass(frozen=True)
class DueDelivery:
    """A pending delivery with what it takes to send it."""

    id: int
    attempts: int
    next_attempt_at: int
    url: str
    allow_private: bool
    secret: str = field(repr=False)  # as stored: encrypted (see ``secretbox``)
    event: Event = field(repr=False)


def _insert_ignoring_duplicates(conn: Connection, rows: list[dict[str, Any]]) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(webhook_deliveries).on_conflict_do_nothing(
        index_elements=["webhook_id", "event_id"]
    )
    conn.execute(statement, rows)


class Outbox:
    """The ``webhook_deliveries`` table."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def deliveries(self, webhook_id: int | None = None, limit: int = 100) -> list[Delivery]:
        query = select(webhook_deliveries).order_by(webhook_deliveries.c.id.desc()).limit(limit)
        if webhook_id is not None:
            query = query.where(webhook_deliveries.c.webhook_id == webhook_id)
        with read_transaction(self.engine) as conn:
            rows = conn.execute(query).all()
        return [
            Delivery(
                id=r.id,
                webhook_id=r.webhook_id,
                event_id=r.event_id,
                status=r.status,
                attempts=r.attempts,
                last_error=r.last_error,
                delivered_at=None if r.delivered_at is None else from_us(r.delivered_at),
                next_attempt_at=r.next_attempt_at,
            )
            for r in rows
        ]

    def enqueue(self, *, now_us: int) -> int:
        """Queue a delivery for every new event a webhook wants; returns how many."""
        rows: list[dict[str, Any]] = []
        with read_transaction(self.engine) as conn:
            for hook in conn.execute(select(webhooks).where(webhooks.c.active.is_(True))).all():
                rows += self._new_for(conn, webhook_from_row(hook), now_us)
        if rows:
            with write_transaction(self.engine) as conn:
                _insert_ignoring_duplicates(conn, rows)
        return len(rows)

    def _new_for(self, conn: Connection, hook: Webhook, now_us: int) -> list[dict[str, Any]]:
        d = webhook_deliveries
        newest = conn.execute(
            select(func.coalesce(func.max(d.c.event_id), 0)).where(d.c.webhook_id == hook.id)
        ).scalar_one()
        since = max(hook.after_event_id, int(newest) - RESCAN_IDS)
        queued = exists().where(and_(d.c.webhook_id == hook.id, d.c.event_id == events.c.id))
        ids = conn.execute(
            select(events.c.id)
            .where(events.c.id > since, events.c.kind.in_(hook.kinds), ~queued)
            .order_by(events.c.id)
            .limit(ENQUEUE_BATCH)
        ).scalars()
        return [
            {
                "webhook_id": hook.id,
                "event_id": int(event_id),
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now_us,
            }
            for event_id in ids
        ]

    def due(self, *, now_us: int, limit: int = 50) -> list[DueDelivery]:
        d = webhook_deliveries
        query = (
            select(
                d.c.id.label("delivery_id"),
                d.c.attempts,
                d.c.next_attempt_at,
                webhooks.c.url,
                webhooks.c.allow_private,
                webhooks.c.secret,
                events.c.id.label("event_id"),
                events.c.ts,
                events.c.kind,
                events.c.version,
                events.c.actor,
                events.c.reason,
                events.c.evidence,
                models.c.name.label("model_name"),
            )
            .join(webhooks, webhooks.c.id == d.c.webhook_id)
            .join(events, events.c.id == d.c.event_id)
            .join(models, models.c.id == events.c.model_id, isouter=True)
            .where(
                d.c.status == "pending",
                d.c.next_attempt_at <= now_us,
                webhooks.c.active.is_(True),
            )
            .order_by(d.c.next_attempt_at, d.c.id)
            .limit(limit)
        )
        with read_transaction(self.engine) as conn:
            rows = conn.execute(query).all()
        return [
            DueDelivery(
                id=r.delivery_id,
                attempts=r.attempts,
                next_attempt_at=r.next_attempt_at,
                url=r.url,
                allow_private=bool(r.allow_private),
                secret=r.secret,
                event=Event(
                    id=r.event_id,
                    time=from_us(r.ts),
                    kind=r.kind,
                    model=r.model_name,
                    version=r.version,
                    actor=r.actor,
                    reason=r.reason,
                    evidence=json.loads(r.evidence),
                ),
            )
            for r in rows
        ]

    def claim(self, delivery: DueDelivery, *, until_us: int) -> bool:
        """Take a delivery for one attempt; False if another process took it first."""
        d = webhook_deliveries
        with write_transaction(self.engine) as conn:
            result = conn.execute(
                update(d)
                .where(
                    d.c.id == delivery.id,
                    d.c.status == "pending",
                    d.c.next_attempt_at == delivery.next_attempt_at,
                )
                .values(next_attempt_at=until_us)
            )
        return bool(result.rowcount)

    def record(
        self,
        delivery_id: int,
        *,
        attempts: int,
        error: str | None,
        now_us: int,
        retry_at_us: int | None,
    ) -> None:
        """The outcome of an attempt: delivered, to be retried at ``retry_at_us``, or failed
        for good (an error and no retry time)."""
        if error is None:
            values: dict[str, Any] = {"status": "delivered", "delivered_at": now_us}
        elif retry_at_us is not None:
            values = {"status": "pending", "next_attempt_at": retry_at_us}
        else:
            values = {"status": "failed"}
        values.update(attempts=attempts, last_error=error)
        with write_transaction(self.engine) as conn:
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery_id)
                .values(**values)
            )
