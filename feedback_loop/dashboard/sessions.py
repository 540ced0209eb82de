"""Dashboard sign-in: server-side sessions, CSRF tokens and the same-origin rule for POSTs.

The browser holds only a random session id (cookie ``fl_session``: HttpOnly, SameSite=Strict,
Path=/ui, Secure over https); the database holds its SHA-256, the key it was opened with, and
its times. A session ends 12 hours after sign-in, after 2 idle hours, on sign-out, or when its
key is revoked (every request re-reads the key's row through the session). The API key itself is
checked once, at sign-in, and never leaves the request that carried it.

Every form carries a CSRF token derived from the session id (an HMAC: another site can neither
read the HttpOnly cookie nor compute the token), and every POST must come from a page of this
server (its ``Origin``, else its ``Referer``, names this host).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request
from sqlalchemy import Engine

from feedback_loop.core.clock import Clock
from feedback_loop.core.timeutil import to_us
from feedback_loop.server.keys import KeyStore, Principal, principal_of
from feedback_loop.store import sessions as session_store

COOKIE = "fl_session"
COOKIE_PATH = "/ui"
LIFETIME_S = 12 * 3600  # from sign-in, however active
IDLE_S = 2 * 3600  # without a request
TOUCH_EVERY_S = 60  # record activity at most this often per session
_US = 1_000_000


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(token: str) -> str:
    """The CSRF token of the session whose id is ``token``."""
    return hmac.new(token.encode(), b"feedback-loop csrf", hashlib.sha256).hexdigest()


def csrf_matches(token: str, presented: str) -> bool:
    return hmac.compare_digest(csrf_token(token), presented)


def same_origin(request: Request) -> bool:
    """Whether a state-changing request comes from this server's own pages: its ``Origin``
    (else ``Referer``) must name the host the request was sent to. A request naming neither
    is refused too: every browser sends ``Origin`` with a form POST. Behind a proxy that sends
    another ``Host``, the public origins the operator names are accepted too."""
    source = request.headers.get("origin") or request.headers.get("referer")
    host = request.headers.get("host")
    if not source or not host or source == "null":
        return False
    parts = urlsplit(source)
    if parts.scheme not in ("http", "https"):
        return False
    if parts.netloc.lower() == host.lower():
        return True
    context = getattr(request.app.state, "context", None)
    allowed = context.settings.public_origins if context is not None else ()
    return f"{parts.scheme}://{parts.netloc}".lower() in allowed


class Sessions:
    """Open, find and end sessions in the database."""

    def __init__(self, engine: Engine, keys: KeyStore, clock: Clock):
        self.engine = engine
        self.keys = keys
        self.clock = clock

    def _now_us(self) -> int:
        return to_us(self.clock.now())

    def sign_in(self, key: str) -> tuple[str, Principal] | None:
        """A new session for a valid key: its id (for the cookie only) and the caller; None
        for an unknown, malformed or revoked key."""
        now = self._now_us()
        principal = self.keys.verify(key.strip(), now_us=now)
        if principal is None or principal.key_id is None:
            return None
        token = secrets.token_urlsafe(32)
        session_store.create(
            self.engine,
            token_hash=hash_token(token),
            key_id=principal.key_id,
            now_us=now,
            expires_us=now + LIFETIME_S * _US,
        )
        return token, principal

    def principal(self, token: str) -> Principal | None:
        """The caller of a live session, or None (unknown, ended, idle, key revoked)."""
        now = self._now_us()
        found = session_store.find_live(
            self.engine, hash_token(token), now_us=now, idle_us=IDLE_S * _US
        )
        if found is None:
            return None
        if now - found.last_seen_at >= TOUCH_EVERY_S * _US:  # not a write per page view
            session_store.touch(self.engine, found.id, now_us=now)
        return principal_of(found.key)

    def sign_out(self, token: str) -> None:
        session_store.revoke(self.engine, hash_token(token), now_us=self._now_us())
