"""Webhooks: where events are sent, which kinds, and how bodies are signed.

Bodies are signed with the webhook's secret: ``X-Feedback-Loop-Signature: sha256=<hex
HMAC-SHA256 of the body>``, so a receiver can check the sender and the content. The secret is
kept as given, since signing needs it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import Engine, func, insert, select, update

from feedback_loop.errors import ValidationError
from feedback_loop.store.engine import read_transaction, write_transaction
from feedback_loop.store.events import Event
from feedback_loop.store.tables import events, webhooks
from feedback_loop.timeutil import from_us

EVENTS_OF_INTEREST = (
    "drift_detected",
    "retrain_due",
    "estimate_breach",
    "weak_segments",
    "retrain_started",
    "gate_passed",
    "gate_rejected",
    "promoted",
    "rolled_back",
)
KIND_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,59}")


def sign(secret: str, body: bytes) -> str:
    """The signature header value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def event_body(event: Event) -> bytes:
    return json.dumps({"event": event.to_dict()}, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Webhook:
    id: int
    url: str
    kinds: list[str]
    active: bool
    created_at: datetime
    after_event_id: int
    secret: str = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "kinds": self.kinds,
            "active": self.active,
            "created_at": self.created_at.isoformat(),
        }


def webhook_from_row(row: Any) -> Webhook:
    return Webhook(
        id=row.id,
        url=row.url,
        kinds=json.loads(row.kinds),
        active=bool(row.active),
        created_at=from_us(row.created_at),
        after_event_id=row.after_event_id,
        secret=row.secret,
    )


def _check_url(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValidationError(str(exc), field="url") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValidationError("must be an http:// or https:// URL", field="url")
    return url


def _check_kinds(kinds: list[str] | None) -> list[str]:
    chosen = list(kinds) if kinds else list(EVENTS_OF_INTEREST)
    bad = [k for k in chosen if not KIND_PATTERN.fullmatch(k)]
    if bad:
        raise ValidationError(f"{bad[0]!r} is not an event kind", field="kinds")
    return sorted(set(chosen))


class WebhookStore:
    """The ``webhooks`` table."""

    def __init__(self, engine: Engine):
        self.engine = engine

    # -- configuration ---------------------------------------------------------------------

    def add(self, url: str, secret: str, kinds: list[str] | None, *, now_us: int) -> Webhook:
        """A webhook for the events written from now on (earlier ones are not sent)."""
        if len(secret) < 16:
            raise ValidationError("use at least 16 characters", field="secret")
        values = {
            "url": _check_url(url),
            "secret": secret,
            "kinds": json.dumps(_check_kinds(kinds)),
            "active": True,
            "created_at": now_us,
        }
        with write_transaction(self.engine) as conn:
            latest = conn.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one()
            hook_id = conn.execute(
                insert(webhooks)
                .values(after_event_id=int(latest), **values)
                .returning(webhooks.c.id)
            ).scalar_one()
            row = conn.execute(select(webhooks).where(webhooks.c.id == hook_id)).one()
        return webhook_from_row(row)

    def list_webhooks(self) -> list[Webhook]:
        with read_transaction(self.engine) as conn:
            rows = conn.execute(select(webhooks).order_by(webhooks.c.id)).all()
        return [webhook_from_row(r) for r in rows]

    def deactivate(self, webhook_id: int) -> bool:
        """Stop sending to a webhook; its delivery history stays. False if it is unknown."""
        with write_transaction(self.engine) as conn:
            result = conn.execute(
                update(webhooks).where(webhooks.c.id == webhook_id).values(active=False)
            )
        return bool(result.rowcount)
