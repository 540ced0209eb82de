"""Retention in the store: a model's horizon, its watermark, and dropping whole hours of rows.

A model's ``retention_us`` says how long its raw rows are kept; ``pruned_before`` is the
watermark of the last pass: every hour before it was pruned, and its monitoring summaries (the
metric blocks and drift summaries) are all that answer for it. Writers never mark an hour
before the watermark dirty (``blocks.mark_dirty``, ``summaries.mark_dirty``): a dirty hour is
recounted from its rows, and a pruned hour's rows are gone, so its kept counts would turn into
the counts of whatever few rows came late.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text


def pruned_before(conn: Connection, model_id: int) -> int | None:
    """The model's watermark: hours before it have been pruned (None: none yet)."""
    found = conn.execute(
        text("SELECT pruned_before FROM models WHERE id = :m"), {"m": model_id}
    ).scalar()
    return None if found is None else int(found)


def stored_retention(conn: Connection, model_id: int) -> int | None:
    """The model's retention in microseconds (None: its rows are kept for ever)."""
    found = conn.execute(
        text("SELECT retention_us FROM models WHERE id = :m"), {"m": model_id}
    ).scalar()
    return None if found is None else int(found)


def save_retention(conn: Connection, model_id: int, retention_us: int | None) -> None:
    conn.execute(
        text("UPDATE models SET retention_us = :r WHERE id = :m"),
        {"m": model_id, "r": retention_us},
    )


def raise_watermark(conn: Connection, model_id: int, horizon_us: int) -> None:
    """Move the watermark up to ``horizon_us`` (never down). Call under the exclusive lock."""
    conn.execute(
        text(
            "UPDATE models SET pruned_before = :h WHERE id = :m "
            "AND (pruned_before IS NULL OR pruned_before < :h)"
        ),
        {"m": model_id, "h": horizon_us},
    )


def hours_before(conn: Connection, model_id: int, horizon_us: int) -> list[int]:
    """The hours before ``horizon_us`` that hold predictions (every write makes its hours'
    metric blocks, so the blocks list them without a scan of the rows)."""
    found = conn.execute(
        text(
            "SELECT DISTINCT period FROM metric_blocks WHERE model_id = :m AND period < :h "
            "ORDER BY period"
        ),
        {"m": model_id, "h": horizon_us},
    ).scalars()
    return [int(p) for p in found]


def uncounted_hours(
    conn: Connection, model_id: int, layouts: list[str], start_us: int, end_us: int
) -> set[int]:
    """The hours of ``[start_us, end_us)`` whose counts are not all clean: a dirty metric block,
    or an ``(hour, version)`` holding predictions without a clean drift summary on one of
    ``layouts``. Their rows must stay until they are counted."""
    blocks = conn.execute(
        text(
            "SELECT period, version, n_predictions, data IS NULL AS dirty FROM metric_blocks "
            "WHERE model_id = :m AND period >= :a AND period < :b"
        ),
        {"m": model_id, "a": start_us, "b": end_us},
    ).all()
    uncounted = {int(r.period) for r in blocks if r.dirty}
    held = {(int(r.period), r.version) for r in blocks if not r.dirty and r.n_predictions > 0}
    for layout in layouts:
        clean = conn.execute(
            text(
                "SELECT period, version FROM drift_summaries WHERE model_id = :m "
                "AND layout = :l AND period >= :a AND period < :b AND data IS NOT NULL"
            ),
            {"m": model_id, "l": layout, "a": start_us, "b": end_us},
        ).all()
        counted = {(int(p), v) for p, v in clean}
        uncounted |= {p for p, v in held if (p, v) not in counted}
    return uncounted


@dataclass(frozen=True)
class Dropped:
    predictions: int = 0
    outcomes: int = 0

    def __add__(self, other: Dropped) -> Dropped:
        return Dropped(self.predictions + other.predictions, self.outcomes + other.outcomes)


def drop_rows(conn: Connection, model_id: int, start_us: int, end_us: int) -> Dropped:
    """Delete the predictions of ``[start_us, end_us)`` with their payloads (features) and
    their outcomes. Call under the exclusive lock, with the hours' counts clean."""
    params = {"m": model_id, "a": start_us, "b": end_us}
    chosen = "SELECT {} FROM predictions WHERE model_id = :m AND ts >= :a AND ts < :b"
    outcomes = conn.execute(
        text(
            "DELETE FROM outcomes WHERE model_id = :m "
            f"AND prediction_id IN ({chosen.format('prediction_id')})"
        ),
        params,
    ).rowcount
    conn.execute(
        text(f"DELETE FROM prediction_payloads WHERE id IN ({chosen.format('id')})"), params
    )
    predictions = conn.execute(
        text("DELETE FROM predictions WHERE model_id = :m AND ts >= :a AND ts < :b"), params
    ).rowcount
    return Dropped(int(predictions), int(outcomes))


def drop_unmatched_outcomes(conn: Connection, model_id: int, horizon_us: int) -> int:
    """Delete outcomes older than the horizon that never met their prediction."""
    return int(
        conn.execute(
            text(
                "DELETE FROM outcomes WHERE model_id = :m AND matched = :f AND ts < :h "
                "AND NOT EXISTS (SELECT 1 FROM predictions p WHERE p.model_id = :m "
                "AND p.prediction_id = outcomes.prediction_id)"
            ),
            {"m": model_id, "f": False, "h": horizon_us},
        ).rowcount
    )
