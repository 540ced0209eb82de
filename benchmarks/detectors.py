"""Detection delay, false alarms and throughput of the streaming drift detectors (throughput is
measured here, not asserted by the tests: a time limit fails on a busy machine).

Every detector runs with its defaults (plus the papers' settings for DDM, EDDM and HDDM_A, where
the defaults differ) over seeded synthetic 0/1 error streams:

* abrupt: error rate 0.1 for 2,000 steps, then 0.4 for 3,000 steps;
* gradual: 0.1 for 2,000 steps, a linear ramp to 0.4 over 1,000 steps, then 0.4 for 2,000;
* stationary: 0.1 for 10,000 steps, where every alarm is false.

Delay is measured from the start of the change to the first alarm at or after it; a run with
no such alarm counts as missed. "Early" counts the abrupt runs that also alarmed before the
change. A second table does the same for ADWIN and Page–Hinkley on a Gaussian stream whose
mean moves from 1.0 to 1.5 (σ = 0.2). Throughput is ``run()`` over 1,000,000 values.

A third pair of tables sets each detector beside River's implementation of the same method,
with the same parameters, on the identical streams (one change per stream):

* abrupt: error rate 0.2 for 5,000 rows, then 0.2 + Δ for 5,000 rows, Δ in 0.05, 0.1, 0.2, 0.4;
* stationary: 10,000 rows at error rate 0.1, 0.2 and 0.3, where every alarm is false.

"Detections per change" counts the alarms from the change to 1,000 rows after its first
detection, averaged over the runs that detected it (1.00 is the goal: a retrain trigger needs
one signal per change; more means a burst); "missed" counts runs with no alarm after the
change; "FA/10k" is every other alarm per 10,000 rows outside those spans: on the stationary
streams, before each change, and at the new error rate later on.

River runs in its own interpreter and is never imported here: pass ``--peer-python`` or set
``FEEDBACK_LOOP_PEER_PYTHON`` to a Python with River installed (measured with River 0.26.1:
``python -m venv peers && peers/bin/pip install river``). Without it the River columns say
"not run": River publishes no figures for these streams to print in their place.

Run with ``python benchmarks/detectors.py [--seeds 20] [--markdown] [--peer-python PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

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
    "DDM(min_num_instances=30, drift_threshold=3), paper": lambda: DDM(30, 2.0, 3.0),
    "EDDM(min_num_errors=30), paper": lambda: EDDM(min_num_errors=30),
    "HDDM_A(drift_confidence=0.001), paper": lambda: HDDM_A(0.001, 0.005),
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


# --------------------------------------------------------------- beside River, same streams

BASE_RATE = 0.2
SEGMENT = 5_000
MAGNITUDES = (0.05, 0.1, 0.2, 0.4)
STATIONARY_RATES = (0.1, 0.2, 0.3)
BURST = 1_000
PEER_ENV = "FEEDBACK_LOOP_PEER_PYTHON"


@dataclass(frozen=True)
class Pairing:
    """One of our detector configurations and River's constructor for the same method."""

    label: str
    ours: Factory
    river: str


PAIRINGS: tuple[Pairing, ...] = (
    Pairing("ADWIN", ADWIN, "drift.ADWIN()"),
    Pairing("DDM", DDM, "binary.DDM(warm_start=1000, drift_threshold=3.5)"),
    Pairing(
        "DDM, paper (30, 3)",
        lambda: DDM(min_num_instances=30, drift_threshold=3.0),
        "binary.DDM()",
    ),
    Pairing("EDDM", EDDM, "binary.EDDM(warm_start=300)"),
    Pairing("EDDM, paper (30)", lambda: EDDM(min_num_errors=30), "binary.EDDM()"),
    Pairing(
        "HDDM_A",
        HDDM_A,
        "binary.HDDMA(drift_confidence=0.0001, warning_confidence=0.0005)",
    ),
    Pairing(
        "HDDM_A, paper (δ 0.001)",
        lambda: HDDM_A(drift_confidence=0.001, warning_confidence=0.005),
        "binary.HDDMA()",
    ),
    Pairing("PageHinkley", PageHinkley, "drift.PageHinkley(mode='up')"),
)

# Runs inside the peer interpreter: argv = streams (.npy, uint8 rows), constructors (JSON).
RIVER_RUNNER = """
import json, sys
import numpy as np
import river
from river import drift
from river.drift import binary
streams = np.load(sys.argv[1])
out = {"version": river.__version__, "hits": {}}
for label, expr in json.loads(sys.argv[2]).items():
    per_stream = []
    for row in streams:
        det = eval(expr, {"drift": drift, "binary": binary})
        hits = []
        for i, x in enumerate(row.tolist()):
            det.update(x)
            if det.drift_detected:
                hits.append(i)
        per_stream.append(hits)
    out["hits"][label] = per_stream
json.dump(out, sys.stdout)
"""


@dataclass(frozen=True)
class Streams:
    """All comparison streams as one uint8 matrix, and what each row is."""

    rows: np.ndarray
    change: list[int | None]  # index of the change, None for a stationary stream
    group: list[str]  # "Δ 0.1" or "stationary"


def comparison_streams(seeds: Sequence[int]) -> Streams:
    rows: list[np.ndarray] = []
    change: list[int | None] = []
    group: list[str] = []
    for k, magnitude in enumerate(MAGNITUDES):
        p = np.r_[np.full(SEGMENT, BASE_RATE), np.full(SEGMENT, BASE_RATE + magnitude)]
        for seed in seeds:
            rng = np.random.default_rng([7, k, seed])
            rows.append(rng.random(p.size) < p)
            change.append(SEGMENT)
            group.append(f"Δ {magnitude:g}")
    for k, rate in enumerate(STATIONARY_RATES):
        for seed in seeds:
            rng = np.random.default_rng([8, k, seed])
            rows.append(rng.random(2 * SEGMENT) < rate)
            change.append(None)
            group.append("stationary")
    return Streams(np.asarray(rows, dtype=np.uint8), change, group)


@dataclass
class Outcome:
    """Per-group detection figures of one implementation."""

    delays: dict[str, list[int]]
    per_change: dict[str, list[int]]
    missed: dict[str, int]
    false_alarms: int
    quiet_rows: int

    def cells(self, group: str) -> tuple[str, str, str]:
        delays, counts = self.delays[group], self.per_change[group]
        return (
            f"{statistics.fmean(delays):.0f}" if delays else "-",
            f"{statistics.fmean(counts):.2f}" if counts else "-",
            str(self.missed[group]),
        )

    def fa_per_10k(self) -> str:
        return f"{self.false_alarms / self.quiet_rows * 10_000:.2f}"


def score(streams: Streams, hits_per_stream: Sequence[Sequence[int]]) -> Outcome:
    groups = sorted(set(streams.group) - {"stationary"}, key=lambda g: float(g.split()[1]))
    out = Outcome({g: [] for g in groups}, {g: [] for g in groups}, dict.fromkeys(groups, 0), 0, 0)
    length = streams.rows.shape[1]
    for hits, change, group in zip(hits_per_stream, streams.change, streams.group, strict=True):
        if change is None:
            out.false_alarms += len(hits)
            out.quiet_rows += length
            continue
        after = [h for h in hits if h >= change]
        if not after:
            out.false_alarms += len(hits)
            out.quiet_rows += length
            out.missed[group] += 1
            continue
        # Alarms up to BURST rows after the first detection belong to this change; any
        # other alarm is false, and the rows outside that span are where it could happen.
        end = min(after[0] + BURST, length)
        same = [h for h in after if h < end]
        out.delays[group].append(after[0] - change)
        out.per_change[group].append(len(same))
        out.false_alarms += len(hits) - len(same)
        out.quiet_rows += length - (end - change)
    return out


def run_ours(streams: Streams) -> dict[str, Outcome]:
    lists = [row.astype(float).tolist() for row in streams.rows]
    return {p.label: score(streams, [run(p.ours(), s) for s in lists]) for p in PAIRINGS}


def run_river(streams: Streams, python: str | None) -> tuple[dict[str, Outcome], str]:
    """River's figures on the same streams, or ({}, reason) when it cannot run."""
    if not python:
        return {}, f"not run: set {PEER_ENV} or --peer-python to a Python with River"
    if not Path(python).exists():
        return {}, f"not run: {python} does not exist"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "streams.npy"
        np.save(path, streams.rows)
        specs = json.dumps({p.label: p.river for p in PAIRINGS})
        proc = subprocess.run(
            [python, "-c", RIVER_RUNNER, str(path), specs],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode:
        lines = proc.stderr.strip().splitlines() or ["no output"]
        return {}, f"not run: {lines[-1]}"
    data = json.loads(proc.stdout)
    outcomes = {label: score(streams, hits) for label, hits in data["hits"].items()}
    return outcomes, f"{data['version']}, same streams and parameters"


def comparison_tables(
    seeds: Sequence[int], table_box: box.Box, peer_python: str | None
) -> tuple[Table, Table]:
    streams = comparison_streams(seeds)
    ours = run_ours(streams)
    river, river_note = run_river(streams, peer_python)
    groups = list(ours[PAIRINGS[0].label].delays)
    changes = Table(
        title=(
            f"Abrupt rise of a 0/1 error rate, {BASE_RATE} → {BASE_RATE} + Δ at row {SEGMENT:,} "
            f"of {2 * SEGMENT:,}, {len(seeds)} seeds per Δ. River: {river_note}"
        ),
        box=table_box,
    )
    changes.add_column("detector")
    changes.add_column("Δ", justify="right")
    for col in ("mean delay", "detections/change", "missed"):
        changes.add_column(f"{col}, ours", justify="right")
        changes.add_column("River", justify="right")
    for pairing in PAIRINGS:
        mine = ours[pairing.label]
        theirs = river.get(pairing.label)
        for group in groups:
            a = mine.cells(group)
            b = theirs.cells(group) if theirs else ("not run",) * 3
            changes.add_row(
                pairing.label if group == groups[0] else "",
                group.split()[1],
                *(cell for pair in zip(a, b, strict=True) for cell in pair),
            )
        changes.add_section()
    quiet = Table(
        title=(
            f"False alarms per 10,000 rows: {len(seeds)} stationary streams of {2 * SEGMENT:,} "
            f"rows at each error rate {', '.join(map(str, STATIONARY_RATES))}, and the rows of "
            f"the change streams outside [change, first detection + {BURST:,})"
        ),
        box=table_box,
    )
    quiet.add_column("detector")
    quiet.add_column("FA/10k, ours", justify="right")
    quiet.add_column("River", justify="right")
    quiet.add_column("River's constructor")
    for pairing in PAIRINGS:
        theirs = river.get(pairing.label)
        quiet.add_row(
            pairing.label,
            ours[pairing.label].fa_per_10k(),
            theirs.fa_per_10k() if theirs else "not run",
            pairing.river,
        )
    return changes, quiet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, default=20, help="number of seeds (default 20)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument(
        "--peer-python",
        default=os.environ.get(PEER_ENV),
        help=f"Python with River installed, for the side-by-side tables (default ${PEER_ENV})",
    )
    parser.add_argument(
        "--only-peers", action="store_true", help="print only the tables beside River"
    )
    args = parser.parse_args()
    seeds = range(args.seeds)
    table_box = box.MARKDOWN if args.markdown else box.SIMPLE_HEAVY
    console = Console(width=160)
    if not args.only_peers:
        console.print(error_table(seeds, table_box))
        console.print(gaussian_table(seeds, table_box))
        console.print(
            "Delays in steps from the change; 'early' = runs that also alarmed before it; "
            "FA/10k = alarms per 10,000 stationary steps."
        )
    changes, quiet = comparison_tables(seeds, table_box, args.peer_python)
    console.print(changes)
    console.print(quiet)


if __name__ == "__main__":
    main()
