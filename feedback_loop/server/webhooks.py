"""Webhooks: where events are sent, which kinds, and how bodies are signed.

Bodies are signed with the webhook's secret: ``X-Feedback-Loop-Signature: sha256=<hex
HMAC-SHA256 of the body>``, so a receiver can check the sender and the content. Signing needs
the secret itself, so it is stored encrypted with a key kept outside the database (see
``feedback_loop.core.secretbox``).

A webhook makes the server send requests where its operator says, so targets are checked: only
``http`` and ``https``, and no address on the server's own networks (loopback, link-local such
as the cloud metadata address 169.254.169.254, private, unique-local, unspecified, multicast or
otherwise not globally routable), unless the webhook was added with ``allow_private`` or the
server runs with ``FEEDBACK_LOOP_WEBHOOK_ALLOW_PRIVATE=1``. A host name is checked on every
address it resolves to, when the webhook is added and again at each delivery, and the delivery
connects to the address that was checked, so a name re-pointed at a private address after the
check (DNS rebinding) is refused too.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import Engine, func, insert, select, update

from feedback_loop.core.secretbox import encrypt
from feedback_loop.core.timeutil import from_us
from feedback_loop.errors import ValidationError
from feedback_loop.store.engine import read_transaction, write_transaction
from feedback_loop.store.events import Event
from feedback_loop.store.tables import events, webhooks

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
ENV_ALLOW_PRIVATE = "FEEDBACK_LOOP_WEBHOOK_ALLOW_PRIVATE"
MAX_URL_CHARS = 2000
MAX_SECRET_CHARS = 1000
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _refused_kind(address: IPAddress) -> str | None:
    """What makes an address one a webhook may not reach, or None if it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        # IPv4 carried inside IPv6 is judged as the IPv4 address it reaches: mapped
        # (::ffff:127.0.0.1), 6to4 (2002:a9fe:a9fe::) and Teredo's client address.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is not None:
            address = embedded
    # The specific kinds first: 0.0.0.0 and ff02::1 also count as private and reserved.
    for kind in ("unspecified", "multicast", "loopback", "link_local", "private", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    if not address.is_global:
        return "non-global"
    return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (a literal address: itself)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos]


@dataclass(frozen=True)
class Target:
    """Where a delivery goes: the URL to send to (the checked address in place of the host
    name), and the ``Host`` header and TLS server name that keep the request the name's."""

    url: str
    headers: dict[str, str]
    extensions: dict[str, Any]


def check_target(url: str, *, allow_private: bool) -> Target:
    """The target of a delivery to ``url``; ``ValidationError`` (field ``url``) if its scheme
    is not http(s), its host does not resolve, or it resolves to a refused address."""
    parsed = httpx.URL(_check_url(url))
    if allow_private:
        return Target(url, {}, {})
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        addresses = resolve(parsed.host, port)
    except (OSError, UnicodeError, ValueError) as exc:
        raise ValidationError(f"{parsed.host!r} does not resolve ({exc})", field="url") from exc
    for address in addresses:
        kind = _refused_kind(address)
        if kind is not None:
            raise ValidationError(
                f"{parsed.host!r} is (or resolves to) {address}, "
                f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} address: webhooks "
                "may not reach the server's own networks unless allowed explicitly "
                f"(`webhooks add --allow-private`, or {ENV_ALLOW_PRIVATE}=1 for the server)",
                field="url",
            )
    pinned = parsed.copy_with(host=str(addresses[0]))
    host_header = f"[{parsed.host}]" if ":" in parsed.host else parsed.host  # an IPv6 literal
    if parsed.port is not None:
        host_header += f":{parsed.port}"
    extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
    return Target(str(pinned), {"Host": host_header}, extensions)


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
    allow_private: bool = False

    def to_dict(self) -> dict[str, Any]:
        """What listings show: never the secret."""
        return {
            "id": self.id,
            "url": self.url,
            "kinds": self.kinds,
            "active": self.active,
            "allow_private": self.allow_private,
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
        allow_private=bool(row.allow_private),
    )


def _check_url(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValidationError(str(exc), field="url") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValidationError("must be an http:// or https:// URL", field="url")
    if len(url) > MAX_URL_CHARS:
        raise ValidationError(f"is over {MAX_URL_CHARS:,} characters", field="url")
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

    def add(
        self,
        url: str,
        secret: str,
        kinds: list[str] | None,
        *,
        now_us: int,
        allow_private: bool = False,
        server_allows_private: bool = False,
    ) -> Webhook:
        """A webhook for the events written from now on (earlier ones are not sent).

        The URL's host must resolve to public addresses only, unless ``allow_private`` (kept
        with the webhook) or ``server_allows_private`` allows private ones. The latter is the
        operator's setting (``Settings.webhook_allow_private``), passed by the caller so that
        the environment is read in one place only, and not kept with the webhook. The secret is
        stored encrypted."""
        if not 16 <= len(secret) <= MAX_SECRET_CHARS:
            raise ValidationError(f"use 16 to {MAX_SECRET_CHARS:,} characters", field="secret")
        check_target(url, allow_private=allow_private or server_allows_private)
        values = {
            "url": url,
            "secret": encrypt(secret),
            "kinds": json.dumps(_check_kinds(kinds)),
            "active": True,
            "created_at": now_us,
            "allow_private": allow_private,
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
