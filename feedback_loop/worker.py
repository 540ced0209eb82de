"""The worker: evaluates retraining policies on a schedule and runs training jobs.

Jobs live in the database, so any number of workers (on any number of machines sharing one
PostgreSQL) cooperate: each claims a job under a lease, keeps the lease alive with heartbeats
while it trains, and records the result. A worker that dies stops heartbeating; its lease expires
and another worker picks the job up again. Registration of the candidate is a single
transaction, so a job killed midway leaves no half-registered version.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from feedback_loop.archive.retention import RetentionResult
from feedback_loop.core.clock import Clock, SystemClock
from feedback_loop.core.timeutil import to_us
from feedback_loop.deploy.candidates import retrain
from feedback_loop.errors import UnknownModelError
from feedback_loop.loop import FeedbackLoop
from feedback_loop.retrain.policy import Policy
from feedback_loop.retrain.trainers import Trainer
from feedback_loop.store import jobs as jobs_store
from feedback_loop.store.engine import write_transaction
from feedback_loop.store.jobs import LeaseLostError

log = logging.getLogger("feedback_loop.worker")


@dataclass
class ModelJob:
    """What the worker knows of one model: its loop, trainer and (optional) policy."""

    loop: FeedbackLoop
    trainer: Trainer
    policy: Policy | None = None
    with_drift: bool = False
    with_estimate: bool = False


@dataclass
class Worker:
    models: dict[str, ModelJob]
    name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    lease: timedelta = timedelta(minutes=5)
    heartbeat_every: timedelta = timedelta(seconds=30)
    clock: Clock = field(default_factory=SystemClock)
    max_attempts: int = jobs_store.DEFAULT_MAX_ATTEMPTS

    def _now(self) -> int:
        return to_us(self.clock.now())

    def evaluate_policies(self) -> list[str]:
        """Queue a training job for every model whose policy fires; returns their names."""
        queued = []
        for name, job in self.models.items():
            if job.policy is None:
                continue
            try:
                evidence = job.loop.policy_evidence(
                    with_drift=job.with_drift, with_estimate=job.with_estimate
                )
            except UnknownModelError:  # nothing logged to it yet: nothing to evaluate
                continue
            decision = job.policy.evaluate(evidence)
            if not decision:
                continue
            state = job.loop.handle.model_state()
            with write_transaction(job.loop.engine) as conn:
                job_id = jobs_store.enqueue(
                    conn,
                    state.id,
                    "train",
                    {"reason": decision.reason, "actor": "policy"},
                    self._now(),
                )
            if job_id is not None:
                job.loop.record_event(
                    "retrain_due",
                    reason=decision.reason,
                    actor=self.name,
                    evidence=decision.to_dict(),
                )
                queued.append(name)
        return queued

    def apply_retention(self) -> list[RetentionResult]:
        """One retention pass over every model (those without a retention keep their rows)."""
        done = []
        for job in self.models.values():
            try:
                done.append(job.loop.apply_retention())
            except UnknownModelError:  # nothing logged to it yet: nothing to drop
                continue
        return done

    def run_once(self) -> dict[str, Any] | None:
        """Claim and run one job; None when there was nothing to do."""
        for name, model in self.models.items():
            try:
                model_id = model.loop.handle.read_state().id
            except UnknownModelError:  # never logged to: it has no jobs
                continue
            with write_transaction(model.loop.engine) as conn:
                job = jobs_store.claim(
                    conn, self.name, self._now(), _us(self.lease), model_id, self.max_attempts
                )
            if job is None:
                continue
            log.info("job %s (%s) claimed by %s, attempt %s", job.id, name, self.name, job.attempts)
            return self._run(model, job)
        return None

    def _run(self, model: ModelJob, job: jobs_store.Job) -> dict[str, Any]:
        """Run one claimed attempt. Every write of the retraining first checks, in its own
        transaction, that this attempt still holds the lease: a worker that paused past its
        lease while another took the job over writes nothing more (no second version)."""
        engine = model.loop.engine
        lease_us = _us(self.lease)
        stop = threading.Event()
        lost = threading.Event()

        def beat() -> None:
            while not stop.wait(self.heartbeat_every.total_seconds()):
                with write_transaction(engine) as conn:
                    alive = jobs_store.heartbeat(
                        conn, job.id, self.name, self._now(), lease_us, job.attempts
                    )
                if not alive:
                    lost.set()
                    return

        beating = threading.Thread(target=beat, name=f"heartbeat-{job.id}", daemon=True)
        beating.start()
        guard = jobs_store.fence(job.id, self.name, job.attempts, self._now, lease_us)
        try:
            outcome = retrain(
                model.loop.handle,
                model.trainer,
                spec=model.loop.dataset_spec,
                gate=model.loop.gate_config,
                reason=str(job.payload.get("reason", "job")),
                actor=self.name,
                guard=guard,
            )
            status, result = ("failed" if outcome.failed else "succeeded"), outcome.to_dict()
            error = outcome.reason if outcome.failed else None
        except LeaseLostError as exc:  # another worker owns the job now: leave it alone
            log.warning("job %s: %s", job.id, exc)
            lost.set()
            status, result, error = "lost_lease", None, str(exc)
        except Exception as exc:  # recorded on the job; the worker keeps running
            log.exception("job %s failed", job.id)
            status, result, error = "failed", None, f"{type(exc).__name__}: {exc}"
        finally:
            stop.set()
            beating.join()
        if status != "lost_lease":
            with write_transaction(engine) as conn:
                finished = jobs_store.finish(
                    conn,
                    job.id,
                    self.name,
                    self._now(),
                    status=status,
                    result=result,
                    error=error,
                    attempt=job.attempts,
                )
            if not finished:  # another attempt owns the job: this outcome was not recorded
                lost.set()
                status = "lost_lease"
        return {
            "job": job.id,
            "status": status,
            "lost_lease": lost.is_set(),
            "result": result,
            "error": error,
        }

    def run_forever(
        self,
        poll: timedelta = timedelta(seconds=10),
        policy_every: timedelta = timedelta(minutes=1),
        stop: threading.Event | None = None,
        retention_every: timedelta = timedelta(hours=1),
    ) -> None:
        stop = stop or threading.Event()
        next_policy = next_retention = 0.0
        while not stop.is_set():
            if time.monotonic() >= next_retention:
                self.apply_retention()
                next_retention = time.monotonic() + retention_every.total_seconds()
            if time.monotonic() >= next_policy:
                self.evaluate_policies()
                next_policy = time.monotonic() + policy_every.total_seconds()
            if self.run_once() is None:
                stop.wait(poll.total_seconds())


def _us(span: timedelta) -> int:
    return int(span.total_seconds() * 1_000_000)
