"""A server killed with SIGKILL in the middle of an ingest loses nothing it acknowledged and
stores nothing twice.

A client thread sends 100 batches of 500 predictions with known ids to a real server on
PostgreSQL; three times during the load, the server process is killed (no shutdown of any kind)
and started again on the same database and port. Batches that failed meanwhile are sent again,
which is safe because their ids were fixed before the first attempt. The predictions table is
then read directly: every batch that got a 2xx is there, and no id appears twice.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psycopg

from feedback_loop.client import Client, ServerError

MODEL = "killed"
BATCHES = 100
ROWS = 500
KILL_AT = (15, 45, 75)  # batches attempted before each kill
DEADLINE_S = 240.0  # the whole test, start to finish


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve(db_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """One server process (one worker: the process killed is the one serving)."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "feedback_loop.cli", "serve", "--workers", "1"),
                *("--host", "127.0.0.1", "--port", str(port), "--db", db_url, "--no-auth"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    _stop(process)
    raise RuntimeError(f"the server did not become ready:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


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
    """Sends every batch once, in order; records which were acknowledged and which failed."""

    def __init__(self, client: Client, numbers: list[int]):
        super().__init__(daemon=True)
        self.client = client
        self.numbers = numbers
        self.acked: list[int] = []
        self.failed: list[int] = []
        self.retried_rows = 0

    @property
    def attempts(self) -> int:
        return len(self.acked) + len(self.failed)

    def run(self) -> None:
        for number in self.numbers:
            try:
                result = self.client.log_predictions(_batch(number))
            except ServerError:
                self.failed.append(number)
                continue
            assert result.inserted + result.retried == ROWS
            self.retried_rows += result.retried
            self.acked.append(number)


def test_sigkill_mid_ingest_loses_no_acknowledged_row_and_stores_none_twice(
    pg_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    db_url = pg_url
    port = _free_port()
    log = tmp_path / "server.log"
    server = _serve(db_url, port, log)
    # Few, quick retries: a batch sent while the server is down fails fast and is re-sent later.
    client = Client(
        f"http://127.0.0.1:{port}", MODEL, batch_size=ROWS, retries=2, backoff=0.05, timeout=10
    )
    sender = Sender(client, list(range(BATCHES)))
    try:
        sender.start()
        rng = random.Random(0)
        kills = 0
        acked_at_start = 0
        for threshold in KILL_AT:
            # Kill while the server is serving: past the threshold, and once it has acknowledged
            # a batch since it (re)started; a random pause varies where in a request it lands.
            while sender.is_alive() and (
                sender.attempts < threshold or len(sender.acked) == acked_at_start
            ):
                assert time.monotonic() - started < DEADLINE_S, "the load stalled"
                time.sleep(0.005)
            if not sender.is_alive():
                break
            time.sleep(rng.uniform(0.0, 0.05))
            os.kill(server.pid, signal.SIGKILL)
            assert server.wait(timeout=15) == -signal.SIGKILL
            kills += 1
            server = _serve(db_url, port, log)
            acked_at_start = len(sender.acked)
        sender.join(timeout=DEADLINE_S - (time.monotonic() - started))
        assert not sender.is_alive(), "the sender did not finish in time"
        assert kills >= 2, "the load ended before the server could be killed twice"

        again = Sender(client, list(sender.failed))  # the server is back: finish the job
        again.run()
        assert again.failed == [], "batches still failing after the restart"
    finally:
        client.close()
        _stop(server)

    acked = set(sender.acked) | set(again.acked)
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
    assert time.monotonic() - started < DEADLINE_S
