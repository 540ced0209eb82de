"""Loop quality: does the loop beat the simple things a team would do instead, at lower cost?

    python benchmarks/loop_quality.py [--streams elec2,sea_100,...] [--quick] [--jobs 2]
                                      [--seed 0] [--loop defaults|demo]
                                      [--csv your_stream.csv [--rows-per-day 100]]
                                      [--explain]

Replays, with the demo's base model (HistGradientBoosting) and labels one day late, Elec2, SEA
and Agrawal (abrupt drift, at 100 and 500 rows a day), a rotating hyperplane (gradual drift), a
5-class random RBF with moving centroids (gradual, multiclass) and Elec2 shuffled in time (the
stationary control), each under five strategies: never retrained, refitted every 30 days, weekly
sliding (every 7 days on the last 28), daily sliding (every day on the last 28), and the loop.
``--loop defaults`` (the default) runs the loop as a new user gets it: ``ReplayConfig`` with only
the features, the first model's rows and the label delay. ``--loop demo`` runs the demo's policy,
dataset and gate instead.

Printed: accuracy, retrains, promotions, rejections, rollbacks and failed retrains; for every
change of champion whether it was significantly worse (one-sided exact binomial test on the
rows where the two disagree, alpha 0.05) than the champion it replaced over the next 28 days,
on the same rows; and the targets, judged on the loop's row:

* a drifting stream: accuracy >= weekly sliding - 0.5 point, with at most half of its retrains;
* the control: no change of champion significantly worse, accuracy >= never - 0.2 point.

``--explain`` also prints each of the loop's retrainings: the rules that fired, how it ended,
and the cooldown state it started in (days and labels since the previous trigger, how that one
ended).

The synthetic streams are seeded (``--seed``): tune on other seeds than the one you report.
``--quick`` replays shorter streams, for iterating (under 3 minutes on 2 cores with --jobs 2);
the full table takes about 15 minutes on 2 cores with --jobs 2.
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from feedback_loop.backtest import STRATEGIES, ReplayConfig, ReplayResult, infer_task, replay
from feedback_loop.datasets import streams
from feedback_loop.demo import elec2_config

LABELS = {
    "never": "never",
    "fixed": "fixed 30d",
    "weekly": "weekly sliding",
    "daily": "daily sliding",
    "loop": "the loop",
}
# relative cost of a served day, to start the longest replays first
COST = {"never": 0.1, "fixed": 0.2, "weekly": 0.5, "daily": 3.0, "loop": 1.5}
ALL_STREAMS = (
    "elec2",
    "sea_100",
    "sea_500",
    "agrawal_100",
    "agrawal_500",
    "hyperplane_500",
    "rbf5_500",
    "elec2_shuffled",
)
DRIFT_SLACK = 0.005  # the loop may trail weekly sliding by half a point on a drifting stream
CONTROL_SLACK = 0.002  # ... and never-retrained by 0.2 point on the control
ELEC2_INITIAL = 45_312 // 10  # the demo's first model
QUICK_ELEC2_ROWS = 12_000


def make_model() -> HistGradientBoostingClassifier:
    """The demo's base model."""
    return HistGradientBoostingClassifier(max_iter=100, random_state=0)


def make_regressor() -> HistGradientBoostingRegressor:
    """The same, for a stream with a numeric target (``--csv`` only)."""
    return HistGradientBoostingRegressor(max_iter=100, random_state=0)


def from_csv(path: str, *, quick: bool, rows_per_day: float | None) -> streams.Stream:
    """A stream of your own: ``target``, an optional ``timestamp`` column, features in the
    other columns. Without a timestamp, ``--rows-per-day`` gives it a clock."""
    data = pd.read_csv(path)
    if "target" not in data.columns:
        raise SystemExit(f"{path}: no 'target' column")
    if "timestamp" in data.columns:
        data["timestamp"] = pd.to_datetime(data["timestamp"], utc=True)
    elif rows_per_day is not None:
        data.insert(0, "timestamp", streams.timestamps(len(data), rows_per_day))
    else:
        raise SystemExit(f"{path}: no 'timestamp' column; give --rows-per-day")
    if quick:
        data = data.iloc[: max(len(data) // 4, 2_000)]
    features = [c for c in data.columns if c not in ("timestamp", "target")]
    return streams.Stream(Path(path).stem, data, features, infer_task(data["target"]), "gradual")


@dataclass(frozen=True)
class Job:
    stream: str
    strategy: str
    quick: bool
    seed: int
    loop: str
    rows_per_day: float | None = None  # for a --csv stream without a clock


def build(
    name: str, *, quick: bool, seed: int, rows_per_day: float | None = None
) -> tuple[streams.Stream, int]:
    """A stream and how many of its first rows train the first model (a CSV file: the first
    tenth, as Elec2's)."""
    if name.endswith(".csv"):
        stream = from_csv(name, quick=quick, rows_per_day=rows_per_day)
        return stream, len(stream.data) // 10
    concept = 4_000 if quick else 15_000
    synthetic: dict[str, Callable[[], streams.Stream]] = {
        "sea_100": lambda: streams.sea(concept_rows=concept, rows_per_day=100, seed=seed),
        "sea_500": lambda: streams.sea(concept_rows=concept, rows_per_day=500, seed=seed),
        "agrawal_100": lambda: streams.agrawal(concept_rows=concept, rows_per_day=100, seed=seed),
        "agrawal_500": lambda: streams.agrawal(concept_rows=concept, rows_per_day=500, seed=seed),
        "hyperplane_500": lambda: streams.rotating_hyperplane(
            n_rows=4 * concept, rows_per_day=500, seed=seed
        ),
        "rbf5_500": lambda: streams.random_rbf_drift(
            n_rows=4 * concept, n_classes=5, rows_per_day=500, seed=seed
        ),
    }
    if name in synthetic:
        return synthetic[name](), concept // 2
    if name == "elec2":
        stream = streams.elec2()
    elif name == "elec2_shuffled":
        stream = streams.elec2_shuffled(seed=seed)
    else:
        raise SystemExit(f"unknown stream {name!r}; known: {', '.join(ALL_STREAMS)}")
    if quick:
        stream = streams.Stream(
            stream.name,
            stream.data.iloc[:QUICK_ELEC2_ROWS],
            stream.features,
            stream.task,
            stream.drift,
        )
    return stream, ELEC2_INITIAL


def config_for(stream: streams.Stream, initial_rows: int, loop: str) -> ReplayConfig:
    """The loop's defaults (only what the stream dictates given), or the demo's settings."""
    if loop == "demo":
        demo = elec2_config()
        return ReplayConfig(
            features=stream.features,
            initial_rows=initial_rows,
            label_delay=timedelta(days=1),
            dataset=demo.dataset,
            gate=demo.gate,
            policy=demo.policy,
            policy_window=demo.policy_window,
            drift_window=None,
        )
    config = ReplayConfig(
        features=stream.features, initial_rows=initial_rows, label_delay=timedelta(days=1)
    )
    config.drift_window = None  # a display for the demo's live board; nothing decides on it
    return config


def run(job: Job, ticks: Any) -> tuple[Job, dict[str, Any]]:
    """One replay, in a worker process; progress goes to ``ticks`` as (job, done, total)."""
    stream, initial_rows = build(
        job.stream, quick=job.quick, seed=job.seed, rows_per_day=job.rows_per_day
    )
    config = config_for(stream, initial_rows, job.loop)
    model = make_regressor if stream.task == "regression" else make_model
    served = stream.data["timestamp"].iloc[initial_rows:]
    total = int((served.iloc[-1] - served.iloc[0]) / config.step) + 1
    done = [0, 0.0]

    def tick(state: dict[str, Any]) -> None:
        done[0] += 1
        now = time.monotonic()
        if now - done[1] > 0.5 or done[0] == total:
            done[1] = now
            ticks.put((job, done[0], total))

    started = time.perf_counter()
    result = replay(stream.data, model, job.strategy, config, on_tick=tick)  # type: ignore[arg-type]
    return job, _outcome(result, time.perf_counter() - started)


def _outcome(result: ReplayResult, seconds: float) -> dict[str, Any]:
    out = result.summary()
    out["seconds"] = seconds
    out["changes_detail"] = (
        [c.to_dict() for c in result.changes] if result.strategy == "loop" else []
    )
    out["retrain_log"] = [r.to_dict() for r in result.retrain_log]
    return out


def verdict(stream: str, rows: dict[str, dict[str, Any]]) -> tuple[bool, str] | None:
    """The targets, judged on the loop's row (None when a strategy it needs did not run)."""
    loop = rows.get("loop")
    if loop is None:
        return None
    if stream == "elec2_shuffled":
        never = rows.get("never")
        if never is None:
            return None
        ok_changes = loop["worse_changes"] == 0
        ok_accuracy = loop["accuracy"] >= never["accuracy"] - CONTROL_SLACK
        why = []
        if not ok_changes:
            why.append(f"{loop['worse_changes']} worse change(s)")
        if not ok_accuracy:
            why.append(f"{100 * (loop['accuracy'] - never['accuracy']):+.2f} pt vs never")
        return ok_changes and ok_accuracy, "; ".join(why)
    weekly = rows.get("weekly")
    if weekly is None:
        return None
    if loop["metric"] != "accuracy":  # an error (regression): within half a percent of weekly
        ok_error = loop["accuracy"] <= weekly["accuracy"] * (1 + DRIFT_SLACK)
        ok_retrains = loop["retrains"] <= weekly["retrains"] / 2
        why = [] if ok_error else [f"{loop['metric']} {loop['accuracy']:.4g} > weekly's"]
        if not ok_retrains:
            why.append(f"{loop['retrains']} retrains > {weekly['retrains'] / 2:g}")
        return ok_error and ok_retrains, "; ".join(why)
    ok_accuracy = loop["accuracy"] >= weekly["accuracy"] - DRIFT_SLACK
    ok_cost = loop["retrains"] <= weekly["retrains"] / 2
    why = []
    if not ok_accuracy:
        why.append(f"{100 * (loop['accuracy'] - weekly['accuracy']):+.2f} pt vs weekly")
    if not ok_cost:
        why.append(f"{loop['retrains']} retrains > {weekly['retrains'] / 2:g}")
    return ok_accuracy and ok_cost, "; ".join(why)


def tables(
    results: dict[tuple[str, str], dict[str, Any]], names: list[str], strategies: list[str]
) -> list[Table]:
    detail = Table(title="Loop quality: labels one day late, HistGradientBoosting")
    for column in (
        "stream",
        "strategy",
        "accuracy",  # or the error metric of a regression, named in the cell
        "retrains",
        "promotions",
        "rejections",
        "rollbacks",
        "failed",
        "champion changes",
        "sig. worse",
        "seconds",
        "target",
    ):
        detail.add_column(column, justify="left" if column in ("stream", "strategy") else "right")
    matrix = Table(title="Accuracy by strategy (the loop: retrains)")
    matrix.add_column("stream")
    for strategy in strategies:
        matrix.add_column(LABELS[strategy], justify="right")
    matrix.add_column("target", justify="left")
    for name in names:
        rows = {s: results[(name, s)] for s in strategies if (name, s) in results}
        judged = verdict(name, rows)
        cells = []
        for strategy in strategies:
            row = rows.get(strategy)
            if row is None:
                cells.append("—")
                continue
            text = f"{row['accuracy']:.4f}"
            if row["metric"] != "accuracy":
                text = f"{row['metric']} {row['accuracy']:.4g}"
            cells.append(f"{text} ({row['retrains']})" if strategy == "loop" else text)
            mark = ""
            if strategy == "loop" and judged is not None:
                mark = "PASS" if judged[0] else f"FAIL {judged[1]}"
            detail.add_row(
                name,
                LABELS[strategy],
                text,
                str(row["retrains"]),
                str(row["promotions"]),
                str(row["rejections"]),
                str(row["rollbacks"]),
                str(row["failures"]),
                str(row["changes"]),
                str(row["worse_changes"]),
                f"{row['seconds']:.0f}",
                mark,
            )
        detail.add_section()
        target = "—" if judged is None else ("PASS" if judged[0] else f"FAIL {judged[1]}")
        matrix.add_row(name, *cells, target)
    changes = Table(title="The loop's champion changes, judged on the next 28 days (same rows)")
    for column in ("stream", "time", "kind", "from → to", "rows", "old", "new", "p", "worse"):
        changes.add_column(column, justify="left" if column in ("stream", "kind") else "right")
    for name in names:
        loop = results.get((name, "loop"))
        for change in [] if loop is None else loop["changes_detail"]:
            old, new = change["old_score"], change["new_score"]
            changes.add_row(
                name,
                change["time"][:16],
                change["kind"],
                f"v{change['old']} → v{change['new']}",
                str(change["rows"]),
                "—" if old is None else f"{old:.3f}",
                "—" if new is None else f"{new:.3f}",
                "—" if change["p_value"] is None else f"{change['p_value']:.3g}",
                "[red]yes[/]" if change["worse"] else "no",
            )
    return [matrix, detail, changes]


def explain(results: dict[tuple[str, str], dict[str, Any]], names: list[str]) -> Table:
    """The loop's retrainings, one a row: when, which rules fired, how it ended, and the
    cooldown state (since the previous trigger) it was started in."""
    table = Table(title="The loop's retrainings: why, and the cooldown state they started in")
    columns = (
        "stream",
        "time",
        "rules fired",
        "outcome",
        "candidate",
        "days",
        "labels",
        "previous",
    )
    for column in columns:
        table.add_column(column, justify="right" if column in ("days", "labels") else "left")
    for name in names:
        loop = results.get((name, "loop"))
        for entry in [] if loop is None else loop["retrain_log"]:
            since = entry["since_last"]
            previous = entry["last_outcome"] or "—"
            if entry["rejections_in_a_row"]:
                previous += f" ({entry['rejections_in_a_row']} in a row)"
            labels = entry["labels_since_last"]
            table.add_row(
                name,
                entry["time"][:16],
                ", ".join(entry["rules"]),
                entry["outcome"],
                entry.get("chosen") or "—",
                "—" if since is None else f"{since / 86_400:.1f}",
                "—" if labels is None else f"{labels:,}",
                previous,
            )
        table.add_section()
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default=",".join(ALL_STREAMS))
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--quick", action="store_true", help="shorter streams, for iterating")
    parser.add_argument("--jobs", type=int, default=1, help="replays run in parallel")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic streams")
    parser.add_argument("--loop", choices=("defaults", "demo"), default="defaults")
    parser.add_argument(
        "--csv",
        action="append",
        default=[],
        help="a stream of your own (target, optional timestamp, features); judged as drifting",
    )
    parser.add_argument("--rows-per-day", type=float, default=None, help="clock for --csv")
    parser.add_argument(
        "--explain", action="store_true", help="also list the loop's retrainings and why"
    )
    args = parser.parse_args(argv)
    names = [s for s in args.streams.split(",") if s] + list(args.csv)
    strategies = [s for s in args.strategies.split(",") if s]
    for s in strategies:
        if s not in STRATEGIES:
            raise SystemExit(f"unknown strategy {s!r}; known: {', '.join(STRATEGIES)}")
    for name in names:
        build(name, quick=True, seed=args.seed, rows_per_day=args.rows_per_day)  # fail early
    # piped to a file, rich would wrap the tables at 80 columns
    console = Console(width=None if sys.stdout.isatty() else 170)
    jobs = [
        Job(n, s, args.quick, args.seed, args.loop, args.rows_per_day)
        for n in names
        for s in strategies
    ]
    jobs.sort(key=lambda j: -COST[j.strategy] * (3 if j.stream.startswith("elec2") else 1))
    started = time.perf_counter()
    results: dict[tuple[str, str], dict[str, Any]] = {}
    context = multiprocessing.get_context("spawn")
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with (
        context.Manager() as manager,
        ProcessPoolExecutor(max_workers=max(args.jobs, 1), mp_context=context) as pool,
        Progress(*columns, console=console) as progress,
    ):
        ticks = manager.Queue()
        overall = progress.add_task("replays", total=len(jobs))
        bars: dict[Job, Any] = {}
        futures: dict[Future[tuple[Job, dict[str, Any]]], Job] = {
            pool.submit(run, job, ticks): job for job in jobs
        }
        pending = set(futures)
        while pending:
            _drain(ticks, progress, bars, results)
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                job, outcome = future.result()
                results[(job.stream, job.strategy)] = outcome
                if job in bars:
                    progress.remove_task(bars.pop(job))
                progress.advance(overall)
                progress.console.log(
                    f"{job.stream} / {LABELS[job.strategy]}: {outcome['metric']} "
                    f"{outcome['accuracy']:.4f}, {outcome['retrains']} retrains "
                    f"({outcome['seconds']:.0f} s)"
                )
        _drain(ticks, progress, bars, results)
    for table in tables(results, names, strategies):
        console.print(table)
    if args.explain:
        console.print(explain(results, names))
    mode = "quick" if args.quick else "full"
    console.print(
        f"{mode} streams, seed {args.seed}, loop: {args.loop}; "
        f"{len(jobs)} replays in {time.perf_counter() - started:.0f} s with {args.jobs} job(s)"
    )
    return 0


def _drain(
    ticks: Any, progress: Progress, bars: dict[Job, Any], finished: dict[tuple[str, str], Any]
) -> None:
    """Per-replay bars from the workers' ticks (a finished replay's late ticks are dropped)."""
    while True:
        try:
            job, done, total = ticks.get_nowait()
        except queue.Empty:
            return
        if (job.stream, job.strategy) in finished:
            continue
        if job not in bars:
            bars[job] = progress.add_task(f"  {job.stream} / {LABELS[job.strategy]}", total=total)
        progress.update(bars[job], completed=done)


if __name__ == "__main__":
    sys.exit(main())
