"""Database engines: one URL in, a configured SQLAlchemy engine out.

SQLite runs in WAL mode so readers never block the writer; write transactions start with
``BEGIN IMMEDIATE`` so two writers never fail on a lock upgrade, after taking the database's
writer lock (``writer_lock``). PostgreSQL goes through psycopg 3.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from feedback_loop.store import checkpoint
from feedback_loop.store.writer_lock import writer_lock

DEFAULT_DB_FILE = "feedback_loop.db"
ENV_DB = "FEEDBACK_LOOP_DB"


def default_url() -> str:
    """The ``FEEDBACK_LOOP_DB`` environment variable, else a SQLite file in the working folder."""
    return os.environ.get(ENV_DB) or f"sqlite:///{DEFAULT_DB_FILE}"


def normalize_url(url: str) -> str:
    """Accept the short forms users write and name the driver SQLAlchemy should use.

    >>> normalize_url("postgresql://localhost/feedback")
    'postgresql+psycopg://localhost/feedback'
    >>> normalize_url("feedback.db")
    'sqlite:///feedback.db'
    """
    if "://" not in url:
        return f"sqlite:///{url}"
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return str(
            parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        )
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return url
    if parsed.drivername == "postgresql+psycopg":
        return url
    raise ValueError(
        f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:///PATH or "
        "postgresql://HOST/DB"
    )


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def sqlite_path(engine: Engine) -> str:
    database = engine.url.database
    if not database or database == ":memory:":
        raise ValueError("an in-memory SQLite database cannot be shared; use a file path")
    if os.path.isabs(database):  # as make_engine leaves it: no file-system calls per write
        return database
    return str(Path(database).resolve())


def make_engine(url: str | None = None) -> Engine:
    """Create the engine for ``url`` (or the default), with the pragmas feedback-loop relies on."""
    full = normalize_url(url or default_url())
    if full.startswith("sqlite"):
        database = make_url(full).database
        if not database or database == ":memory:":
            raise ValueError(
                "feedback-loop needs a SQLite file (several connections share it); "
                "use sqlite:///PATH.db"
            )
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        absolute = make_url(full).set(database=str(Path(database).resolve()))
        engine = create_engine(absolute, connect_args={"timeout": 30})
        _configure_sqlite(engine)
        return engine
    return create_engine(full, pool_pre_ping=True)


def _configure_sqlite(engine: Engine) -> None:
    synchronous = os.environ.get("FEEDBACK_LOOP_SQLITE_SYNCHRONOUS", "NORMAL").upper()
    if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError("FEEDBACK_LOOP_SQLITE_SYNCHRONOUS must be OFF, NORMAL, FULL or EXTRA")
    background = checkpoint.in_background()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so BEGIN is ours to choose.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if background:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
            # A log that grew during a burst is cut back when it next starts over.
            cursor.execute(f"PRAGMA journal_size_limit={checkpoint.WAL_SIZE_LIMIT}")
        cursor.close()
        if background:
            checkpoint.ensure_checkpointer(sqlite_path(engine))

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: all of it commits, or none of it does."""
    if not is_sqlite(engine):
        with engine.begin() as conn:
            yield conn
        return
    with writer_lock(sqlite_path(engine)), engine.connect() as conn:
        conn = conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        with conn.begin():
            yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A consistent snapshot for reading."""
    with engine.connect() as conn, conn.begin():
        yield conn


Guard = Callable[[Connection], None]
"""A check run inside a write's own transaction before it writes (a worker's lease check):
when it raises, the transaction rolls back and nothing is written."""
