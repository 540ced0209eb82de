"""A server killed with SIGKILL in the middle of an ingest loses nothing it acknowledged and
stores nothing twice.

A client thread sends 100 batches of 500 predictions with known ids to a real server on
PostgreSQL; three times during the load, the server process is killed (no shutdown of any kind)
and started again on the same database and port. A batch that failed meanwhile is sent again
once the server serves again, which is safe because its ids were fixed before the first
attempt. The predictions table is then read directly: every batch that got a 2xx is there, and
no id appears twice.

Everything waits for events, not for time: the sender stops before the batch past each kill
point until that kill has happened, and waits for the restarted server rather than running
through its batches while it is down, so the three kills happen mid-load however slow the
machine is. The time limits only turn a hang into a failure.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import psycopg
from servers import STOP_TIMEOUT_S, ServerProcess, free_port, wait_until

from feedback_loop.client import Client, ServerError

MODEL = "killed"
BATCHES = 100
ROWS = 500
KILL_AT = (15, 45, 75)  # batches attempted before each kill
AHEAD = 10  # batches the sender may run past a kill point before that kill happens
HANG_S = 600.0  # a wait this long is a hang, not a slow machine


def _batch(number: int) -> list[dict[str, object]]:
    return [
        {
            "prediction_id": f"b{number:03d}-r{row:03d}",
            "prediction": {"label": row % 2, "score": (row % 10) / 10},
            "features": {"batch": number, "row": row},
            "actual": (row // 2) % 2 if row % 3 == 0 else None,
        }
        for row in range(ROWS)
    ]


class Sender(threading.Thread):
    """Sends every batch, in order, until each is acknowledged; records the failed attempts.

    A failed batch is sent again once ``serving`` is set (the server is back); the batch
    ``KILL_AT[i] + AHEAD`` waits until kill ``i`` has happened (``kills``)."""

    def __init__(self, client: Client, numbers: list[int], serving: threading.Event):
        super().__init__(daemon=True)
        self.client = client
        self.numbers = numbers
        self.serving = serving
        self.kills = 0
        self.killed = threading.Condition()
        self.acked: list[int] = []
        self.failed: list[int] = []
        self.retried_rows = 0
        self.error: BaseException | None = None

    @property
    def attempts(self) -> int:
        return len(self.acked) + len(self.failed)

    def count_kill(self) -> None:
        with self.killed:
            self.kills += 1
            self.killed.notify_all()

    def run(self) -> None:
        try:
            for number in self.numbers:
                self._wait_for_kills_before(number)
                while not self._send(number):
                    if not self.serving.wait(HANG_S):
                        raise TimeoutError(f"the server did not come back for batch {number}")
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def _wait_for_kills_before(self, number: int) -> None:
        due = sum(1 for at in KILL_AT if number >= at + AHEAD)
        with self.killed:
            if not self.killed.wait_for(lambda: self.kills >= due, timeout=HANG_S):
                raise TimeoutError(f"kill {due} never happened before batch {number}")

    def _send(self, number: int) -> bool:
        try:
            result = self.client.log_predictions(_batch(number))
        except ServerError:
            self.failed.append(number)
            return False
        assert result.inserted + result.retried == ROWS
        self.retried_rows += result.retried
        self.acked.append(number)
        return True


def test_sigkill_mid_ingest_loses_no_acknowledged_row_and_stores_none_twice(
    pg_url: str, tmp_path: Path
) -> None:
    db_url = pg_url
    # One worker: the process killed is the one serving.
    server = ServerProcess(
        db_url,
        tmp_path / "server.log",
        port=free_port(),
        extra=("--workers", "1", "--no-auth"),
    ).start()
    # Few, quick retries: a batch sent while the server is down fails fast and is re-sent later.
    client = Client(server.url, MODEL, batch_size=ROWS, retries=2, backoff=0.05, timeout=120)
    serving = threading.Event()
    serving.set()
    sender = Sender(client, list(range(BATCHES)), serving)
    try:
        sender.start()
        rng = random.Random(0)
        acked_at_start = 0
        for threshold in KILL_AT:
            # Kill while the server is serving: past the threshold, and once it has acknowledged
            # a batch since it (re)started; a random pause varies where in a request it lands.
            wait_until(
                lambda at=threshold, since=acked_at_start: (
                    sender.error is not None
                    or (sender.attempts >= at and len(sender.acked) > since)
                ),
                f"{threshold} batches attempted",
                timeout=HANG_S,
                every=0.005,
            )
            assert sender.error is None, sender.error
            time.sleep(rng.uniform(0.0, 0.05))
            serving.clear()
            assert server.process is not None
            os.kill(server.pid, signal.SIGKILL)
            assert server.process.wait(timeout=STOP_TIMEOUT_S) == -signal.SIGKILL
            server.process = None
            sender.count_kill()
            acked_at_start = len(sender.acked)
            server.start()
            serving.set()
        sender.join(timeout=HANG_S)
        assert not sender.is_alive(), "the sender hung"
        assert sender.error is None, sender.error
        assert sender.kills == len(KILL_AT)
    finally:
        serving.set()
        client.close()
        server.stop()

    acked = set(sender.acked)
    assert acked == set(range(BATCHES))
    with psycopg.connect(db_url) as conn:
        stored = conn.execute(
            "SELECT p.prediction_id, COUNT(*) FROM predictions p "
            "JOIN models m ON m.id = p.model_id WHERE m.name = %s GROUP BY p.prediction_id",
            (MODEL,),
        ).fetchall()
        orphans = conn.execute(
            "SELECT COUNT(*) FROM prediction_payloads pp "
            "LEFT JOIN predictions p ON p.id = pp.id WHERE p.id IS NULL"
        ).fetchone()
    counts: dict[str, int] = dict(stored)
    first_pass = {f"b{n:03d}-r{r:03d}" for n in sender.acked for r in range(ROWS)}
    assert first_pass <= counts.keys(), "an acknowledged batch is missing"
    assert len(counts) == BATCHES * ROWS
    assert max(counts.values()) == 1, "an id was stored twice"
    assert orphans == (0,)
