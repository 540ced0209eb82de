"""Exporting the log to Parquet and a retention pass, in fresh processes.

    python benchmarks/export_retention.py [--rows 200000] [--pg postgresql://127.0.0.1/test]

Logs ``--rows`` predictions over 20 days (10 numeric and 2 categorical features, two tags, a
version, a score; two in three labeled) into SQLite and PostgreSQL through ``log_predictions``
and ``log_outcomes``, then, each in a fresh Python process:

* ``export``: ``loop.export(out)`` of the whole log (Parquet, one folder per day);
* ``retention 10d``: ``loop.apply_retention()`` with ``retention='10d'``, which counts the
  hours it will drop (no drift reference is set, so the metric blocks only) and drops about
  half the rows;
* ``export after``: the export again, of the half that is left.

It prints the process's CPU seconds (the database server's own CPU is not included), the wall
time, the process's peak RSS before the step (after imports and connecting) and over it, and
the rows written or dropped.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pg_schema import temporary_schema
from rich.console import Console
from rich.table import Table

from feedback_loop import FeedbackLoop, ManualClock
from feedback_loop.loop import dispose_engines

BATCH = 50_000
NOW = datetime(2026, 1, 21, tzinfo=UTC)
DAYS = 20


def _fill(url: str, rows: int) -> None:
    rng = np.random.default_rng(0)
    loop = FeedbackLoop("bench", tracking_db=url, clock=ManualClock(NOW), task="binary")
    for start in range(0, rows, BATCH):
        n = min(BATCH, rows - start)
        frame = pd.DataFrame({f"num_{i}": rng.normal(0.0, 1.0, n) for i in range(10)})
        frame["city"] = rng.choice(["rome", "oslo", "lima", "kyiv"], n)
        frame["plan"] = rng.choice(["free", "pro"], n)
        score = rng.random(n)
        seconds = rng.uniform(0, DAYS * 86400, n)
        frame = frame.assign(
            prediction_id=[f"p{start + i}" for i in range(n)],
            timestamp=pd.Timestamp(NOW) - pd.to_timedelta(seconds, unit="s"),
            prediction=(score > 0.5).astype(int),
            score=score,
            version="v1",
            tags=[{"shop": f"s{i % 3}", "tier": "gold"} for i in range(n)],
        )
        loop.log_predictions(frame)
        labeled = frame.iloc[[i for i in range(n) if i % 3]]
        loop.log_outcomes(
            pd.DataFrame(
                {
                    "prediction_id": labeled["prediction_id"],
                    "actual": rng.integers(0, 2, len(labeled)),
                }
            )
        )
    dispose_engines()


def _peak_mb() -> float:
    """This process's peak RSS (``VmHWM``: unlike ``ru_maxrss``, not inherited across exec
    from the parent that filled the database)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _child(mode: str, url: str, out: str) -> None:
    """One measurement, in this fresh process; prints JSON."""
    loop = FeedbackLoop("bench", tracking_db=url, clock=ManualClock(NOW), retention="10d")
    _ = loop.task  # connect and read the model before the clock starts
    before_mb = _peak_mb()
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    if mode == "retention":
        rows = loop.apply_retention().predictions_dropped
    else:
        shutil.rmtree(out, ignore_errors=True)
        rows = loop.export(out).rows
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    size = sum(f.stat().st_size for f in Path(out).rglob("*.parquet")) if mode != "retention" else 0
    peak_mb = _peak_mb()
    print(
        json.dumps(
            {
                "cpu": cpu,
                "wall": wall,
                "rss": peak_mb,
                "rss_before": before_mb,
                "rows": rows,
                "bytes": size,
            }
        )
    )


def _measure(mode: str, url: str, out: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--url", url, "--out", out],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--pg", default="postgresql://127.0.0.1/test")
    parser.add_argument("--child")
    parser.add_argument("--url")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.url, args.out)
        return
    table = Table(title=f"export and retention, {args.rows:,} predictions over {DAYS} days")
    columns = ("database", "step", "rows", "CPU s", "wall s", "RSS before MB", "peak RSS MB")
    for column in (*columns, "Parquet MB"):
        table.add_column(column, justify="right" if column != "step" else "left")
    with tempfile.TemporaryDirectory() as tmp, temporary_schema(args.pg) as pg_url:
        for name, url in (("SQLite", f"sqlite:///{tmp}/bench.db"), ("PostgreSQL", pg_url)):
            _fill(url, args.rows)
            out = f"{tmp}/lake-{name}"
            for step, mode in (
                ("export", "export"),
                ("retention 10d", "retention"),
                ("export after", "export"),
            ):
                got = _measure(mode, url, out)
                table.add_row(
                    name,
                    step,
                    f"{got['rows']:,}",
                    f"{got['cpu']:.2f}",
                    f"{got['wall']:.2f}",
                    f"{got['rss_before']:.0f}",
                    f"{got['rss']:.0f}",
                    f"{got['bytes'] / 1e6:.1f}" if got["bytes"] else "—",
                )
    Console().print(table)


if __name__ == "__main__":
    main()
