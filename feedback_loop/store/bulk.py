"""Bulk transfer into a per-transaction staging table.

A batch is first copied into a temporary table (``executemany`` on SQLite, ``COPY`` on
PostgreSQL), then moved into the real tables by set-based SQL. The same statements then serve
both databases, and no batch is ever a Python loop of single-row statements.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection


def create_stage(conn: Connection, name: str, columns: Sequence[tuple[str, str]]) -> None:
    """A fresh, empty temporary table ``name`` with ``(column, sql_type)`` columns."""
    ddl = ", ".join(f"{column} {sql_type}" for column, sql_type in columns)
    # Not ON COMMIT DELETE ROWS: PostgreSQL implements it as a truncate (a new file) at every
    # commit, which costs more than the whole insert of a small batch. Emptied here instead.
    conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({ddl})")
    conn.exec_driver_sql(f"DELETE FROM {name}")


def fill_stage(
    conn: Connection, name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Copy ``rows`` (tuples in ``columns`` order) into the staging table."""
    raw = conn.connection.driver_connection
    assert raw is not None
    column_list = ", ".join(columns)
    if conn.dialect.name == "postgresql":
        with raw.cursor() as cursor, cursor.copy(f"COPY {name} ({column_list}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" for _ in columns)
    cursor = raw.cursor()
    try:
        cursor.executemany(f"INSERT INTO {name} ({column_list}) VALUES ({marks})", rows)
    finally:
        cursor.close()


def nullable(values: np.ndarray) -> list[Any]:
    """Floats with NaN as None (PostgreSQL would keep NaN as a number)."""
    missing = np.isnan(values)
    if missing.all():
        return [None] * len(values)
    if missing.any():
        boxed = values.astype(object)
        boxed[missing] = None
        out: list[Any] = boxed.tolist()
        return out
    return values.tolist()
