"""What a retrain every N days can reach at best: an upper bound for any policy at that cost.

    python benchmarks/cadence_bound.py [--streams hyperplane_500,rbf5_500] [--seed 1]
                                       [--cadence 14] [--windows 3,5,7,10,14,21,28]

``loop_quality.py`` asks the loop for weekly sliding's accuracy (-0.5 point) with at most half
its retrains. On a stream that drifts without pause, half the retrains means a model about twice
as old on average, so the question is whether any refit every 14 days can make up for it. This
script answers it by brute force: on the same replay span and label delay as ``loop_quality.py``,
it refits the base model every ``--cadence`` days on each training window (the model as given,
and a shallower variant: 7 leaves and three times the rounds) and prints the accuracy of each,
beside weekly sliding (every 7 days on the last 28). The best row is chosen in hindsight on the
very rows it is scored on, so it bounds from above what a policy that must choose ahead
can reach at that cadence.
"""

from __future__ import annotations

import argparse
import itertools
import time
from typing import Any

import numpy as np
from loop_quality import build, make_model
from rich.console import Console
from rich.table import Table
from sklearn.base import clone

LABEL_DELAY_DAYS = 1
WEEKLY = (7, 28)  # weekly sliding: every 7 days on the last 28


def periodic_refit(
    X: np.ndarray,
    y: np.ndarray,
    day: np.ndarray,
    first_day: float,
    cadence: int,
    window: int,
    model: Any,
) -> float:
    """Accuracy over the replay of a refit every ``cadence`` days on the last ``window`` days
    of labels (one day late), the first at ``first_day + 7`` as weekly sliding's."""
    served = day >= first_day
    correct = 0
    fit_day = first_day + 7
    current = clone(model).fit(X[day < first_day], y[day < first_day])
    end = day[-1] + 1
    edges = [first_day, *np.arange(fit_day, end, cadence), end]
    for start, stop in itertools.pairwise(edges):
        if start > first_day:
            known = day < start - LABEL_DELAY_DAYS
            rows = known & (day >= start - LABEL_DELAY_DAYS - window)
            current = clone(model).fit(X[rows], y[rows])
        part = (day >= start) & (day < stop)
        if not part.any():
            continue
        correct += int(np.sum(current.predict(X[part]) == y[part]))
    return correct / int(np.sum(served))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="hyperplane_500,rbf5_500")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cadence", type=int, default=14)
    parser.add_argument("--windows", default="3,5,7,10,14,21,28")
    args = parser.parse_args(argv)
    windows = [int(w) for w in args.windows.split(",")]
    console = Console(width=120)
    base = make_model()
    shallow = {"max_leaf_nodes": 7, "max_iter": 3 * base.get_params()["max_iter"]}
    variants = [
        ("as given", base),
        (",".join(f"{k}={v}" for k, v in shallow.items()), clone(base).set_params(**shallow)),
    ]
    table = Table(title=f"Refit every {args.cadence} days: the best in hindsight, seed {args.seed}")
    for column in ("stream", "weekly sliding", "best", "window", "model", "gap", "seconds"):
        table.add_column(column, justify="left" if column in ("stream", "model") else "right")
    for name in args.streams.split(","):
        started = time.process_time()
        stream, initial = build(name, quick=False, seed=args.seed)
        X = stream.data[stream.features].to_numpy()
        y = stream.data["target"].to_numpy()
        since = stream.data["timestamp"] - stream.data["timestamp"].iloc[0]
        day = since.dt.total_seconds().to_numpy() / 86_400
        first = float(day[initial])
        weekly = periodic_refit(X, y, day, first, WEEKLY[0], WEEKLY[1], base)
        tried = [
            (periodic_refit(X, y, day, first, args.cadence, w, m), w, label)
            for w in windows
            for label, m in variants
        ]
        best, window, label = max(tried)
        console.log(f"{name}: weekly {weekly:.4f}, best every {args.cadence} days {best:.4f}")
        table.add_row(
            name,
            f"{weekly:.4f}",
            f"{best:.4f}",
            f"{window} d",
            label,
            f"{100 * (best - weekly):+.2f} pt",
            f"{time.process_time() - started:.0f}",
        )
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
