"""Alembic environment: runs on the connection handed over by ``feedback_loop.store.migrate``."""

from __future__ import annotations

from alembic import context

from feedback_loop.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through feedback_loop.store.migrate
    raise RuntimeError("run migrations with `feedback-loop db upgrade`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
context.run_migrations()
