"""Two logs in two schemas of one PostgreSQL database never wait on each other's locks.

Advisory locks belong to the whole database, and every schema's first model is id 1: a lock
keyed by the model id alone made a bulk rebuild in one schema hold up every write in another.
"""

from __future__ import annotations

import pytest
from conftest import postgres_schema
from sqlalchemy import create_engine, text

from feedback_loop.store.blocks import lock_exclusive, lock_shared


def test_a_models_exclusive_lock_holds_its_own_schema_only(pg_url: str) -> None:
    with postgres_schema() as other_url:
        holder, other, same = (create_engine(u) for u in (pg_url, other_url, pg_url))
        try:
            with holder.begin() as held:
                lock_exclusive(held, 1)
                with other.begin() as conn:  # model 1 of another schema: not held up
                    conn.execute(text("SET LOCAL lock_timeout = '3s'"))
                    lock_shared(conn, 1)
                with same.begin() as conn, pytest.raises(Exception, match="lock timeout"):
                    conn.execute(text("SET LOCAL lock_timeout = '200ms'"))
                    lock_shared(conn, 1)  # model 1 of the same schema: held up, as it must be
        finally:
            for engine in (holder, other, same):
                engine.dispose()
