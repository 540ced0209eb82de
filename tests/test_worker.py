"""The worker: a job killed midway leaves nothing half-registered and completes on retry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from servers import wait_until

from feedback_loop import FeedbackLoop, ManualClock
from feedback_loop.project import load_worker
from feedback_loop.store import jobs as jobs_store
from feedback_loop.store.engine import read_transaction

TRAIN = textwrap.dedent(
    """
    import os, sys, time
    import joblib, pandas as pd
    from sklearn.linear_model import LogisticRegression
    data = pd.read_parquet(sys.argv[1])
    if os.environ.get("TRAIN_STARTED"):  # tell the test that training is under way
        open(os.environ["TRAIN_STARTED"], "w").close()
    time.sleep(float(os.environ.get("TRAIN_SLEEP", "0")))
    y = data.pop("__label__")
    data.pop("__weight__") if "__weight__" in data else None
    joblib.dump(LogisticRegression().fit(data, y), sys.argv[2])
    """
)


def _project(tmp_path: Path) -> Path:
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    project = tmp_path / "feedback_loop.toml"
    project.write_text(
        textwrap.dedent(
            f"""
            [models.m]
            task = "binary"
            [models.m.trainer]
            command = "{sys.executable} {script} {{data}} {{out}}"
            [models.m.dataset]
            window = "30d"
            holdout = 0.25
            recent_shares = [1.0]  # one candidate: each is a Python start-up of the command
            """
        )
    )
    return project


def _seed(loop: FeedbackLoop) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    loop.log_predictions(
        [
            {
                "prediction_id": f"p{i}",
                "prediction": int(v > 0),
                "actual": int(v > 0.1),
                "x": float(v),
                "timestamp": datetime.now(UTC) - timedelta(minutes=400 - i),
            }
            for i, v in enumerate(x)
        ]
    )


def _job_status(loop: FeedbackLoop) -> tuple[str, int]:
    with read_transaction(loop.engine) as conn:
        job = jobs_store.list_jobs(conn)[0]
    return job.status, job.attempts


def test_killed_worker_leaves_no_version_and_job_completes(db_url, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    project = _project(tmp_path)
    loop = FeedbackLoop("m", tracking_db=db_url, task="binary")
    _seed(loop)
    queued = loop.trigger_retraining("nightly")
    assert queued.evidence["job"] is not None

    started = tmp_path / "training-started"
    env = {**os.environ, "TRAIN_SLEEP": "600", "TRAIN_STARTED": str(started)}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "feedback_loop.cli",
            "worker",
            "--config",
            str(project),
            "--db",
            db_url,
            "--once",
        ],
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )

    def training() -> bool:
        assert worker.poll() is None, worker.stdout.read() if worker.stdout else ""
        return started.exists()

    # generous: a busy host starts Python (twice) slowly
    wait_until(training, "the worker's training command to start", timeout=600, every=0.2)
    assert _job_status(loop) == ("running", 1)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)

    assert loop.versions() == []
    assert _job_status(loop) == ("running", 1)

    later = load_worker(project, db_url)
    later.clock = ManualClock(datetime.now(UTC) + timedelta(minutes=10))  # the lease expired
    done = later.run_once()
    assert done is not None and done["status"] == "succeeded", done
    assert _job_status(loop) == ("succeeded", 2)
    assert [v.version for v in loop.versions()] == [1]
    assert loop.aliases()["champion"] == 1  # the first candidate has no champion to beat
    assert later.run_once() is None


def test_claims_leases_and_skip_locked(db_url, clock) -> None:
    from feedback_loop.store.engine import write_transaction

    a = FeedbackLoop("a", tracking_db=db_url, clock=clock, task="binary")
    b = FeedbackLoop("b", tracking_db=db_url, clock=clock, task="binary")
    ids = {name: loop.handle.model_state().id for name, loop in (("a", a), ("b", b))}
    now = 1_000_000_000
    with write_transaction(a.engine) as conn:
        first = jobs_store.enqueue(conn, ids["a"], "train", {}, now)
        assert jobs_store.enqueue(conn, ids["a"], "train", {}, now) is None  # one at a time
        jobs_store.enqueue(conn, ids["b"], "train", {}, now)
    lease = 60_000_000
    with write_transaction(a.engine) as conn:
        job = jobs_store.claim(conn, "w1", now, lease, ids["a"])
    assert job is not None and job.id == first and job.attempts == 1
    with write_transaction(a.engine) as conn:
        assert jobs_store.claim(conn, "w2", now + 1, lease, ids["a"]) is None  # leased
        assert not jobs_store.heartbeat(conn, first, "w2", now + 2, lease)  # not the owner
        assert jobs_store.heartbeat(conn, first, "w1", now + 2, lease)
    with write_transaction(a.engine) as conn:  # w1 went silent: its lease runs out
        again = jobs_store.claim(conn, "w2", now + 2 + lease + 1, lease, ids["a"])
    assert again is not None and again.id == first and again.attempts == 2
    with write_transaction(a.engine) as conn:
        assert not jobs_store.finish(conn, first, "w1", now + lease * 3, status="succeeded")
        assert jobs_store.finish(conn, first, "w2", now + lease * 3, status="succeeded")

    if a.engine.dialect.name == "postgresql":
        # two workers claiming at the same moment: SKIP LOCKED hands them different rows
        with write_transaction(a.engine) as conn:
            jobs_store.enqueue(conn, ids["a"], "train", {}, now)
        with a.engine.connect() as one, one.begin():
            held = jobs_store.claim(one, "w1", now, lease, ids["b"])
            assert held is not None
            with a.engine.connect() as two, two.begin():
                assert jobs_store.claim(two, "w2", now, lease, ids["b"]) is None
                other = jobs_store.claim(two, "w2", now, lease, ids["a"])
                assert other is not None and other.id != held.id


def test_a_model_without_a_policy_table_gets_the_default_policy(db_url, tmp_path) -> None:
    """The worker looks after a model as ``FeedbackLoop`` does when no policy is set: the
    default policy, with the drift check as evidence."""
    from feedback_loop.project import load_worker

    project = _project(tmp_path)
    job = load_worker(project, db_url).models["m"]
    assert job.policy is not None and job.policy.name == "default"
    assert job.with_drift
    project.write_text(
        project.read_text() + '[models.m.policy]\ncooldown = "1d"\n'
        '[[models.m.policy.rules]]\ntype = "threshold"\nmax_drop = 0.05\n'
    )
    declared = load_worker(project, db_url).models["m"]
    assert declared.policy is not None and declared.policy.name != "default"
    assert not declared.with_drift
