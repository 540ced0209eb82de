"""API keys: only a hash is stored, scopes and model limits hold, revocation is immediate,
and the CLI shows a key once."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from feedback_loop import ValidationError
from feedback_loop.cli import app
from feedback_loop.server.keys import KeyStore, Principal, redact
from feedback_loop.server.serve import RedactSecrets
from feedback_loop.store.engine import make_engine
from feedback_loop.store.migrate import ensure_schema
from feedback_loop.store.tables import api_keys

runner = CliRunner()
NOW = 1_700_000_000_000_000


@pytest.fixture
def store(db_url) -> Iterator[KeyStore]:
    engine = make_engine(db_url)
    ensure_schema(engine)
    yield KeyStore(engine)
    engine.dispose()


def test_only_a_hash_of_the_key_is_stored(store: KeyStore) -> None:
    record, key = store.create("ingester", ["ingest"], now_us=NOW)
    assert key.startswith(f"fl_{record.prefix}_") and len(record.prefix) == 8
    with store.engine.connect() as conn:
        row = conn.execute(select(api_keys)).one()
    stored = [str(v) for v in row]
    secret = key.split("_", 2)[2]
    assert not any(secret in value for value in stored)
    assert row.hash == hashlib.sha256(key.encode()).hexdigest()
    assert row.prefix == record.prefix
    # two keys never share a prefix or a secret
    _, other = store.create("ingester", ["ingest"], now_us=NOW)
    assert other.split("_")[1] != record.prefix and other != key


def test_verify_scopes_limits_and_revocation(store: KeyStore) -> None:
    record, key = store.create("reader", ["read", "ingest", "read"], models=["a", "b"], now_us=NOW)
    assert record.scopes == ["ingest", "read"] and record.models == ["a", "b"]
    found = store.verify(key, now_us=NOW + 1)
    assert found == Principal(record.id, "reader", frozenset({"ingest", "read"}), frozenset("ab"))
    assert found.has_scope("read") and not found.has_scope("admin")
    assert found.may_use("a") and not found.may_use("c")
    assert found.actor == "api:reader"
    assert store.find(record.id).last_used_at is not None

    wrong_secret = key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")
    assert store.verify(wrong_secret, now_us=NOW) is None
    assert store.verify("fl_zzzzzzzz_" + "a" * 43, now_us=NOW) is None  # unknown prefix
    assert store.verify("not-a-key", now_us=NOW) is None

    revoked = store.revoke(record.id, now_us=NOW + 5)
    assert revoked is not None and revoked.revoked_at is not None
    assert store.verify(key, now_us=NOW + 6) is None
    again = store.revoke(record.id, now_us=NOW + 9)
    assert again is not None and again.revoked_at == revoked.revoked_at  # first time kept
    assert store.revoke(12345, now_us=NOW) is None

    admin = store.verify(store.create("root", ["admin"], now_us=NOW)[1], now_us=NOW)
    assert admin is not None and admin.models is None
    assert all(admin.has_scope(s) for s in ("ingest", "read", "admin")) and admin.may_use("any")


@pytest.mark.parametrize(
    ("name", "scopes", "models", "field"),
    [
        ("k", [], None, "scopes"),
        ("k", ["write"], None, "scopes"),
        ("", ["read"], None, "name"),
        ("k", ["read"], [], "models"),
    ],
)
def test_bad_key_requests(store: KeyStore, name, scopes, models, field) -> None:
    with pytest.raises(ValidationError) as caught:
        store.create(name, scopes, models=models, now_us=NOW)
    assert caught.value.field == field


def test_keys_never_reach_logs() -> None:
    key = "fl_abcd1234_" + "S3cr3t-" * 6
    assert "S3cr3t" not in redact(f"rejected {key}")
    assert redact("Authorization: Bearer sometoken") == "Authorization: Bearer <redacted>"
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s" %d',
        ("1.2.3.4", f"GET /?k={key}", 200),
        None,
    )
    RedactSecrets().filter(record)
    assert "S3cr3t" not in record.getMessage() and "fl_abcd1234_<redacted>" in record.getMessage()


def test_cli_create_list_revoke(db_url) -> None:
    made = runner.invoke(
        app,
        [
            "keys",
            "create",
            "--name",
            "etl",
            "--scope",
            "ingest",
            "--scope",
            "read",
            "--model",
            "churn",
            "--db",
            db_url,
        ],
    )
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    assert key.startswith("fl_") and len(key.splitlines()) == 1  # the key alone on stdout
    prefix = key.split("_")[1]

    listed = runner.invoke(app, ["keys", "list", "--db", db_url, "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["name"], row["prefix"], row["scopes"], row["models"]) == (
        "etl",
        prefix,
        ["ingest", "read"],
        ["churn"],
    )
    assert key.split("_", 2)[2] not in listed.output
    table = runner.invoke(app, ["keys", "list", "--db", db_url])
    assert prefix in table.output and "etl" in table.output

    revoked = runner.invoke(app, ["keys", "revoke", str(row["id"]), "--db", db_url])
    assert revoked.exit_code == 0 and "revoked key" in revoked.output
    engine = make_engine(db_url)
    assert KeyStore(engine).verify(key, now_us=NOW) is None
    engine.dispose()

    assert runner.invoke(app, ["keys", "revoke", "999", "--db", db_url]).exit_code == 1
    bad = runner.invoke(app, ["keys", "create", "--name", "x", "--scope", "root", "--db", db_url])
    assert bad.exit_code == 1 and "unknown scope" in bad.output


def test_a_verified_key_is_trusted_briefly(store: KeyStore, monkeypatch) -> None:
    import feedback_loop.server.keys as keys_module

    record, key = store.create("svc", ["ingest"], now_us=NOW)
    assert store.recently_verified(key) is None  # never verified yet
    principal = store.verify(key, now_us=NOW)
    assert principal is not None and store.recently_verified(key) == principal
    assert store.recently_verified(key + "x") is None  # another key is not trusted by it

    # Revoked through another process (here: another store), it is trusted for the moment...
    KeyStore(store.engine).revoke(record.id, now_us=NOW + 1)
    assert store.recently_verified(key) == principal
    # ...and not once the moment has passed.
    later = time.monotonic() + keys_module.VERIFIED_FOR_S + 0.01
    monkeypatch.setattr(keys_module.time, "monotonic", lambda: later)
    assert store.recently_verified(key) is None
    assert store.verify(key, now_us=NOW + 2) is None
    monkeypatch.undo()

    # Revoked through this store: distrusted at once.
    record2, key2 = store.create("svc2", ["ingest"], now_us=NOW)
    assert store.verify(key2, now_us=NOW) is not None
    store.revoke(record2.id, now_us=NOW + 3)
    assert store.recently_verified(key2) is None
