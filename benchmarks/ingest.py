"""Ingest and windowed-metrics speed on SQLite and PostgreSQL, beside the floor.

    python benchmarks/ingest.py [--rows 1000000] [--pg postgresql://127.0.0.1/test] [--no-metrics]
                                [--profile predictions|outcomes] [--only sqlite|postgresql]

Prints two tables. The first puts the CPU seconds of bulk ``log_predictions`` (a DataFrame of
100,000-row batches, 10 float features) and bulk ``log_outcomes`` beside the floor: the same
rows (id, time, version, prediction, score, 10 features; id, time, source, actual) written by
hand into an equivalent plain table, with ``executemany`` on SQLite and ``COPY`` (psycopg's
``write_row``) on PostgreSQL, in one transaction per batch. CPU is this process's (every
thread) plus, on PostgreSQL, the server backends serving it (utime + stime of each backend in
``/proc``, found by application name), so a cost moved into SQL is counted too. The server's
shared background processes (WAL writer, checkpointer) are not counted, for either side.

The second table is the old one: rows per second of the bulk paths (DataFrame, list of dicts),
single ``log_prediction`` calls, and ``get_metrics(window='7d')`` over every stored row with an
outcome, beside the targets.

``--profile`` runs one side under cProfile (SQLite only) and prints the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from pg_schema import temporary_schema
from rich.console import Console
from rich.table import Table

from feedback_loop import FeedbackLoop, ManualClock
from feedback_loop.loop import dispose_engines

BATCH = 100_000
FEATURES = [f"f{i}" for i in range(10)]
NOW = datetime(2026, 1, 8, tzinfo=UTC)
TICKS = os.sysconf("SC_CLK_TCK")


def frame(rng: np.random.Generator, start: int, n: int, now: datetime) -> pd.DataFrame:
    out = pd.DataFrame(rng.random((n, len(FEATURES))), columns=FEATURES)
    score = rng.random(n)
    out["prediction_id"] = [f"p{i}" for i in range(start, start + n)]
    out["timestamp"] = now - pd.to_timedelta(np.sort(rng.random(n))[::-1] * 6 * 86400, unit="s")
    out["version"] = "v1"
    out["prediction"] = (score >= 0.5).astype(int)
    return out


def outcome_frame(rng: np.random.Generator, start: int, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "prediction_id": [f"p{i}" for i in range(start, start + n)],
            "actual": rng.integers(0, 2, n),
            "timestamp": NOW,
        }
    )


# -- CPU ---------------------------------------------------------------------------------------


def _proc_cpu(pid: int) -> float:
    """utime + stime of one process, in seconds (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass
class CpuMeter:
    """This process's CPU plus that of the PostgreSQL backends whose application name is
    ``app`` (none on SQLite)."""

    pg_url: str | None = None
    app: str | None = None

    def backends(self) -> dict[int, float]:
        if self.pg_url is None:
            return {}
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            pids = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (self.app,)
            ).fetchall()
        return {pid: _proc_cpu(pid) for (pid,) in pids}

    def read(self) -> tuple[float, dict[int, float]]:
        return time.process_time(), self.backends()

    @staticmethod
    def since(
        before: tuple[float, dict[int, float]], after: tuple[float, dict[int, float]]
    ) -> float:
        own = after[0] - before[0]
        server = sum(cpu - before[1].get(pid, 0.0) for pid, cpu in after[1].items())
        return own + server


def metered(meter: CpuMeter, run: Callable[[], Any]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of ``run()``."""
    before, wall = meter.read(), time.perf_counter()
    run()
    wall = time.perf_counter() - wall
    return meter.since(before, meter.read()), wall


# -- the floor ---------------------------------------------------------------------------------

FLOOR_PREDICTIONS = (
    "CREATE TABLE floor_predictions (id {serial} PRIMARY KEY, prediction_id VARCHAR(200) "
    "NOT NULL UNIQUE, ts BIGINT NOT NULL, version VARCHAR(100), prediction INTEGER, "
    "score DOUBLE PRECISION, " + ", ".join(f"{f} DOUBLE PRECISION" for f in FEATURES) + ")"
)
FLOOR_PREDICTIONS_INDEX = "CREATE INDEX ix_floor_predictions_ts ON floor_predictions (ts)"
FLOOR_OUTCOMES = (
    "CREATE TABLE floor_outcomes (id {serial} PRIMARY KEY, prediction_id VARCHAR(200) NOT NULL, "
    "ts BIGINT NOT NULL, source VARCHAR(20) NOT NULL, actual INTEGER)"
)
FLOOR_OUTCOMES_INDEX = "CREATE INDEX ix_floor_outcomes_pid ON floor_outcomes (prediction_id)"
PREDICTION_COLUMNS = ("prediction_id", "ts", "version", "prediction", "score", *FEATURES)
OUTCOME_COLUMNS = ("prediction_id", "ts", "source", "actual")


def prediction_tuples(batch: pd.DataFrame, score: np.ndarray) -> Iterator[tuple[Any, ...]]:
    """The rows as a careful hand-written loader makes them: columns to Python lists in C,
    zipped into tuples."""
    ts = (batch["timestamp"].astype("int64") // 1000).tolist()
    return zip(
        batch["prediction_id"].tolist(),
        ts,
        batch["version"].tolist(),
        batch["prediction"].tolist(),
        score.tolist(),
        *(batch[f].tolist() for f in FEATURES),
        strict=True,
    )


def outcome_tuples(batch: pd.DataFrame) -> Iterator[tuple[Any, ...]]:
    ts = pd.to_datetime(batch["timestamp"], utc=True).astype("int64") // 1000
    n = len(batch)
    return zip(
        batch["prediction_id"].tolist(),
        ts.tolist(),
        ["natural"] * n,
        batch["actual"].tolist(),
        strict=True,
    )


class SqliteFloor:
    def __init__(self, path: Path):
        import sqlite3

        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        for ddl in (
            FLOOR_PREDICTIONS,
            FLOOR_PREDICTIONS_INDEX,
            FLOOR_OUTCOMES,
            FLOOR_OUTCOMES_INDEX,
        ):
            self.conn.execute(ddl.format(serial="INTEGER"))

    def write(self, table: str, columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" for _ in columns)
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
        self.conn.execute("COMMIT")


class PostgresFloor:
    def __init__(self, url: str):
        self.conn = psycopg.connect(url)
        with self.conn.transaction():
            for ddl in (
                FLOOR_PREDICTIONS,
                FLOOR_PREDICTIONS_INDEX,
                FLOOR_OUTCOMES,
                FLOOR_OUTCOMES_INDEX,
            ):
                self.conn.execute(ddl.format(serial="BIGSERIAL"))

    def write(self, table: str, columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]]) -> None:
        with (
            self.conn.transaction(),
            self.conn.cursor() as cursor,
            cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)


# -- one database ------------------------------------------------------------------------------


def with_app(url: str, app: str) -> str:
    return url + ("&" if "?" in url else "?") + f"application_name={app}"


@dataclass
class Costs:
    """CPU and wall seconds of ours and of the floor, summed over the batches."""

    ours_cpu: float = 0.0
    ours_wall: float = 0.0
    floor_cpu: float = 0.0
    floor_wall: float = 0.0

    def add(self, ours: tuple[float, float], floor: tuple[float, float]) -> None:
        self.ours_cpu += ours[0]
        self.ours_wall += ours[1]
        self.floor_cpu += floor[0]
        self.floor_wall += floor[1]


def bench_db(
    url: str,
    total: int,
    console: Console,
    *,
    metrics: bool,
    profile: str | None = None,
) -> tuple[dict[str, Costs], dict[str, float]]:
    rng = np.random.default_rng(0)
    clock = ManualClock(NOW)
    postgres = url.startswith("postgresql")
    tag = uuid.uuid4().hex[:6]
    app, floor_app = f"flbench_{tag}", f"flbench_floor_{tag}"
    loop = FeedbackLoop(
        f"bench-{tag}",
        tracking_db=with_app(url, app) if postgres else url,
        clock=clock,
        task="binary",
    )
    if postgres:
        floor: SqliteFloor | PostgresFloor = PostgresFloor(with_app(url, floor_app))
        admin = url.split("?")[0]
        ours, floors = CpuMeter(admin, app), CpuMeter(admin, floor_app)
    else:
        floor = SqliteFloor(Path(url.removeprefix("sqlite:///")).with_suffix(".floor.db"))
        ours, floors = CpuMeter(), CpuMeter()
    name = url.split(":")[0]
    costs = {"predictions": Costs(), "outcomes": Costs()}
    profiler = cProfile.Profile() if profile else None

    def ours_run(fn: Callable[[], Any], side: str) -> tuple[float, float]:
        if profiler is not None and profile == side:
            profiler.enable()
            try:
                return metered(ours, fn)
            finally:
                profiler.disable()
        return metered(ours, fn)

    # predictions: ours and the floor alternate batch by batch, so a busy spell hits both
    for start in range(0, total, BATCH):
        batch = frame(rng, start, min(BATCH, total - start), NOW)
        score = rng.random(len(batch))
        mine = ours_run(lambda batch=batch: loop.log_predictions(batch), "predictions")
        plain = metered(
            floors,
            lambda batch=batch, score=score: floor.write(
                "floor_predictions", PREDICTION_COLUMNS, prediction_tuples(batch, score)
            ),
        )
        costs["predictions"].add(mine, plain)
        console.log(f"{name}: {start + len(batch):,} predictions stored")
    results: dict[str, float] = {
        "bulk log_predictions (DataFrame), rows/s": total / costs["predictions"].ours_wall
    }

    dict_rows = frame(rng, total, 20_000, NOW)
    records = [
        {
            "prediction_id": r["prediction_id"],
            "timestamp": r["timestamp"],
            "prediction": r["prediction"],
            "features": {f: r[f] for f in FEATURES},
        }
        for r in dict_rows.to_dict("records")
    ]
    t = time.perf_counter()
    loop.log_predictions(records)
    results["bulk log_predictions (list of dicts), rows/s"] = len(records) / (
        time.perf_counter() - t
    )

    for start in range(0, total, BATCH):
        outcomes = outcome_frame(rng, start, min(BATCH, total - start))
        mine = ours_run(lambda rows=outcomes: loop.log_outcomes(rows), "outcomes")
        plain = metered(
            floors,
            lambda rows=outcomes: floor.write(
                "floor_outcomes", OUTCOME_COLUMNS, outcome_tuples(rows)
            ),
        )
        costs["outcomes"].add(mine, plain)
    console.log(f"{name}: {total:,} outcomes stored")
    results["bulk log_outcomes, rows/s"] = total / costs["outcomes"].ours_wall

    singles = 3_000
    features = {f: 0.5 for f in FEATURES}

    def single_calls() -> None:
        for i in range(singles):
            loop.log_prediction(f"s{i}", prediction=1, features=features, timestamp=NOW)

    cpu, wall = metered(ours, single_calls)
    results["single log_prediction, calls/s"] = singles / wall
    results["single log_prediction, CPU ms per call"] = 1000 * cpu / singles

    if metrics:
        t = time.perf_counter()
        loop.get_metrics(window="7d")
        results[f"get_metrics('7d') over {total:,} labeled, first call (builds blocks), s"] = (
            time.perf_counter() - t
        )
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            result = loop.get_metrics(window="7d")
            runs.append(time.perf_counter() - t)
        assert result["labeled"] == total, result
        results[f"get_metrics('7d') over {total:,} labeled, s (median of 5)"] = float(
            np.median(runs)
        )
    if profiler is not None:
        console.rule(f"cProfile: {profile} on {name}")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    floor.conn.close()
    dispose_engines()
    return costs, results


def cost_table(title: str, runs: dict[str, dict[str, Costs]]) -> Table:
    table = Table(title=title)
    for column in (
        "database",
        "path",
        "ours CPU s",
        "floor CPU s",
        "ratio",
        "target",
        "ours wall s",
        "floor wall s",
    ):
        table.add_column(column, justify="left" if column in ("database", "path") else "right")
    targets = {"predictions": "<= 1.5", "outcomes": "<= 2"}
    for database, costs in runs.items():
        for path, cost in costs.items():
            table.add_row(
                database,
                f"log_{path}",
                f"{cost.ours_cpu:,.2f}",
                f"{cost.floor_cpu:,.2f}",
                f"{cost.ours_cpu / cost.floor_cpu:.2f}x",
                targets[path],
                f"{cost.ours_wall:,.2f}",
                f"{cost.floor_wall:,.2f}",
            )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pg", default="postgresql://127.0.0.1/test")
    parser.add_argument("--no-metrics", action="store_true", help="skip get_metrics")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--profile", choices=("predictions", "outcomes"))
    args = parser.parse_args()
    console = Console(width=140)
    folder = Path(tempfile.mkdtemp(prefix="fl-bench-"))
    costs: dict[str, dict[str, Costs]] = {}
    speeds: dict[str, dict[str, float]] = {}
    options = {"metrics": not args.no_metrics, "profile": args.profile}
    if args.only != "postgresql":
        costs["SQLite"], speeds["SQLite"] = bench_db(
            f"sqlite:///{folder / 'bench.db'}", args.rows, console, **options
        )
    if args.only != "sqlite":
        with temporary_schema(args.pg) as pg_url:
            costs["PostgreSQL"], speeds["PostgreSQL"] = bench_db(
                pg_url, args.rows, console, **options
            )

    console.print(
        cost_table(
            f"CPU seconds: ours beside the floor ({args.rows:,} rows in {BATCH:,}-row batches)",
            costs,
        )
    )
    targets = {
        "bulk log_predictions (DataFrame), rows/s": {
            "SQLite": ">= 100,000",
            "PostgreSQL": ">= 50,000",
        },
        "single log_prediction, calls/s": {"SQLite": ">= 3,000"},
    }
    table = Table(title=f"feedback-loop ingest and metrics ({args.rows:,} rows, 10 features)")
    table.add_column("measure")
    for database in speeds:
        table.add_column(database, justify="right")
        table.add_column("target", justify="right")
    first = next(iter(speeds.values()))
    for key in first:
        fmt = "{:,.3f}" if key.startswith("get_metrics") or "ms per" in key else "{:,.0f}"
        cells = []
        for database, results in speeds.items():
            default = "<= 0.5" if key.startswith("get_metrics") else "—"
            cells += [fmt.format(results[key]), targets.get(key, {}).get(database, default)]
        table.add_row(key, *cells)
    console.print(table)


if __name__ == "__main__":
    main()
