"""The jobs table: training work claimed by workers under leases.

A worker claims the oldest runnable job — queued, or running under a lease that expired (its
worker died) — provided no other job of the same model is running under a live lease: one job
per model at a time. PostgreSQL claims with ``FOR UPDATE SKIP LOCKED`` so that many workers can
share one database; SQLite claims under its single write lock.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from feedback_loop.errors import FeedbackLoopError
from feedback_loop.store.events import write_event


@dataclass(frozen=True)
class Job:
    id: int
    model_id: int
    kind: str
    status: str
    payload: dict[str, Any]
    attempts: int
    lease_owner: str | None
    lease_expires_at: int | None
    result: dict[str, Any] | None
    error: str | None


def _job(row: Any) -> Job:
    return Job(
        id=row.id,
        model_id=row.model_id,
        kind=row.kind,
        status=row.status,
        payload=json.loads(row.payload),
        attempts=row.attempts,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        result=None if row.result is None else json.loads(row.result),
        error=row.error,
    )


def enqueue(
    conn: Connection, model_id: int, kind: str, payload: dict[str, Any], now_us: int
) -> int | None:
    """Queue a job unless one of this kind is already queued or running for the model."""
    pending = conn.execute(
        text(
            "SELECT id FROM jobs WHERE model_id = :m AND kind = :k "
            "AND status IN ('queued', 'running')"
        ),
        {"m": model_id, "k": kind},
    ).first()
    if pending is not None:
        return None
    return int(
        conn.execute(
            text(
                "INSERT INTO jobs (model_id, kind, status, payload, created_at, updated_at, "
                "attempts) VALUES (:m, :k, 'queued', :p, :now, :now, 0) RETURNING id"
            ),
            {"m": model_id, "k": kind, "p": json.dumps(payload, default=str), "now": now_us},
        ).scalar_one()
    )


class LeaseLostError(FeedbackLoopError):
    """The worker no longer holds its job's lease (another worker took the job over)."""


DEFAULT_MAX_ATTEMPTS = 3


def claim(
    conn: Connection,
    worker: str,
    now_us: int,
    lease_us: int,
    model_id: int,
    max_attempts: int | None = None,
) -> Job | None:
    """Claim the oldest runnable job of ``model_id`` (the models this worker can train).

    A job already claimed ``max_attempts`` times without finishing (its workers died or lost
    their leases) is not run again: it is marked failed, with a ``job_failed`` event."""
    lock = " FOR UPDATE SKIP LOCKED" if conn.dialect.name == "postgresql" else ""
    while True:
        row = conn.execute(
            text(
                "SELECT * FROM jobs j WHERE j.model_id = :m AND (j.status = 'queued' OR "
                "(j.status = 'running' AND j.lease_expires_at < :now)) "
                "AND NOT EXISTS (SELECT 1 FROM jobs o WHERE o.model_id = j.model_id "
                "AND o.id <> j.id AND o.status = 'running' AND o.lease_expires_at >= :now) "
                f"ORDER BY j.created_at, j.id LIMIT 1{lock}"
            ),
            {"now": now_us, "m": model_id},
        ).first()
        if row is None:
            return None
        if max_attempts is not None and row.attempts >= max_attempts:
            _give_up(conn, row, worker, now_us, max_attempts)
            continue
        conn.execute(
            text(
                "UPDATE jobs SET status = 'running', lease_owner = :w, lease_expires_at = :until, "
                "attempts = attempts + 1, updated_at = :now WHERE id = :id"
            ),
            {"w": worker, "until": now_us + lease_us, "now": now_us, "id": row.id},
        )
        return get_job(conn, row.id)


def _give_up(conn: Connection, row: Any, worker: str, now_us: int, max_attempts: int) -> None:
    reason = (
        f"job {row.id} given up after {row.attempts} attempt(s) that never finished "
        f"(a worker died or lost its lease each time; at most {max_attempts})"
    )
    conn.execute(
        text(
            "UPDATE jobs SET status = 'failed', error = :e, lease_owner = NULL, "
            "lease_expires_at = NULL, updated_at = :now WHERE id = :id"
        ),
        {"e": reason, "now": now_us, "id": row.id},
    )
    write_event(
        conn,
        ts_us=now_us,
        kind="job_failed",
        model_id=row.model_id,
        version=None,
        actor=worker,
        reason=reason,
        evidence={"job": row.id, "attempts": row.attempts, "max_attempts": max_attempts},
    )


def heartbeat(
    conn: Connection,
    job_id: int,
    worker: str,
    now_us: int,
    lease_us: int,
    attempt: int | None = None,
) -> bool:
    """Extend the lease; False when the worker no longer holds it (the job moved on). With
    ``attempt``, the lease must also still be the one that claim gave (a fencing token: the
    same worker name claiming the job again is another lease)."""
    fenced = "" if attempt is None else " AND attempts = :a"
    updated = conn.execute(
        text(
            "UPDATE jobs SET lease_expires_at = :until, updated_at = :now "
            f"WHERE id = :id AND lease_owner = :w AND status = 'running'{fenced}"
        ),
        {"until": now_us + lease_us, "now": now_us, "id": job_id, "w": worker, "a": attempt},
    ).rowcount
    return bool(updated)


def fence(
    job_id: int, worker: str, attempt: int, now_us: Callable[[], int], lease_us: int
) -> Callable[[Connection], None]:
    """A guard for the writes of one attempt at a job: run first in each write's transaction,
    it renews the lease if this attempt still holds it and raises :class:`LeaseLostError`
    otherwise. The row update locks the job until the write commits, so a claim by another
    worker comes either before (and the write is refused) or after (and sees a live lease)."""

    def check(conn: Connection) -> None:
        if not heartbeat(conn, job_id, worker, now_us(), lease_us, attempt):
            raise LeaseLostError(
                f"job {job_id}: {worker} lost its lease (attempt {attempt}); not writing"
            )

    return check


def finish(
    conn: Connection,
    job_id: int,
    worker: str,
    now_us: int,
    *,
    status: str,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    attempt: int | None = None,
) -> bool:
    """Record the end of a job, only if ``worker`` still holds its lease (the lease of
    ``attempt``, when given)."""
    fenced = "" if attempt is None else " AND attempts = :a"
    updated = conn.execute(
        text(
            "UPDATE jobs SET status = :s, result = :r, error = :e, updated_at = :now, "
            "lease_expires_at = NULL WHERE id = :id AND lease_owner = :w AND status = 'running'"
            + fenced
        ),
        {
            "s": status,
            "r": None if result is None else json.dumps(result, default=str),
            "e": error,
            "now": now_us,
            "id": job_id,
            "w": worker,
            "a": attempt,
        },
    ).rowcount
    return bool(updated)


def get_job(conn: Connection, job_id: int) -> Job:
    return _job(conn.execute(text("SELECT * FROM jobs WHERE id = :id"), {"id": job_id}).one())


def list_jobs(conn: Connection, model_id: int | None = None, limit: int = 50) -> list[Job]:
    where = "WHERE model_id = :m" if model_id is not None else ""
    rows = conn.execute(
        text(f"SELECT * FROM jobs {where} ORDER BY created_at DESC, id DESC LIMIT :n"),
        {"m": model_id, "n": limit},
    )
    return [_job(r) for r in rows]
