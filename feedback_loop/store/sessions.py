"""Dashboard sessions in the ``dashboard_sessions`` table, looked up by the hash of their id.

A live session is one not signed out, not past its absolute expiry nor its idle limit, whose API
key is not revoked: the lookup joins the key's row, so revoking a key ends its sessions at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, insert, or_, select, update

from feedback_loop.store.engine import read_transaction, write_transaction
from feedback_loop.store.tables import api_keys, dashboard_sessions


@dataclass(frozen=True)
class LiveSession:
    """A live session and the row of the key that opened it."""

    id: int
    last_seen_at: int
    key: Any  # the ``api_keys`` row


def create(engine: Engine, *, token_hash: str, key_id: int, now_us: int, expires_us: int) -> None:
    """Store a new session, clearing out the ended ones on the way (sign-ins are rare)."""
    table = dashboard_sessions
    with write_transaction(engine) as conn:
        conn.execute(
            delete(table).where(or_(table.c.expires_at <= now_us, table.c.revoked_at.isnot(None)))
        )
        conn.execute(
            insert(table).values(
                hash=token_hash,
                key_id=key_id,
                created_at=now_us,
                last_seen_at=now_us,
                expires_at=expires_us,
            )
        )


def find_live(engine: Engine, token_hash: str, *, now_us: int, idle_us: int) -> LiveSession | None:
    """The live session with this hash, or None (unknown, ended, idle too long, key revoked)."""
    table = dashboard_sessions
    query = (
        select(table.c.id.label("session_id"), table.c.last_seen_at.label("seen"), *api_keys.c)
        .join(api_keys, api_keys.c.id == table.c.key_id)
        .where(
            table.c.hash == token_hash,
            table.c.revoked_at.is_(None),
            table.c.expires_at > now_us,
            table.c.last_seen_at > now_us - idle_us,
            api_keys.c.revoked_at.is_(None),
        )
    )
    with read_transaction(engine) as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    return LiveSession(id=row.session_id, last_seen_at=row.seen, key=row)


def touch(engine: Engine, session_id: int, *, now_us: int) -> None:
    """Record activity (it pushes the idle limit back)."""
    with write_transaction(engine) as conn:
        conn.execute(
            update(dashboard_sessions)
            .where(dashboard_sessions.c.id == session_id)
            .values(last_seen_at=now_us)
        )


def revoke(engine: Engine, token_hash: str, *, now_us: int) -> None:
    """End a session (signing out twice keeps the first time)."""
    table = dashboard_sessions
    with write_transaction(engine) as conn:
        conn.execute(
            update(table)
            .where(table.c.hash == token_hash, table.c.revoked_at.is_(None))
            .values(revoked_at=now_us)
        )
