"""Ingest speed through the HTTP server: batched and single-prediction requests.

    python benchmarks/http_ingest.py [--pg [URL]] [--workers 1] [--clients 8] [--profile DIR]

Starts ``feedback-loop serve`` (SQLite in a temporary folder, or a throwaway PostgreSQL schema
with ``--pg``) with an API key, and measures, from this process:

* batched ingest: ``POST /predictions`` with 5,000-row batches from 2 threads, once with
  pre-encoded JSON (the server's own speed) and once through ``Client.log_predictions`` on a
  DataFrame (what a user sees, client encoding included);
* single predictions: ``Client.log_prediction`` from N threads, each with its own keep-alive
  connection, for a fixed time: requests/s and latency percentiles.

Prints one table beside the targets. ``--profile DIR`` samples the server with py-spy during
each phase and prints where its time goes (raw stacks are kept in DIR).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from pg_schema import temporary_schema
from rich.console import Console
from rich.table import Table

from feedback_loop.client import Client

TARGET_BATCH_PER_S = 50_000
TARGET_SINGLE_PER_S = 2_000
TARGET_P99_MS = 50.0
IDLE_FRAMES = ("Condition.wait", "EpollSelector.select", "Event.wait", "Queue.get", "sleep")


# -- the server -------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    pid: int
    key: str | None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "feedback_loop.cli", *args]


@contextmanager
def running_server(db_url: str, *, workers: int, auth: bool, log: Path) -> Iterator[Server]:
    """A server process on a free loopback port, ready, with an ingest key; stopped after."""
    port = _free_port()
    command = _cli("serve", "--host", "127.0.0.1", "--port", str(port), "--db", db_url)
    command += ["--workers", str(workers), *([] if auth else ["--no-auth"])]
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        key = None
        if auth:
            scopes = ("--scope", "ingest", "--scope", "read")
            made = subprocess.run(
                _cli("keys", "create", "--name", "bench", *scopes, "--db", db_url),
                capture_output=True,
                text=True,
                check=True,
            )
            key = made.stdout.strip()
        yield Server(url, process.pid, key)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- profiling --------------------------------------------------------------------------------


@contextmanager
def sampled(server: Server, folder: Path | None, name: str) -> Iterator[None]:
    """py-spy on the server while the block runs (nothing without a folder)."""
    if folder is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out = folder / f"{name}.txt"
    command = [spy, "record", "--subprocesses", "-p", str(server.pid), "-f", "raw", "-r", "200"]
    process = subprocess.Popen(
        [*command, "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)  # attached before the load starts
        yield
    finally:
        process.send_signal(2)  # SIGINT: py-spy writes what it sampled and exits
        process.wait(timeout=30)


# Where a busy sample of the server goes: the first category (in this order) any of whose marks
# is on its stack; whatever matches none is the HTTP stack itself.
CATEGORIES = (
    (
        "database: BEGIN (lock wait), inserts, commit",
        ("do_execute", "do_commit", "_insert_sqlite", "_insert_payloads", "fill_stage"),
    ),
    ("response: encoding the JSON answer", ("server/responses.py",)),
    ("library: canonical JSON of each row", ("canonical_json",)),
    ("library: parsing predictions and labels", ("feedback_loop/tasks.py", "parse_prediction")),
    ("request: pydantic validation and model_dump", ("pydantic/",)),
    ("request: JSON decoding of the body", ("json/decoder",)),
    (
        "library: other (frames, ids, codes, blocks)",
        (
            "feedback_loop/loop.py",
            "feedback_loop/ingest.py",
            "feedback_loop/recording.py",
            "feedback_loop/store/",
            "feedback_loop/timeutil.py",
        ),
    ),
)


def where_time_goes(path: Path) -> list[tuple[str, float]]:
    """Shares of the server's busy samples (idle waits left out) by category."""
    shares: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not stack or any(idle in frames[-1] for idle in IDLE_FRAMES):
            continue
        handling = [f for f in frames if "feedback_loop/server/serve.py" not in f]
        category = next(
            (
                name
                for name, marks in CATEGORIES
                if any(mark in frame for mark in marks for frame in handling[-40:])
            ),
            "HTTP stack: uvicorn, h11, Starlette, FastAPI, auth and other middleware, logs",
        )
        shares[category] += int(count)
    busy = sum(shares.values())
    return [(name, n / busy) for name, n in shares.most_common()] if busy else []


# -- load -------------------------------------------------------------------------------------


def prediction_rows(prefix: str, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Rows like a production classifier's: a scored label, five features, one tag."""
    score = rng.random(n)
    a, b = rng.normal(size=n), rng.integers(0, 100, n)
    plan = rng.choice(["free", "pro", "team"], n)
    return [
        {
            "prediction_id": f"{prefix}-{i}",
            "prediction": {"label": int(score[i] > 0.5), "score": float(score[i])},
            "features": {
                "a": float(a[i]),
                "b": int(b[i]),
                "plan": str(plan[i]),
                "tenure": i % 48,
                "active": bool(i % 3),
            },
            "tags": {"region": "eu" if i % 2 else "us"},
        }
        for i in range(n)
    ]


@dataclass
class Timings:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, values: list[float]) -> None:
        with self.lock:
            self.latencies.extend(values)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")


def in_threads(count: int, work: Callable[[int], list[float]]) -> Timings:
    """Run ``work(i)`` in ``count`` threads; wall time and every latency they report."""
    timings = Timings()
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            timings.add(work(i))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    timings.seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    return timings


def batch_raw(server: Server, model: str, bodies: list[bytes], threads: int) -> Timings:
    """Pre-encoded batches posted as fast as the server takes them."""
    headers = {"Content-Type": "application/json"}
    if server.key:
        headers["Authorization"] = f"Bearer {server.key}"

    def work(i: int) -> list[float]:
        out = []
        with httpx.Client(base_url=server.url, headers=headers, timeout=120) as http:
            for body in bodies[i::threads]:
                start = time.perf_counter()
                answer = http.post(f"/v1/models/{model}/predictions", content=body)
                out.append(time.perf_counter() - start)
                if answer.status_code != 201:
                    raise RuntimeError(f"{answer.status_code}: {answer.text[:300]}")
        return out

    return in_threads(threads, work)


def batch_client(server: Server, model: str, frames: list[pd.DataFrame], threads: int) -> Timings:
    """Batches through ``Client.log_predictions`` (DataFrame in, JSON encoding included)."""

    def work(i: int) -> list[float]:
        out = []
        with Client(server.url, model, api_key=server.key, timeout=120) as client:
            for frame in frames[i::threads]:
                start = time.perf_counter()
                client.log_predictions(frame)
                out.append(time.perf_counter() - start)
        return out

    return in_threads(threads, work)


def single(server: Server, model: str, clients: int, seconds: float, prefix: str) -> Timings:
    """``Client.log_prediction`` in a loop from each thread, for ``seconds``."""
    stop = time.perf_counter() + seconds

    def work(i: int) -> list[float]:
        out = []
        with Client(server.url, model, api_key=server.key, retries=0) as client:
            n = 0
            while time.perf_counter() < stop:
                start = time.perf_counter()
                client.log_prediction(
                    f"{prefix}{i}-{n}",
                    prediction={"label": n % 2, "score": 0.25 + (n % 2) / 2},
                    features={"a": 1.5, "b": n % 100, "plan": "pro"},
                    tags={"region": "eu"},
                )
                out.append(time.perf_counter() - start)
                n += 1
        return out

    return in_threads(clients, work)


def healthz(server: Server, clients: int, seconds: float) -> Timings:
    """``GET /healthz`` from each thread: what the HTTP stack alone costs on this machine."""
    stop = time.perf_counter() + seconds

    def work(_: int) -> list[float]:
        out = []
        with httpx.Client(base_url=server.url) as http:
            while time.perf_counter() < stop:
                start = time.perf_counter()
                http.get("/healthz").raise_for_status()
                out.append(time.perf_counter() - start)
        return out

    return in_threads(clients, work)


# -- report -----------------------------------------------------------------------------------


def _met(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[bold red]no[/]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pg",
        nargs="?",
        const=os.environ.get("FEEDBACK_LOOP_TEST_PG", "postgresql://127.0.0.1/test"),
        help="PostgreSQL URL (a throwaway schema is made in it); default: SQLite",
    )
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--batches", type=int, default=40, help="batches per batched phase")
    parser.add_argument("--batch-threads", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8, help="single-prediction threads")
    parser.add_argument("--seconds", type=float, default=10.0, help="single-prediction phase")
    parser.add_argument("--no-auth", action="store_true", help="serve without API keys")
    parser.add_argument("--profile", type=Path, help="sample the server with py-spy into DIR")
    args = parser.parse_args()
    console = Console()
    rng = np.random.default_rng(0)
    run = uuid.uuid4().hex[:6]

    with tempfile.TemporaryDirectory(prefix="feedback-loop-http-") as tmp:
        database = (
            temporary_schema(args.pg)
            if args.pg
            else nullcontext(f"sqlite:///{Path(tmp) / 'bench.db'}")
        )
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
        with (
            database as db_url,
            running_server(
                db_url, workers=args.workers, auth=not args.no_auth, log=Path(tmp) / "server.log"
            ) as server,
        ):
            kind = "PostgreSQL" if args.pg else "SQLite"
            console.log(f"server on {kind}, {args.workers} worker(s), at {server.url}")
            rows = args.batch_size * args.batches
            bodies = [
                json.dumps(
                    {"rows": prediction_rows(f"{run}-raw{b}", args.batch_size, rng)}
                ).encode()
                for b in range(args.batches)
            ]
            frames = [
                pd.DataFrame(prediction_rows(f"{run}-df{b}", args.batch_size, rng))
                for b in range(args.batches)
            ]
            batch_raw(server, "bench-batch", bodies[:1], 1)  # the model exists, its task is set
            with sampled(server, args.profile, "batch"):
                raw = batch_raw(server, "bench-batch", bodies[1:], args.batch_threads)
            console.log(f"raw batches: {(rows - args.batch_size) / raw.seconds:,.0f} rows/s")
            through = batch_client(server, "bench-batch", frames, args.batch_threads)
            console.log(f"Client batches: {rows / through.seconds:,.0f} rows/s")
            single(server, "bench-single", 1, 0.5, f"{run}-warm")
            with sampled(server, args.profile, "single"):
                one = single(server, "bench-single", args.clients, args.seconds, f"{run}-s")
            console.log(f"single: {len(one.latencies) / one.seconds:,.0f} requests/s")
            bare = healthz(server, args.clients, min(args.seconds, 3.0))
            with Client(server.url, "bench-batch", api_key=server.key) as check:
                stored = check.get_metrics(window="all")["predictions"]
            assert stored == 2 * rows, f"{stored} predictions stored, {2 * rows} sent"

    raw_rate = (rows - args.batch_size) / raw.seconds
    client_rate = rows / through.seconds
    single_rate = len(one.latencies) / one.seconds
    table = Table(
        title=f"HTTP ingest on {kind}: {args.workers} worker(s), "
        f"{'no auth' if args.no_auth else 'API key'}, {os.cpu_count()} CPUs "
        "(client and server on one machine)"
    )
    for column in ("measure", "measured", "target", "met"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    table.add_row(
        f"batched, pre-encoded JSON ({args.batch_size:,} rows × {args.batch_threads} threads)",
        f"{raw_rate:,.0f} predictions/s",
        f"≥ {TARGET_BATCH_PER_S:,}",
        _met(raw_rate >= TARGET_BATCH_PER_S),
    )
    table.add_row(
        "  batch request latency p50 / p99",
        f"{raw.percentile(50):,.0f} / {raw.percentile(99):,.0f} ms",
        "",
        "",
    )
    table.add_row(
        "batched, Client.log_predictions(DataFrame)",
        f"{client_rate:,.0f} predictions/s",
        f"≥ {TARGET_BATCH_PER_S:,}",
        _met(client_rate >= TARGET_BATCH_PER_S),
    )
    table.add_row(
        f"single Client.log_prediction, {args.clients} keep-alive clients",
        f"{single_rate:,.0f} requests/s",
        f"≥ {TARGET_SINGLE_PER_S:,}",
        _met(single_rate >= TARGET_SINGLE_PER_S),
    )
    p99 = one.percentile(99)
    table.add_row(
        "  single latency p50 / p95 / p99",
        f"{one.percentile(50):.1f} / {one.percentile(95):.1f} / {p99:.1f} ms",
        f"p99 ≤ {TARGET_P99_MS:.0f} ms",
        _met(p99 <= TARGET_P99_MS),
    )
    table.add_row(
        f"  for scale: GET /healthz, {args.clients} keep-alive clients",
        f"{len(bare.latencies) / bare.seconds:,.0f} requests/s",
        "",
        "",
    )
    console.print(table)
    if args.profile:
        for phase in ("batch", "single"):
            path = args.profile / f"{phase}.txt"
            if not path.exists():
                console.print(f"[yellow]no profile for {phase}: is py-spy installed?[/]")
                continue
            profile = Table(title=f"where the server's time goes, {phase} phase")
            profile.add_column("work")
            profile.add_column("share of busy samples", justify="right")
            for name, share in where_time_goes(path):
                profile.add_row(name, f"{share:.0%}")
            console.print(profile)


if __name__ == "__main__":
    main()
