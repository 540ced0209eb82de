"""Ingest speed through the HTTP server: batched and single-prediction requests.

    python benchmarks/http_ingest.py [--pg [URL]] [--workers 1] [--clients 8] [--profile DIR]

Starts ``feedback-loop serve`` (SQLite in a temporary folder, or a throwaway PostgreSQL schema
with ``--pg``) with an API key, and measures, from this process:

* batched ingest: ``POST /predictions`` with 5,000-row batches from 2 threads, once with
  pre-encoded JSON (the server's own speed) and once through ``Client.log_predictions`` on a
  DataFrame (what a user sees, client encoding included);
* single predictions, the server's speed: ``POST /prediction`` from wrk (a load generator in
  C, ``apt-get install wrk``) over N keep-alive connections, each request a new prediction, for a
  fixed time: requests/s and latency percentiles; then a check that every answered request is
  stored. Without wrk this phase is skipped with a hint;
* single predictions through ``Client.log_prediction`` from N Python threads (what a Python
  caller on the same machine sees: the client's own work under one GIL is most of it).

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
    (
        "library: parsing predictions and labels",
        ("feedback_loop/core/tasks.py", "parse_prediction"),
    ),
    ("request: pydantic validation and model_dump", ("pydantic/",)),
    ("request: JSON decoding of the body", ("json/decoder",)),
    (
        "library: other (frames, ids, codes, blocks)",
        (
            "feedback_loop/loop.py",
            "feedback_loop/collect/",
            "feedback_loop/store/",
            "feedback_loop/core/timeutil.py",
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


WRK_SCRIPT = r"""
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  prefix = args[1] .. tid .. "-"
  counter = 0
end
request = function()
  counter = counter + 1
  local body = string.format(
    '{"prediction_id":"%s%d","prediction":{"label":%d,"score":%.2f},' ..
    '"features":{"a":1.5,"b":%d,"plan":"pro"},"tags":{"region":"eu"}}',
    prefix, counter, counter % 2, 0.25 + (counter % 2) / 2, counter % 100)
  return wrk.format("POST", nil, nil, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\n{"requests":%d,"duration_us":%d,"socket_errors":%d,"non_2xx":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
"""


@dataclass
class WrkRun:
    requests: int
    seconds: float
    failed: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def single_wrk(
    server: Server, model: str, connections: int, seconds: float, prefix: str, folder: Path
) -> WrkRun | None:
    """wrk posting single predictions over ``connections`` keep-alive connections."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    script = folder / "single.lua"
    script.write_text(WRK_SCRIPT)
    command = [wrk, "-t2", f"-c{connections}", f"-d{seconds:.0f}s", "-s", str(script)]
    command += ["-H", "Content-Type: application/json"]
    if server.key:
        command += ["-H", f"Authorization: Bearer {server.key}"]
    command += [f"{server.url}/v1/models/{model}/prediction", "--", prefix]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    found = json.loads(next(line for line in reversed(out.splitlines()) if line.startswith("{")))
    return WrkRun(
        requests=found["requests"],
        seconds=found["duration_us"] / 1e6,
        failed=found["socket_errors"] + found["non_2xx"],
        **{f"{q}_ms": found[q] / 1000 for q in ("p50", "p90", "p99", "p999")},
        max_ms=found["max"] / 1000,
    )


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
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of the raw-batch and wrk phases (median)"
    )
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--batches", type=int, default=91, help="pre-encoded batches, in all")
    parser.add_argument(
        "--batch-threads",
        type=int,
        default=2,
        help="connections posting batches; each lands on a worker at random, so with 2 workers "
        "and 2 connections a round may find both on one worker and half the machine idle",
    )
    parser.add_argument("--connections", type=int, default=16, help="wrk's connections")
    parser.add_argument("--clients", type=int, default=8, help="Client threads (singles)")
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
            client_batches = min(args.batches, 30)  # DataFrames of Python objects: memory
            client_rows = args.batch_size * client_batches
            bodies = [
                json.dumps(
                    {"rows": prediction_rows(f"{run}-raw{b}", args.batch_size, rng)}
                ).encode()
                for b in range(args.batches)
            ]
            frames = [
                pd.DataFrame(prediction_rows(f"{run}-df{b}", args.batch_size, rng))
                for b in range(client_batches)
            ]
            batch_raw(server, "bench-batch", bodies[:1], 1)  # the model exists, its task is set
            raw_rates, raw_latencies = [], []
            with sampled(server, args.profile, "batch"):
                for r in range(args.rounds):
                    part = bodies[1 + r :: args.rounds]
                    if not part:
                        break
                    raw = batch_raw(server, "bench-batch", part, args.batch_threads)
                    raw_rates.append(len(part) * args.batch_size / raw.seconds)
                    raw_latencies += raw.latencies
                    console.log(f"raw batches, round {r + 1}: {raw_rates[-1]:,.0f} rows/s")
            raw.latencies = raw_latencies
            through = batch_client(server, "bench-batch", frames, args.batch_threads)
            console.log(f"Client batches: {client_rows / through.seconds:,.0f} rows/s")
            warm = len(single(server, "bench-single", 1, 0.5, f"{run}-warm").latencies)
            rounds: list[WrkRun] = []
            with sampled(server, args.profile, "single"):
                for r in range(args.rounds):
                    loaded = single_wrk(
                        server,
                        "bench-single",
                        args.connections,
                        args.seconds,
                        f"{run}-w{r}-",
                        Path(tmp),
                    )
                    if loaded is None:
                        console.log("[yellow]no wrk: `apt-get install wrk` to load the server[/]")
                        break
                    rounds.append(loaded)
                    console.log(
                        f"single (wrk), round {r + 1}: {loaded.rate:,.0f} requests/s, "
                        f"p99 {loaded.p99_ms:.1f} ms"
                    )
            one = single(server, "bench-single", args.clients, args.seconds, f"{run}-s")
            console.log(f"single (Client): {len(one.latencies) / one.seconds:,.0f} requests/s")
            with Client(server.url, "bench-batch", api_key=server.key) as check:
                stored = check.get_metrics(window="all")["predictions"]
                sent = rows + client_rows
                assert stored == sent, f"{stored} predictions stored, {sent} sent"
            answered = len(one.latencies) + sum(w.requests for w in rounds)
            with Client(server.url, "bench-single", api_key=server.key) as check:
                singles = check.get_metrics(window="all")["predictions"]
            # Every answered request is stored; wrk may stop with requests in flight, also stored.
            in_flight = args.connections * len(rounds)
            assert answered <= singles - warm <= answered + in_flight, (
                f"{singles - warm} single predictions stored, {answered} answered"
            )

    raw_rate = float(np.median(raw_rates))
    client_rate = client_rows / through.seconds
    single_rate = len(one.latencies) / one.seconds
    table = Table(
        title=f"HTTP ingest on {kind}: {args.workers} worker(s), "
        f"{'no auth' if args.no_auth else 'API key'}, {os.cpu_count()} CPUs "
        "(client and server on one machine)"
    )
    for column in ("measure", "measured", "target", "met"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    table.add_row(
        f"batched, pre-encoded JSON ({args.batch_size:,} rows × {args.batch_threads} threads), "
        f"median of {args.rounds} rounds (range)",
        f"{raw_rate:,.0f} predictions/s ({min(raw_rates):,.0f}–{max(raw_rates):,.0f})",
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
        "batched, Client.log_predictions(DataFrame): the Python client's encoding included",
        f"{client_rate:,.0f} predictions/s",
        "",
        "",
    )
    if rounds:
        rates = [w.rate for w in rounds]
        p99s = [w.p99_ms for w in rounds]
        middle = sorted(rounds, key=lambda w: w.rate)[len(rounds) // 2]
        table.add_row(
            f"single POST /prediction, wrk, {args.connections} keep-alive connections, "
            f"median of {len(rounds)} × {args.seconds:.0f} s (range)",
            f"{np.median(rates):,.0f} requests/s ({min(rates):,.0f}–{max(rates):,.0f})",
            f"≥ {TARGET_SINGLE_PER_S:,}",
            _met(float(np.median(rates)) >= TARGET_SINGLE_PER_S),
        )
        table.add_row(
            "  p99 latency, median (range) over the rounds",
            f"{np.median(p99s):.1f} ms ({min(p99s):.1f}–{max(p99s):.1f})",
            f"p99 ≤ {TARGET_P99_MS:.0f} ms",
            _met(float(np.median(p99s)) <= TARGET_P99_MS),
        )
        table.add_row(
            "  the median round: p50 / p90 / p99 / p99.9 / max",
            f"{middle.p50_ms:.1f} / {middle.p90_ms:.1f} / {middle.p99_ms:.1f} / "
            f"{middle.p999_ms:.1f} / {middle.max_ms:.0f} ms",
            "",
            "",
        )
        failed = sum(w.failed for w in rounds)
        table.add_row("  failed requests", f"{failed}", "0", _met(failed == 0))
    table.add_row(
        f"single Client.log_prediction, {args.clients} Python threads",
        f"{single_rate:,.0f} requests/s",
        "",
        "",
    )
    table.add_row(
        "  latency p50 / p95 / p99",
        f"{one.percentile(50):.1f} / {one.percentile(95):.1f} / {one.percentile(99):.1f} ms",
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
