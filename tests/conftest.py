"""Shared fixtures: every storage test runs on SQLite and on a real PostgreSQL.

PostgreSQL is found at ``FEEDBACK_LOOP_TEST_PG`` (default ``postgresql://127.0.0.1/test``).
Each test process (each xdist worker) makes a database of its own beside that one, dropped at
the end, and each test gets a schema of its own in it. A database per process, not only a
schema: the library's advisory locks are per database, so tests of other processes (another
worker, another run of the suite on the same server) would otherwise wait on each other's
locks on the same model ids. Without the right to create databases the schemas go in the
given database. In CI (``CI`` set) a missing PostgreSQL fails the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from psycopg import sql
from sqlalchemy.engine import make_url

from feedback_loop import ManualClock
from feedback_loop.loop import dispose_engines

# Property tests judge answers, not speed: no per-example deadline and no "too slow" health
# check, which a busy machine (another test run on the same cores) would trip.
settings.register_profile(
    "feedback-loop", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("feedback-loop")

PG_URL = os.environ.get("FEEDBACK_LOOP_TEST_PG", "postgresql://127.0.0.1/test")
_own_database: list[str] = []  # this process's database URL, once made


def _pg_available() -> str | None:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc)


_PG_ERROR = _pg_available()


def _database_url() -> str:
    """The URL of this process's own database, made on first use (else ``PG_URL``)."""
    if not _own_database:
        url = make_url(PG_URL)
        name = f"{url.database}_run_{uuid.uuid4().hex[:12]}"
        try:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.InsufficientPrivilege:
            _own_database.append(PG_URL)
        else:
            _own_database.append(url.set(database=name).render_as_string(hide_password=False))
    return _own_database[0]


@pytest.fixture(scope="session", autouse=True)
def _drop_own_database() -> Iterator[None]:
    yield
    if not _own_database or _own_database[0] == PG_URL:
        return
    dispose_engines()
    name = make_url(_own_database[0]).database
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextmanager
def postgres_schema() -> Iterator[str]:
    """The URL of a fresh PostgreSQL schema, dropped afterwards (a failure in CI, else a skip,
    when PostgreSQL is not reachable)."""
    if _PG_ERROR is not None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {_PG_ERROR}")
        pytest.skip(f"PostgreSQL not reachable: {_PG_ERROR}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    database = _database_url()
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{database}?options=-csearch_path%3D{schema}"
    finally:
        dispose_engines()
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A fresh, empty database URL (a SQLite file, or a PostgreSQL schema)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        dispose_engines()
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema only (for tests about PostgreSQL itself)."""
    with postgres_schema() as url:
        yield url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2024, 10, 18, 12, 0, tzinfo=UTC))


@pytest.fixture(scope="session", autouse=True)
def secret_key_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Webhook secrets are encrypted with a key made on first use: the suite's goes in a
    temporary folder (inherited by the server processes it starts), never the user's."""
    path = tmp_path_factory.mktemp("secret-key") / "secret.key"
    with pytest.MonkeyPatch.context() as env:
        env.delenv("FEEDBACK_LOOP_SECRET_KEY", raising=False)
        env.setenv("FEEDBACK_LOOP_SECRET_KEY_FILE", str(path))
        yield
