"""Replay the Elec2 stream (labels one day late) under three strategies, side by side.

    python benchmarks/replay_elec2.py [--fixed-every 30d] [--days N]

never-retrained, fixed-schedule retraining (unconditional promotion every ``--fixed-every``),
and the loop (a policy decides when, the gate decides whether, the watch rolls back). Prints
overall accuracy and the number of retrains, promotions, rejections and rollbacks of each.
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

from rich.console import Console
from rich.table import Table
from sklearn.ensemble import HistGradientBoostingClassifier

from feedback_loop.backtest import ReplayConfig, replay
from feedback_loop.datasets import ELEC2_FEATURES, load_elec2
from feedback_loop.policy import AnyOf, PerformanceThreshold, Policy
from feedback_loop.timeutil import parse_duration
from feedback_loop.training.dataset import DatasetSpec
from feedback_loop.training.gating import GateConfig


def make_model() -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=100, random_state=0)


def default_config(
    fixed_every: timedelta,
    *,
    max_drop: float = 0.05,
    cooldown: timedelta = timedelta(days=14),
    policy_window: str = "7d",
) -> ReplayConfig:
    stream_rows = 45_312
    return ReplayConfig(
        features=ELEC2_FEATURES,
        initial_rows=stream_rows // 10,
        label_delay=timedelta(days=1),
        fixed_every=fixed_every,
        dataset=DatasetSpec(window=timedelta(days=28), holdout=0.25, min_rows=200),
        gate=GateConfig(min_improvement=0.0, alpha=0.05),
        policy=Policy(
            AnyOf([PerformanceThreshold(max_drop=max_drop, min_labeled=200)]),
            cooldown=cooldown,
        ),
        policy_window=policy_window,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixed-every", default="30d")
    parser.add_argument("--days", type=int, default=None, help="Replay only the first N days.")
    parser.add_argument("--strategies", default="never,fixed,loop")
    parser.add_argument("--max-drop", type=float, default=0.05)
    parser.add_argument("--cooldown", default="14d")
    parser.add_argument("--policy-window", default="7d")
    args = parser.parse_args()
    console = Console()
    data = load_elec2()
    if args.days is not None:
        data = data.iloc[: data.shape[0] // 10 + args.days * 48]
    config = default_config(
        parse_duration(args.fixed_every),
        max_drop=args.max_drop,
        cooldown=parse_duration(args.cooldown),
        policy_window=args.policy_window,
    )
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
