"""Drift checks from hourly summaries against reading every row, in fresh processes.

    python benchmarks/drift_summaries.py [--rows 100000 1000000] [--pg postgresql://127.0.0.1/test]

Logs ``--rows`` predictions over six days (20 numerical and 5 categorical features, a score)
into SQLite and PostgreSQL, sets a reference, then runs ``check_drift('7d')`` (ending 17
minutes into an hour, so both edge hours are partial) in a fresh Python process per
measurement:

* ``rows``: the window's rows read from the log and compared value by value (the path every
  check took before the summaries, and the one segments and value tests still take);
* ``first summary check``: the first check, which counts the hours from the log and keeps them;
* ``summary check``: a later check, which merges the kept hours and reads the edge hours.

It prints the process's CPU seconds (the database server's own CPU is not included), the wall
time, and the process's peak RSS over the check (and before it, after imports and connecting).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pg_schema import temporary_schema
from rich.console import Console
from rich.table import Table

from feedback_loop import FeedbackLoop, ManualClock
from feedback_loop.loop import dispose_engines

BATCH = 100_000
NOW = datetime(2026, 1, 8, tzinfo=UTC)
CHECK_AT = NOW + timedelta(minutes=17)
MODES = ("rows", "first summary check", "summary check")


def features(rng: np.random.Generator, n: int, shifted: bool) -> pd.DataFrame:
    out = {f"num_{i}": rng.normal(0.0, 1.0, n) for i in range(20)}
    if shifted:
        for i in range(5):
            out[f"num_{i}"] = out[f"num_{i}"] + 0.5
    levels = [np.array([f"c{j}" for j in range(k)]) for k in (5, 10, 20, 30, 50)]
    for i, names in enumerate(levels):
        out[f"cat_{i}"] = names[rng.integers(0, len(names), n)]
    return pd.DataFrame(out)


def populate(url: str, rows: int, console: Console) -> str:
    rng = np.random.default_rng(0)
    name = f"drift-{uuid.uuid4().hex[:6]}"
    loop = FeedbackLoop(name, tracking_db=url, clock=ManualClock(NOW), task="binary")
    reference = features(rng, 200_000, shifted=False)
    loop.set_reference(reference, predictions=rng.random(len(reference)))
    for start in range(0, rows, BATCH):
        n = min(BATCH, rows - start)
        frame = features(rng, n, shifted=True)
        frame["prediction_id"] = [f"p{i}" for i in range(start, start + n)]
        frame["timestamp"] = NOW - pd.to_timedelta(
            np.linspace(6 * 86400, 0, n) * (rows - start) / rows, unit="s"
        )
        frame["prediction"] = rng.random(n).round(12)
        loop.log_predictions(frame)
        console.log(f"{url.split(':')[0]}: {start + n:,} predictions stored")
    dispose_engines()
    return name


def measure(url: str, name: str, mode: str) -> dict[str, float]:
    """One check in this (fresh) process."""
    from feedback_loop.monitor import drift_checks
    from feedback_loop.monitor.references import stored_reference
    from feedback_loop.monitor.window import window_features, window_filter

    loop = FeedbackLoop(name, tracking_db=url, clock=ManualClock(CHECK_AT))
    handle = loop.handle
    state = handle.read_state()
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu, wall = time.process_time(), time.perf_counter()
    if mode == "rows":
        stored = stored_reference(handle, "default", None)
        flt = window_filter(handle, "7d")
        data = window_features(handle.engine, flt, regression=False)
        report = drift_checks._check_values(
            state, stored, data, flt, methods=None, share_threshold=0.5, correction="none"
        )
    else:
        report = loop.check_drift(window="7d", record=False)
    out = {
        "cpu": time.process_time() - cpu,
        "wall": time.perf_counter() - wall,
        "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "base_rss": base_rss,
        "n": float(report.n_current),
        "flagged": float(len([c for c in report.drifted_columns if not c.startswith("__")])),
    }
    dispose_engines()
    return out


def in_fresh_process(url: str, name: str, mode: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--measure", url, name, mode],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--pg", default="postgresql://127.0.0.1/test")
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    console = Console()
    table = Table(title="check_drift('7d'), 25 features + score, fresh process per check")
    for column in ("rows", "database", "path", "CPU s", "wall s", "peak RSS MB", "RSS before MB"):
        table.add_column(column, justify="left" if column in ("database", "path") else "right")
    results: list[dict[str, Any]] = []
    for rows in args.rows:
        folder = Path(tempfile.mkdtemp(prefix="fl-bench-"))
        with temporary_schema(args.pg) as pg_url:
            for label, url in (
                ("SQLite", f"sqlite:///{folder / 'bench.db'}"),
                ("PostgreSQL", pg_url),
            ):
                name = populate(url, rows, console)
                for mode in MODES:
                    found = in_fresh_process(url, name, mode)
                    assert int(found["n"]) == rows, found
                    results.append({"rows": rows, "db": label, "mode": mode, **found})
                    table.add_row(
                        f"{rows:,}",
                        label,
                        mode,
                        f"{found['cpu']:.2f}",
                        f"{found['wall']:.2f}",
                        f"{found['rss']:.0f}",
                        f"{found['base_rss']:.0f}",
                    )
    console.print(table)


if __name__ == "__main__":
    main()
