"""Replay the Elec2 stream (labels one day late) under three strategies, side by side.

    python benchmarks/replay_elec2.py [--fixed-every 30d] [--days N]

never-retrained, fixed-schedule retraining (unconditional promotion every ``--fixed-every``),
and the loop (a policy decides when, the gate decides whether, the watch rolls back). Prints
overall accuracy and the number of retrains, promotions, rejections and rollbacks of each.
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

from feedback_loop.backtest import replay
from feedback_loop.core.timeutil import parse_duration
from feedback_loop.datasets import load_elec2
from feedback_loop.demo import elec2_config, make_model
from feedback_loop.retrain.policy import PerformanceThreshold, Policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixed-every", default="30d")
    parser.add_argument("--days", type=int, default=None, help="Replay only the first N days.")
    parser.add_argument("--strategies", default="never,fixed,loop")
    parser.add_argument(
        "--max-drop",
        type=float,
        default=None,
        help="Replace the default policy by a drop from the baseline alone (with --cooldown).",
    )
    parser.add_argument("--cooldown", default="21d")
    args = parser.parse_args()
    console = Console()
    data = load_elec2()
    if args.days is not None:
        data = data.iloc[: data.shape[0] // 10 + args.days * 48]
    policy = None
    if args.max_drop is not None:
        policy = Policy(
            PerformanceThreshold(max_drop=args.max_drop, min_labeled=200),
            cooldown=parse_duration(args.cooldown),
        )
    config = elec2_config(fixed_every=parse_duration(args.fixed_every), policy=policy)
    table = Table(
        title=f"Elec2 replay: {len(data) - config.initial_rows:,} served rows, labels one day late"
    )
    for column in (
        "strategy",
        "accuracy",
        "retrains",
        "promotions",
        "rejections",
        "rollbacks",
        "seconds",
    ):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for strategy in args.strategies.split(","):
        started = time.perf_counter()
        result = replay(data, make_model, strategy, config)  # type: ignore[arg-type]
        took = time.perf_counter() - started
        console.log(f"{strategy}: accuracy {result.accuracy:.4f} in {took:.0f} s")
        table.add_row(
            strategy,
            f"{result.accuracy:.4f}",
            str(result.retrains),
            str(result.promotions),
            str(result.rejections),
            str(result.rollbacks),
            f"{took:.0f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
