"""Detection delay, false alarms and throughput of the streaming drift detectors (throughput is
measured here, not asserted by the tests: a time limit fails on a busy machine).

Every detector runs with its published defaults (plus two longer warm-ups for DDM and EDDM)
over seeded synthetic 0/1 error streams:

* abrupt: error rate 0.1 for 2,000 steps, then 0.4 for 3,000 steps;
* gradual: 0.1 for 2,000 steps, a linear ramp to 0.4 over 1,000 steps, then 0.4 for 2,000;
* stationary: 0.1 for 10,000 steps, where every alarm is false.

Delay is measured from the start of the change to the first alarm at or after it; a run with
no such alarm counts as missed. "Early" counts the abrupt runs that also alarmed before the
change. A second table does the same for ADWIN and Page–Hinkley on a Gaussian stream whose
mean moves from 1.0 to 1.5 (σ = 0.2). Throughput is ``run()`` over 1,000,000 values.

Run with ``python benchmarks/detectors.py [--seeds 20] [--markdown]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from feedback_loop.stats.drift.detectors import (
    ADWIN,
    DDM,
    EDDM,
    HDDM_A,
    DriftDetector,
    PageHinkley,
    run,
)

CHANGE = 2_000
RAMP = 1_000
STATIONARY = 10_000
THROUGHPUT_N = 1_000_000

Factory = Callable[[], DriftDetector]

ERROR_DETECTORS: dict[str, Factory] = {
    "ADWIN": ADWIN,
    "DDM": DDM,
    "EDDM": EDDM,
    "HDDM_A": HDDM_A,
    "PageHinkley": PageHinkley,
    "DDM(min_num_instances=300)": lambda: DDM(min_num_instances=300),
    "EDDM(min_num_errors=200)": lambda: EDDM(min_num_errors=200),
}
REAL_DETECTORS: dict[str, Factory] = {
    "ADWIN": ADWIN,
    "PageHinkley": PageHinkley,
    "PageHinkley(both)": lambda: PageHinkley(direction="both"),
}


def abrupt_errors(rng: np.random.Generator) -> list[float]:
    p = np.r_[np.full(CHANGE, 0.1), np.full(3_000, 0.4)]
    return (rng.random(p.size) < p).astype(float).tolist()


def gradual_errors(rng: np.random.Generator) -> list[float]:
    p = np.r_[np.full(CHANGE, 0.1), np.linspace(0.1, 0.4, RAMP), np.full(2_000, 0.4)]
    return (rng.random(p.size) < p).astype(float).tolist()


def stationary_errors(rng: np.random.Generator) -> list[float]:
    return (rng.random(STATIONARY) < 0.1).astype(float).tolist()


def gaussian_shift(rng: np.random.Generator) -> list[float]:
    mu = np.r_[np.full(CHANGE, 1.0), np.full(3_000, 1.5)]
    return (mu + rng.normal(0.0, 0.2, mu.size)).tolist()


def gaussian_stationary(rng: np.random.Generator) -> list[float]:
    return rng.normal(1.0, 0.2, STATIONARY).tolist()


@dataclass
class Delays:
    delays: list[int]
    missed: int
    early: int

    def summary(self) -> tuple[str, str, str]:
        if not self.delays:
            return "-", "-", "-"
        return (
            f"{statistics.fmean(self.delays):.0f}",
            f"{statistics.median(self.delays):.0f}",
            f"{max(self.delays)}",
        )


def measure_delays(
    factory: Factory, make: Callable[[np.random.Generator], list[float]], seeds: Sequence[int]
) -> Delays:
    delays: list[int] = []
    missed = early = 0
    for seed in seeds:
        hits = run(factory(), make(np.random.default_rng(seed)))
        early += any(h < CHANGE for h in hits)
        after = [h for h in hits if h >= CHANGE]
        if after:
            delays.append(after[0] - CHANGE)
        else:
            missed += 1
    return Delays(delays, missed, early)


def false_alarms_per_10k(
    factory: Factory, make: Callable[[np.random.Generator], list[float]], seeds: Sequence[int]
) -> float:
    alarms = steps = 0
    for seed in seeds:
        stream = make(np.random.default_rng(100_000 + seed))
        alarms += len(run(factory(), stream))
        steps += len(stream)
    return alarms / steps * 10_000


def updates_per_second(factory: Factory, stream: list[float]) -> float:
    start = time.perf_counter()
    run(factory(), stream)
    return len(stream) / (time.perf_counter() - start)


def error_table(seeds: Sequence[int], table_box: box.Box) -> Table:
    table = Table(title=f"0/1 error streams, p 0.1 → 0.4, {len(seeds)} seeds", box=table_box)
    for col in ("detector", "abrupt mean/med/max", "missed", "early"):
        table.add_column(col, justify="left" if col == "detector" else "right")
    for col in ("gradual mean/med/max", "missed", "FA/10k", "updates/s"):
        table.add_column(col, justify="right")
    throughput_stream = (np.random.default_rng(0).random(THROUGHPUT_N) < 0.1).astype(float)
    stream = throughput_stream.tolist()
    for name, factory in ERROR_DETECTORS.items():
        a = measure_delays(factory, abrupt_errors, seeds)
        g = measure_delays(factory, gradual_errors, seeds)
        fa = false_alarms_per_10k(factory, stationary_errors, seeds)
        table.add_row(
            name,
            "/".join(a.summary()),
            f"{a.missed}/{len(seeds)}",
            f"{a.early}/{len(seeds)}",
            "/".join(g.summary()),
            f"{g.missed}/{len(seeds)}",
            f"{fa:.2f}",
            f"{updates_per_second(factory, stream):,.0f}",
        )
    return table


def gaussian_table(seeds: Sequence[int], table_box: box.Box) -> Table:
    table = Table(
        title=f"Gaussian mean shift 1.0 → 1.5 (σ = 0.2), {len(seeds)} seeds", box=table_box
    )
    for col in ("detector", "delay mean/med/max", "missed", "early", "FA/10k", "updates/s"):
        table.add_column(col, justify="left" if col == "detector" else "right")
    stream = np.random.default_rng(0).normal(1.0, 0.2, THROUGHPUT_N).tolist()
    for name, factory in REAL_DETECTORS.items():
        d = measure_delays(factory, gaussian_shift, seeds)
        fa = false_alarms_per_10k(factory, gaussian_stationary, seeds)
        table.add_row(
            name,
            "/".join(d.summary()),
            f"{d.missed}/{len(seeds)}",
            f"{d.early}/{len(seeds)}",
            f"{fa:.2f}",
            f"{updates_per_second(factory, stream):,.0f}",
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, default=20, help="number of seeds (default 20)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = parser.parse_args()
    seeds = range(args.seeds)
    table_box = box.MARKDOWN if args.markdown else box.SIMPLE_HEAVY
    console = Console(width=160)
    console.print(error_table(seeds, table_box))
    console.print(gaussian_table(seeds, table_box))
    console.print(
        "Delays in steps from the change; 'early' = runs that also alarmed before it; "
        "FA/10k = alarms per 10,000 stationary steps."
    )


if __name__ == "__main__":
    main()
