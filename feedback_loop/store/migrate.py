"""Apply the Alembic migrations shipped inside the package.

``ensure_schema`` runs on first use of a database and costs one small query once the schema is
current. Concurrent first uses are serialised (an advisory lock on PostgreSQL, the write lock on
SQLite), so two processes starting together do not both create tables.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from feedback_loop.store.engine import write_transaction

_MIGRATIONS = Path(__file__).parent / "migrations"
# the advisory lock for schema changes, one per schema (advisory locks are database-wide)
_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext('feedback_loop.migrate:' || current_schema()))"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def is_current(engine: Engine) -> bool:
    with engine.connect() as conn:
        return current_revision(conn) == head_revision()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the schema to ``revision``; returns the revision now in place."""
    return _migrate(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> str | None:
    """Take the schema back to ``revision`` (an older layout, for testing its upgrade)."""
    return _migrate(engine, command.downgrade, revision)


def _migrate(engine: Engine, step: Callable[[Config, str], None], revision: str) -> str | None:
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(_LOCK_SQL))
        config = _config()
        config.attributes["connection"] = conn
        step(config, revision)
        return current_revision(conn)


def ensure_schema(engine: Engine) -> None:
    if not is_current(engine):
        upgrade(engine)
