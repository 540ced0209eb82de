"""Monitoring straight from the log: drift and label-free estimation over a stored window.

    python benchmarks/monitoring_window.py [--rows 1000000] [--pg postgresql://127.0.0.1/test]

Logs ``--rows`` predictions (20 numerical and 5 categorical features, 5 numerical shifted, a
positive-class score) into SQLite and PostgreSQL, stores a reference profile from unshifted data,
then times, for each database: reading the window's features from the log, ``check_drift`` as a
whole (read + compare), and ``estimate_performance`` as a whole. The pure comparison against the
stored profiles is measured beside peers in ``benchmarks/drift.py``.
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
from feedback_loop.monitor.window import window_features, window_filter

BATCH = 100_000


def features(rng: np.random.Generator, n: int, shifted: bool) -> pd.DataFrame:
    out = {f"num_{i}": rng.normal(0.0, 1.0, n) for i in range(20)}
    if shifted:
        for i in range(5):
            out[f"num_{i}"] = out[f"num_{i}"] + 0.5
    levels = [np.array([f"c{j}" for j in range(k)]) for k in (5, 10, 20, 30, 50)]
    for i, names in enumerate(levels):
        out[f"cat_{i}"] = names[rng.integers(0, len(names), n)]
    return pd.DataFrame(out)


def bench(url: str, rows: int, console: Console) -> dict[str, float]:
    rng = np.random.default_rng(0)
    now = datetime(2026, 1, 8, tzinfo=UTC)
    loop = FeedbackLoop(
        f"mon-{uuid.uuid4().hex[:6]}", tracking_db=url, clock=ManualClock(now), task="binary"
    )
    reference = features(rng, 200_000, shifted=False)
    ref_score = rng.random(len(reference))
    loop.set_reference(
        reference,
        predictions=ref_score,
        actuals=(rng.random(len(reference)) < ref_score).astype(int),
    )
    for start in range(0, rows, BATCH):
        n = min(BATCH, rows - start)
        frame = features(rng, n, shifted=True)
        score = rng.random(n)
        frame["prediction_id"] = [f"p{i}" for i in range(start, start + n)]
        frame["timestamp"] = now - pd.to_timedelta(
            np.linspace(6 * 86400, 0, n) * (rows - start) / rows, unit="s"
        )
        frame["prediction"] = score.round(12)
        loop.log_predictions(frame)
        console.log(f"{url.split(':')[0]}: {start + n:,} predictions stored")
    out: dict[str, float] = {}
    t = time.perf_counter()
    data = window_features(loop.engine, window_filter(loop.handle, "7d"), regression=False)
    out["read window features from the log, s"] = time.perf_counter() - t
    assert len(data.features) == rows
    t = time.perf_counter()
    report = loop.check_drift(window="7d")
    out["check_drift('7d'): read + 25 columns + prediction, s"] = time.perf_counter() - t
    out["columns flagged (of 25 features)"] = float(
        len([c for c in report.drifted_columns if not c.startswith("__")])
    )
    t = time.perf_counter()
    loop.estimate_performance(window="7d")
    out["estimate_performance('7d'), s"] = time.perf_counter() - t
    dispose_engines()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pg", default="postgresql://127.0.0.1/test")
    args = parser.parse_args()
    console = Console()
    folder = Path(tempfile.mkdtemp(prefix="fl-bench-"))
    sqlite = bench(f"sqlite:///{folder / 'bench.db'}", args.rows, console)
    with temporary_schema(args.pg) as pg_url:
        pg = bench(pg_url, args.rows, console)
    table = Table(title=f"monitoring from the log ({args.rows:,} predictions, 25 features)")
    for column in ("measure", "SQLite", "PostgreSQL"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for key in sqlite:
        table.add_row(key, f"{sqlite[key]:,.3f}", f"{pg[key]:,.3f}")
    console.print(table)


if __name__ == "__main__":
    main()
