"""Ingest and windowed-metrics speed on SQLite and PostgreSQL.

    python benchmarks/ingest.py [--rows 1000000] [--pg postgresql://127.0.0.1/test]

Prints one table: bulk ``log_predictions`` (DataFrame and list of dicts, 10 features per row),
single ``log_prediction`` calls, bulk ``log_outcomes``, and ``get_metrics(window='7d')`` over all
stored rows with outcomes, for each database, beside the targets.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from pg_schema import temporary_schema
from rich.console import Console
from rich.table import Table

from feedback_loop import FeedbackLoop, ManualClock
from feedback_loop.loop import dispose_engines

BATCH = 100_000
FEATURES = [f"f{i}" for i in range(10)]


def frame(rng: np.random.Generator, start: int, n: int, now: datetime) -> pd.DataFrame:
    out = pd.DataFrame(rng.random((n, len(FEATURES))), columns=FEATURES)
    score = rng.random(n)
    out["prediction_id"] = [f"p{i}" for i in range(start, start + n)]
    out["timestamp"] = now - pd.to_timedelta(np.sort(rng.random(n))[::-1] * 6 * 86400, unit="s")
    out["prediction"] = (score >= 0.5).astype(int)
    return out


def bench_db(url: str, total: int, console: Console) -> dict[str, float]:
    rng = np.random.default_rng(0)
    now = datetime(2026, 1, 8, tzinfo=UTC)
    clock = ManualClock(now)
    loop = FeedbackLoop(
        f"bench-{uuid.uuid4().hex[:6]}", tracking_db=url, clock=clock, task="binary"
    )
    results: dict[str, float] = {}

    elapsed = 0.0
    for start in range(0, total, BATCH):
        batch = frame(rng, start, min(BATCH, total - start), now)
        t = time.perf_counter()
        loop.log_predictions(batch)
        elapsed += time.perf_counter() - t
        console.log(f"{url.split(':')[0]}: {start + len(batch):,} predictions stored")
    results["bulk log_predictions (DataFrame), rows/s"] = total / elapsed

    dict_rows = frame(rng, total, 20_000, now)
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

    elapsed = 0.0
    for start in range(0, total, BATCH):
        n = min(BATCH, total - start)
        outcomes = pd.DataFrame(
            {
                "prediction_id": [f"p{i}" for i in range(start, start + n)],
                "actual": rng.integers(0, 2, n),
                "timestamp": now,
            }
        )
        t = time.perf_counter()
        loop.log_outcomes(outcomes)
        elapsed += time.perf_counter() - t
    results["bulk log_outcomes, rows/s"] = total / elapsed

    singles = 3_000
    features = {f: 0.5 for f in FEATURES}
    t = time.perf_counter()
    for i in range(singles):
        loop.log_prediction(f"s{i}", prediction=1, features=features, timestamp=now)
    results["single log_prediction, calls/s"] = singles / (time.perf_counter() - t)

    t = time.perf_counter()
    loop.get_metrics(window="7d")
    results[f"get_metrics('7d') over {total:,} labeled, first call (builds blocks), s"] = (
        time.perf_counter() - t
    )
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        metrics = loop.get_metrics(window="7d")
        runs.append(time.perf_counter() - t)
    assert metrics["labeled"] == total, metrics
    results[f"get_metrics('7d') over {total:,} labeled, s (median of 5)"] = float(np.median(runs))
    dispose_engines()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pg", default="postgresql://127.0.0.1/test")
    args = parser.parse_args()
    console = Console()
    folder = Path(tempfile.mkdtemp(prefix="fl-bench-"))
    sqlite = bench_db(f"sqlite:///{folder / 'bench.db'}", args.rows, console)
    with temporary_schema(args.pg) as pg_url:
        pg = bench_db(pg_url, args.rows, console)

    targets = {
        "bulk log_predictions (DataFrame), rows/s": (">= 100,000", ">= 50,000"),
        "single log_prediction, calls/s": (">= 3,000", "—"),
    }
    table = Table(title=f"feedback-loop ingest and metrics ({args.rows:,} rows, 10 features)")
    for column in ("measure", "SQLite", "target", "PostgreSQL", "target"):
        table.add_column(column, justify="right" if column != "measure" else "left")
    for key in sqlite:
        target = targets.get(
            key, ("<= 0.5", "<= 0.5") if key.startswith("get_metrics") else ("—", "—")
        )
        fmt = "{:,.3f}" if key.startswith("get_metrics") else "{:,.0f}"
        table.add_row(key, fmt.format(sqlite[key]), target[0], fmt.format(pg[key]), target[1])
    console.print(table)


if __name__ == "__main__":
    main()
