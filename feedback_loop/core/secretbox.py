"""Webhook secrets encrypted at rest, with a key kept outside the database.

Signing a body with HMAC needs the raw secret, so it cannot be stored as a hash as API keys
are. It is stored encrypted instead (Fernet: AES-128-CBC with an HMAC-SHA256 tag), as
``fernet:<token>``, so a dump or backup of the database does not reveal it. The key comes from
``FEEDBACK_LOOP_SECRET_KEY`` (a Fernet key), else from the file named by
``FEEDBACK_LOOP_SECRET_KEY_FILE`` (default ``~/.config/feedback-loop/secret.key``), which is
made with mode 0600 on first use. Whoever reads both the database and the key reads the secrets:
keep the key off the database's host and out of its backups, and give the CLI and every server
process the same key. A row stored before encryption (no ``fernet:`` prefix) is read as clear
text; migration 0009 encrypts such rows.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from feedback_loop.errors import FeedbackLoopError

ENV_KEY = "FEEDBACK_LOOP_SECRET_KEY"
ENV_KEY_FILE = "FEEDBACK_LOOP_SECRET_KEY_FILE"
PREFIX = "fernet:"


class SecretKeyError(FeedbackLoopError):
    """The secret key is malformed, or is not the key a stored secret was encrypted with."""


def key_file(environ: Mapping[str, str] | None = None) -> Path:
    """Where the key is kept when ``FEEDBACK_LOOP_SECRET_KEY`` is not set."""
    env = os.environ if environ is None else environ
    chosen = env.get(ENV_KEY_FILE)
    if chosen:
        return Path(chosen).expanduser()
    config = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "feedback-loop" / "secret.key"


def _read_or_create(path: Path) -> bytes:
    """The key in ``path``; a new one, readable by this user only, if there is none yet.
    ``O_EXCL`` makes two processes starting at once agree on one key."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as out:
        out.write(key + b"\n")
    return key


def _fernet(environ: Mapping[str, str] | None = None) -> Fernet:
    env = os.environ if environ is None else environ
    given = env.get(ENV_KEY)
    source = ENV_KEY
    if given:
        key = given.strip().encode()
    else:
        path = key_file(env)
        key, source = _read_or_create(path), str(path)
    try:
        return Fernet(key)
    except ValueError as exc:
        raise SecretKeyError(
            f"the secret key in {source} is not a Fernet key (32 url-safe base64-encoded bytes, "
            "as `python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'` prints)"
        ) from exc


def is_encrypted(stored: str) -> bool:
    return stored.startswith(PREFIX)


def encrypt(secret: str, environ: Mapping[str, str] | None = None) -> str:
    """The stored form of ``secret``."""
    return PREFIX + _fernet(environ).encrypt(secret.encode()).decode("ascii")


def decrypt(stored: str, environ: Mapping[str, str] | None = None) -> str:
    """The secret of a stored value (a clear-text row from before encryption as it is)."""
    if not is_encrypted(stored):
        return stored
    try:
        return _fernet(environ).decrypt(stored[len(PREFIX) :].encode("ascii")).decode()
    except InvalidToken as exc:
        raise SecretKeyError(
            "a webhook secret cannot be decrypted: this process's secret key "
            f"({ENV_KEY} or its key file) is not the one it was stored with"
        ) from exc
