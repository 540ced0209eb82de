"""Outcomes (ground truth) and their join onto predictions.

Every outcome is kept (the history); the prediction row carries the current one, which is the
latest by outcome time (ties: the later arrival). An outcome whose prediction has not arrived yet
is kept unmatched and joined when the prediction comes.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
from sqlalchemy import Connection, text

from feedback_loop.store.blocks import add_labeled, mark_dirty_for
from feedback_loop.store.bulk import create_stage, fill_stage
from feedback_loop.store.reader import Rows, read_labeled_of

STAGE = "stage_outcomes"
_INSERTED = (
    "model_id, prediction_id, ts, source, actual, actual_code, actual_value, correct, matched, "
    "ingested_at"
)
_COLUMNS = (
    ("seq", "INTEGER"),
    ("prediction_id", "VARCHAR(200)"),
    ("ts", "BIGINT"),
    ("source", "VARCHAR(20)"),
    ("actual", "TEXT"),
    ("actual_code", "INTEGER"),
    ("actual_value", "DOUBLE PRECISION"),
    ("correct", "BOOLEAN"),
)


@dataclass(frozen=True)
class OutcomeResult:
    stored: int
    matched: int
    unmatched: int


@dataclass
class OutcomeRows:
    """Outcomes ready to store: labels already turned into codes."""

    prediction_id: list[str]
    ts: np.ndarray
    source: list[str]
    actual_json: list[str | None]
    actual_code: list[int | None]
    actual_value: list[float | None]
    correct: list[bool | None]


def insert_outcomes(
    conn: Connection, model_id: int, rows: OutcomeRows, now_us: int
) -> OutcomeResult:
    """Store outcomes and move each touched prediction to its latest outcome."""
    matched = insert_outcome_rows(conn, model_id, rows, now_us)
    n, found = len(matched), int(matched.sum())
    return OutcomeResult(stored=n, matched=found, unmatched=n - found)


def insert_outcome_rows(
    conn: Connection, model_id: int, rows: OutcomeRows, now_us: int
) -> np.ndarray:
    """``insert_outcomes``, answering row by row: whether each outcome found its prediction."""
    n = len(rows.prediction_id)
    if n == 0:
        return np.zeros(0, dtype=bool)
    columns = (
        rows.prediction_id,
        rows.ts.tolist(),
        rows.source,
        rows.actual_json,
        rows.actual_code,
        rows.actual_value,
        rows.correct,
    )
    if conn.dialect.name == "sqlite":
        unmatched, touched, params = _insert_sqlite(conn, model_id, columns, now_us)
    else:
        unmatched, touched, params = _insert_staged(conn, model_id, columns, now_us)
    matched = np.ones(n, dtype=bool)
    matched[unmatched] = False
    if conn.dialect.name == "sqlite":
        first = _only_outcomes(conn, model_id, params["first"])
        if first:
            _apply_only(conn, model_id, params["first"])
        else:
            apply_latest(conn, model_id, touched, **params)
    else:
        apply_latest(conn, model_id, touched, **params)
        first = _each_first(conn, model_id, touched, params)  # after the wait on its rows
    if first:  # every touched prediction was unlabeled: its row joins its block's labels
        add_labeled(conn, model_id, _labeled_now(conn, model_id, touched, params))
    else:  # a label replaced: the blocks are counted again from the log when read
        mark_dirty_for(conn, model_id, touched, **params)
    return matched


def _labeled_now(conn: Connection, model_id: int, touched: str, params: dict[str, Any]) -> Rows:
    """The rows of the predictions ``touched`` names (labeled by this write), as the blocks
    hold them."""
    regression = (
        conn.execute(
            text("SELECT task FROM models WHERE id = :m"), {"m": model_id}
        ).scalar_one_or_none()
        == "regression"
    )
    return read_labeled_of(conn, model_id, touched, params, regression=regression)


def _each_first(conn: Connection, model_id: int, touched: str, params: dict[str, Any]) -> bool:
    """Whether each prediction ``touched`` names has exactly one outcome (stored now).

    One aggregate over a semi-join: a ``GROUP BY … LIMIT 1`` lets PostgreSQL walk every outcome
    of the model in index order, probing the (unanalysed) staging table for each."""
    total, distinct = conn.execute(
        text(
            "SELECT COUNT(*), COUNT(DISTINCT prediction_id) FROM outcomes "
            f"WHERE model_id = :m AND prediction_id IN ({touched})"
        ),
        {"m": model_id, **params},
    ).one()
    return bool(total == distinct)


_Columns = tuple[list[Any], ...]


def _insert_sqlite(
    conn: Connection, model_id: int, columns: _Columns, now_us: int
) -> tuple[np.ndarray, str, dict[str, Any]]:
    """Straight into ``outcomes`` (SQLite holds the write lock: the new rows are the ids above
    the largest before, in batch order); returns the positions of the unmatched outcomes, usually
    none, and SQL selecting the prediction ids touched."""
    raw = conn.connection.driver_connection
    assert raw is not None
    n = len(columns[0])
    cursor = raw.cursor()
    try:
        before = cursor.execute("SELECT COALESCE(MAX(id), 0) FROM outcomes").fetchone()[0]
        cursor.executemany(
            f"INSERT INTO outcomes ({_INSERTED}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
            "EXISTS (SELECT 1 FROM predictions p WHERE p.model_id = ?1 AND p.prediction_id = ?2),"
            " ?9)",
            zip(repeat(model_id), *columns, repeat(now_us)),
        )
        lonely = cursor.execute(
            "SELECT id FROM outcomes WHERE model_id = ? AND matched = 0 AND id > ?",
            (model_id, before),
        ).fetchall()
        after = cursor.execute("SELECT MAX(id) FROM outcomes").fetchone()[0]
        ids = np.array([i for (i,) in lonely], dtype=np.int64)
        if after == before + n:  # the next n integers, in batch order
            unmatched = ids - before - 1
        else:
            new = cursor.execute("SELECT id FROM outcomes WHERE id > ? ORDER BY id", (before,))
            unmatched = np.searchsorted(np.array([i for (i,) in new], dtype=np.int64), ids)
    finally:
        cursor.close()
    touched = "SELECT prediction_id FROM outcomes WHERE model_id = :m AND id > :first"
    return unmatched, touched, {"first": before}


def _insert_staged(
    conn: Connection, model_id: int, columns: _Columns, now_us: int
) -> tuple[np.ndarray, str, dict[str, Any]]:
    """COPY into a staging table, then one INSERT ... SELECT (see ``_insert_sqlite``)."""
    n = len(columns[0])
    create_stage(conn, STAGE, _COLUMNS)
    fill_stage(conn, STAGE, [c for c, _ in _COLUMNS], zip(range(n), *columns, strict=True))
    params = {"m": model_id, "now": now_us}
    conn.execute(
        text(
            f"""
            INSERT INTO outcomes ({_INSERTED})
            SELECT :m, s.prediction_id, s.ts, s.source, s.actual, s.actual_code, s.actual_value,
                   s.correct,
                   EXISTS (SELECT 1 FROM predictions p
                           WHERE p.model_id = :m AND p.prediction_id = s.prediction_id),
                   :now
            FROM {STAGE} s ORDER BY s.seq
            """
        ),
        params,
    )
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT s.seq FROM {STAGE} s
            WHERE NOT EXISTS (SELECT 1 FROM predictions p
                              WHERE p.model_id = %s AND p.prediction_id = s.prediction_id)
            """,
            (model_id,),
        )
        unmatched = np.array([seq for (seq,) in cursor.fetchall()], dtype=np.int64)
    return unmatched, f"SELECT DISTINCT prediction_id FROM {STAGE}", {}


def _only_outcomes(conn: Connection, model_id: int, first: int) -> bool:
    """Whether every outcome above id ``first`` is the only one of its prediction (the usual
    case: one label per prediction), so it is the latest and the first without ranking."""
    shared = conn.execute(
        text(
            """
            SELECT 1 FROM outcomes o
            WHERE o.model_id = :m AND o.id > :first AND EXISTS (
                SELECT 1 FROM outcomes e
                WHERE e.model_id = :m AND e.prediction_id = o.prediction_id AND e.id <> o.id
            ) LIMIT 1
            """
        ),
        {"m": model_id, "first": first},
    ).first()
    return shared is None


def _apply_only(conn: Connection, model_id: int, first: int) -> None:
    """``apply_latest`` for outcomes above id ``first`` that are each their prediction's only
    one (see ``_only_outcomes``): a join on the new rows, no window over outcomes."""
    conn.execute(
        text(
            """
            UPDATE predictions SET
                actual_code = CASE WHEN o.correct IS NULL THEN o.actual_code
                                   WHEN o.correct THEN predictions.pred_code
                                   ELSE -1 END,
                actual_value = o.actual_value,
                actual_ts = o.ts,
                label_ts = o.ts
            FROM outcomes o
            WHERE o.model_id = :m AND o.id > :first
              AND predictions.model_id = :m AND predictions.prediction_id = o.prediction_id
            """
        ),
        {"m": model_id, "first": first},
    )


def apply_latest(conn: Connection, model_id: int, pid_query: str, **params: object) -> None:
    """Set each prediction named by ``pid_query`` to its latest outcome.

    The actual of thumbs-up feedback is the predicted label itself; thumbs-down records code -1,
    read as "some other class" by the metrics.

    The latest outcomes are ranked once, then joined (``MATERIALIZED`` on PostgreSQL): tables
    without statistics yet (a new model's first batches) are planned as holding one row, and
    the ranking inlined into the join was redone for every prediction of the model, seconds for
    a few hundred rows and quadratic beyond.
    """
    once = "MATERIALIZED " if conn.dialect.name == "postgresql" else ""
    conn.execute(
        text(
            f"""
            WITH o AS {once}(
                SELECT prediction_id, actual_code, actual_value, correct, ts, first_ts FROM (
                    SELECT prediction_id, actual_code, actual_value, correct, ts,
                           MIN(ts) OVER (PARTITION BY prediction_id) AS first_ts,
                           ROW_NUMBER() OVER (PARTITION BY prediction_id
                                              ORDER BY ts DESC, id DESC) AS rn
                    FROM outcomes
                    WHERE model_id = :m AND prediction_id IN ({pid_query})
                ) ranked WHERE rn = 1
            )
            UPDATE predictions SET
                actual_code = CASE WHEN o.correct IS NULL THEN o.actual_code
                                   WHEN o.correct THEN predictions.pred_code
                                   ELSE -1 END,
                actual_value = o.actual_value,
                actual_ts = o.ts,
                label_ts = o.first_ts
            FROM o
            WHERE predictions.model_id = :m AND predictions.prediction_id = o.prediction_id
            """
        ),
        {"m": model_id, **params},
    )


def join_pending(
    conn: Connection, model_id: int, new_ids_query: str, **params: object
) -> list[str]:
    """Join outcomes that arrived before their predictions; returns the prediction id of each
    outcome matched (an id appears once per outcome)."""
    # Usually none are waiting: an indexed probe is far cheaper than the UPDATE's plan, which
    # PostgreSQL may turn into a scan of every outcome.
    waiting = conn.execute(
        text("SELECT 1 FROM outcomes WHERE model_id = :m AND matched = :f LIMIT 1"),
        {"m": model_id, "f": False},
    ).first()
    if waiting is None:
        return []
    matched = list(
        conn.execute(
            text(
                f"""
                UPDATE outcomes SET matched = :t
                WHERE model_id = :m AND matched = :f AND prediction_id IN ({new_ids_query})
                RETURNING prediction_id
                """
            ),
            {"m": model_id, "t": True, "f": False, **params},
        ).scalars()
    )
    if matched:
        apply_latest(conn, model_id, new_ids_query, **params)
        mark_dirty_for(conn, model_id, new_ids_query, **params)
    return matched


def unmatched_count(conn: Connection, model_id: int) -> int:
    return int(
        conn.execute(
            text("SELECT COUNT(*) FROM outcomes WHERE model_id = :m AND matched = :f"),
            {"m": model_id, "f": False},
        ).scalar_one()
    )


def outcome_history(conn: Connection, model_id: int, prediction_id: str) -> list[dict[str, object]]:
    rows = conn.execute(
        text(
            """
            SELECT ts, source, actual, correct, ingested_at FROM outcomes
            WHERE model_id = :m AND prediction_id = :pid ORDER BY ts, id
            """
        ),
        {"m": model_id, "pid": prediction_id},
    )
    return [dict(r._mapping) for r in rows]
