"""The demo: the whole loop on real drifting data, in simulated time.

The Elec2 electricity stream (bundled) is replayed day by day with labels arriving one day late.
A gradient-boosting model is trained on the first tenth and registered as champion; then three
strategies serve the rest: the never-retrained model, retraining on a fixed schedule, and the
loop — daily monitoring, a policy that decides when to retrain, the gate that decides whether the
candidate is promoted, and the watch that rolls a regressing champion back. At the end a summary
and an HTML report of the loop's run.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from sklearn.ensemble import HistGradientBoostingClassifier

from feedback_loop.backtest import ReplayConfig, ReplayResult, StrategyName, replay
from feedback_loop.core.clock import ManualClock
from feedback_loop.datasets import ELEC2_FEATURES, load_elec2
from feedback_loop.loop import FeedbackLoop
from feedback_loop.retrain.policy import Policy

STRATEGIES: tuple[StrategyName, ...] = ("never", "fixed", "loop")
LABELS = {"never": "never retrained", "fixed": "fixed, every 30 days", "loop": "the loop"}
SHORT = {"never": "never", "fixed": "fixed 30d", "loop": "loop"}


def make_model() -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=100, random_state=0)


def elec2_config(
    *,
    fixed_every: timedelta = timedelta(days=30),
    policy: Policy | None = None,
) -> ReplayConfig:
    """The settings of the demo and of ``benchmarks/replay_elec2.py``: the stream's columns,
    the first tenth for the first model, labels one day late, and the product's defaults for
    everything the loop decides (dataset, candidates, gate, policy, watch); ``policy``
    replaces the default policy."""
    return ReplayConfig(
        features=ELEC2_FEATURES,
        initial_rows=45_312 // 10,
        label_delay=timedelta(days=1),
        fixed_every=fixed_every,
        policy=policy,
    )


def _run_strategy(
    data: pd.DataFrame,
    strategy: StrategyName,
    config: ReplayConfig,
    database: str | None,
    ticks: Any,
) -> ReplayResult:
    """One strategy's replay (in a worker process); progress goes to ``ticks``, at most ten
    times a second, and the last state always (the board's final row is the replay's end)."""
    last: list[float] = [0.0]
    held: list[dict[str, Any]] = []

    def tick(state: dict[str, Any]) -> None:
        now = time.monotonic()
        held[:] = [state]
        if state.get("action") or now - last[0] > 0.1:
            last[0] = now
            ticks.put(held.pop())

    result = replay(
        data, make_model, strategy, config, database=database, model_name="elec2", on_tick=tick
    )
    if held:
        ticks.put(held.pop())
    return result


def _drain(ticks: Any, board: _Board) -> None:
    while True:
        try:
            board.update(ticks.get_nowait())
        except queue.Empty:
            return


class _Board:
    """The live display: one row per strategy."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {s: {} for s in STRATEGIES}

    def update(self, tick: dict[str, Any]) -> None:
        row = self.rows[tick["strategy"]]
        row.update(tick)
        if tick.get("action"):
            row["last"] = f"{tick['now']:%m-%d} {tick['action']}"

    def __rich__(self) -> Table:
        table = Table(title="feedback-loop demo: Elec2, labels one day late")
        for column in (
            "strategy",
            "simulated date",
            "7-day accuracy",
            "drift",
            "champion",
            "retrains",
            "promotions",
            "rejections",
            "rollbacks",
            "last decision",
        ):
            table.add_column(column)
        for name, row in self.rows.items():
            if not row:
                table.add_row(SHORT[name], "waiting", *[""] * 8)
                continue
            accuracy = row.get("accuracy_7d")
            drift = row.get("drift")
            table.add_row(
                SHORT[name],
                f"{row['now']:%Y-%m-%d}",
                "—" if accuracy is None else f"{accuracy:.1%}",
                "—" if drift is None else f"{drift:.0%}",
                f"v{row['champion']}",
                str(row["retrains"]),
                str(row["promotions"]),
                str(row["rejections"]),
                str(row["rollbacks"]),
                row.get("last", ""),
            )
        return table


def summary_table(results: dict[str, ReplayResult]) -> Table:
    """Accuracy per month for each strategy, and the totals."""
    table = Table(title="Accuracy per month (served predictions, labels one day late)")
    table.add_column("month")
    for name in results:
        table.add_column(LABELS[name], justify="right")
    months = pd.concat(
        [r.monthly.set_index("month")["accuracy"].rename(n) for n, r in results.items()], axis=1
    )
    for month, row in months.iterrows():
        table.add_row(str(month), *["—" if pd.isna(v) else f"{v:.1%}" for v in row])
    table.add_section()
    table.add_row("all months", *[f"[bold]{r.accuracy:.2%}[/]" for r in results.values()])
    for key in ("retrains", "promotions", "rejections", "rollbacks"):
        table.add_row(key, *[str(getattr(r, key)) for r in results.values()])
    return table


def run_demo(
    db: str | None = None,
    *,
    console: Console | None = None,
    report: str | Path = "reports/elec2-demo.html",
    days: int | None = None,
    on_result: Callable[[ReplayResult], None] | None = None,
) -> dict[str, ReplayResult]:
    console = console or Console()
    started = time.perf_counter()
    data = load_elec2()
    config = elec2_config()
    if days is not None:
        data = data.iloc[: config.initial_rows + days * 48]
    console.print(
        f"[bold]Elec2[/]: {len(data):,} half-hourly rows, 1996-05-07 onwards; the first "
        f"{config.initial_rows:,} train the first champion, the rest are served day by day."
    )
    board = _Board()
    results: dict[str, ReplayResult] = {}
    # The strategies are independent: each replays in a process of its own, reporting its
    # progress through a queue to this live board.
    context = multiprocessing.get_context("spawn")
    with (
        context.Manager() as manager,
        ProcessPoolExecutor(max_workers=len(STRATEGIES), mp_context=context) as pool,
    ):
        ticks = manager.Queue()
        futures = {
            pool.submit(
                _run_strategy,
                data,
                strategy,
                config,
                db if (db and strategy == "loop") else None,
                ticks,
            ): strategy
            for strategy in STRATEGIES
        }
        with Live(Group(board), console=console, refresh_per_second=8, transient=False) as live:
            pending = set(futures)
            while pending:
                _drain(ticks, board)
                done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                for future in done:
                    results[futures[future]] = future.result()
                    if on_result is not None:
                        on_result(results[futures[future]])
            _drain(ticks, board)
            live.refresh()
    results = {s: results[s] for s in STRATEGIES}
    console.print()
    console.print(summary_table(results))
    loop_db = results["loop"].database
    loop = FeedbackLoop(
        "elec2", tracking_db=loop_db, clock=ManualClock(data["timestamp"].iloc[-1].to_pydatetime())
    )
    from feedback_loop.report import write_report

    path = write_report(loop, report, period="7d")
    took = time.perf_counter() - started
    console.print(f"report: [bold]{path.resolve()}[/]  (open it in a browser)")
    console.print(f"the loop's database: {loop_db}")
    console.print(f"done in {took:.0f} s")
    return results
