"""API keys: made once, stored as a hash, checked on every request.

A key reads ``fl_<prefix>_<secret>``. The 8-character prefix is stored in clear to find the row
(and to tell keys apart in listings); the database holds only the SHA-256 of the whole key. A
plain, fast hash is enough here, unlike for passwords: the secret is 256 random bits from the
operating system, so a leaked hash cannot be reversed by guessing, and a slow KDF (scrypt,
PBKDF2) would only add tens of milliseconds of CPU to every request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import string
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from feedback_loop.core.naming import check_model_name
from feedback_loop.core.timeutil import from_us
from feedback_loop.errors import ValidationError
from feedback_loop.store.engine import read_transaction, write_transaction
from feedback_loop.store.tables import api_keys

SCOPES = ("ingest", "read", "admin")
KEY_PATTERN = re.compile(r"fl_([a-z0-9]{8})_([A-Za-z0-9_-]{20,100})")
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
# Actions are recorded with the actor ``api:<key name>`` in a 200-character column.
MAX_NAME_LENGTH = 196
LAST_USED_EVERY_S = 60.0  # write last_used_at at most this often per key and process
# A verified key is trusted this long without a database read; a key revoked through another
# process stops working within this time (through this process, at once).
VERIFIED_FOR_S = 1.0


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name, scopes and the models it may touch (None: all)."""

    key_id: int | None
    name: str
    scopes: frozenset[str]
    models: frozenset[str] | None = None

    def has_scope(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models

    @property
    def actor(self) -> str:
        """How this caller is named in the audit trail."""
        return "api" if self.key_id is None else f"api:{self.name}"


ANONYMOUS = Principal(key_id=None, name="anonymous", scopes=frozenset({"admin"}))


@dataclass(frozen=True)
class KeyRecord:
    """A stored key, without its secret."""

    id: int
    name: str
    prefix: str
    scopes: list[str]
    models: list[str] | None
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "scopes": self.scopes,
            "models": self.models,
            "created_at": self.created_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
            "last_used_at": None if self.last_used_at is None else self.last_used_at.isoformat(),
        }


def principal_of(row: Any) -> Principal:
    """The caller an ``api_keys`` row stands for (the API's keys and the dashboard's sessions
    share it, so both faces see the same scopes and model limits)."""
    models = None if row.models is None else frozenset(json.loads(row.models))
    return Principal(row.id, row.name, frozenset(json.loads(row.scopes)), models)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _new_key() -> tuple[str, str]:
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(8))
    return prefix, f"fl_{prefix}_{secrets.token_urlsafe(32)}"


def _check_scopes(scopes: list[str]) -> list[str]:
    if not scopes:
        raise ValidationError(f"give at least one of {', '.join(SCOPES)}", field="scopes")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise ValidationError(
            f"unknown scope {unknown[0]!r}: use {', '.join(SCOPES)}", field="scopes"
        )
    return sorted(set(scopes), key=SCOPES.index)


def _record(row: Any) -> KeyRecord:
    return KeyRecord(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        scopes=json.loads(row.scopes),
        models=None if row.models is None else json.loads(row.models),
        created_at=from_us(row.created_at),
        revoked_at=None if row.revoked_at is None else from_us(row.revoked_at),
        last_used_at=None if row.last_used_at is None else from_us(row.last_used_at),
    )


class KeyStore:
    """Create, list, revoke and verify keys in the ``api_keys`` table."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._last_written: dict[int, float] = {}
        self._verified: dict[str, tuple[Principal, float]] = {}  # by hash: caller, trusted until
        self._lock = threading.Lock()

    def create(
        self, name: str, scopes: list[str], *, models: list[str] | None = None, now_us: int
    ) -> tuple[KeyRecord, str]:
        """A new key; the returned secret is not stored anywhere and cannot be shown again."""
        if not name.strip() or len(name) > MAX_NAME_LENGTH:
            raise ValidationError(f"must be 1 to {MAX_NAME_LENGTH} characters", field="name")
        chosen = _check_scopes(scopes)
        if models is not None and not models:
            raise ValidationError("name at least one model, or leave it out", field="models")
        for model in models or ():
            try:
                check_model_name(model)
            except ValidationError as exc:  # a limit no model could ever have
                raise ValidationError(f"{model!r}: {exc.message}", field="models") from None
        limits = None if models is None else json.dumps(sorted(set(models)))
        for _ in range(5):  # a prefix collision is a 1 in 36**8 event; retry anyway
            prefix, key = _new_key()
            with write_transaction(self.engine) as conn:
                taken = conn.execute(select(api_keys.c.id).where(api_keys.c.prefix == prefix))
                if taken.first() is not None:
                    continue
                key_id = conn.execute(
                    insert(api_keys)
                    .values(
                        name=name,
                        prefix=prefix,
                        hash=hash_key(key),
                        scopes=json.dumps(chosen),
                        models=limits,
                        created_at=now_us,
                    )
                    .returning(api_keys.c.id)
                ).scalar_one()
            record = self.find(int(key_id))
            assert record is not None
            return record, key
        raise RuntimeError("could not find a free key prefix")

    def find(self, key_id: int) -> KeyRecord | None:
        with read_transaction(self.engine) as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        return None if row is None else _record(row)

    def list_keys(self) -> list[KeyRecord]:
        with read_transaction(self.engine) as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.id)).all()
        return [_record(r) for r in rows]

    def revoke(self, key_id: int, *, now_us: int) -> KeyRecord | None:
        """Revoke a key from now on (revoking twice keeps the first time); None if unknown."""
        with write_transaction(self.engine) as conn:
            conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now_us)
            )
        with self._lock:
            self._verified.clear()
        return self.find(key_id)

    def recently_verified(self, key: str) -> Principal | None:
        """The caller of a key verified less than ``VERIFIED_FOR_S`` ago, without a database
        read (None: verify it)."""
        hashed = hash_key(key)
        with self._lock:
            found = self._verified.get(hashed)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def verify(self, key: str, *, now_us: int) -> Principal | None:
        """The caller a presented key stands for, or None if it is unknown, wrong or revoked."""
        match = KEY_PATTERN.fullmatch(key)
        if match is None:
            return None
        with read_transaction(self.engine) as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.prefix == match[1])).first()
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.hash, hash_key(key)):
            return None
        self._touch(row.id, now_us)
        principal = principal_of(row)
        with self._lock:
            if len(self._verified) > 10_000:  # only expired entries are lost
                self._verified.clear()
            self._verified[row.hash] = (principal, time.monotonic() + VERIFIED_FOR_S)
        return principal

    def _touch(self, key_id: int, now_us: int) -> None:
        """Record use, but not on every request: a write per call would contend with ingest."""
        now = time.monotonic()
        with self._lock:
            last = self._last_written.get(key_id)
            if last is not None and now - last < LAST_USED_EVERY_S:
                return
            self._last_written[key_id] = now
        with write_transaction(self.engine) as conn:
            conn.execute(
                update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now_us)
            )


_SECRETS_IN_TEXT = re.compile(
    r"(fl_[a-z0-9]{8}_)[A-Za-z0-9_-]+|((?:bearer|x-api-key:?)\s+)\S+", re.I
)


def redact(text: str) -> str:
    """Hide the secret part of any API key (or bearer token) in a message for logs or clients.

    >>> redact("bad key fl_abcd1234_s3cr3t and Authorization: Bearer xyz")
    'bad key fl_abcd1234_<redacted> and Authorization: Bearer <redacted>'
    """
    return _SECRETS_IN_TEXT.sub(lambda m: f"{m[1] or m[2]}<redacted>", text)
