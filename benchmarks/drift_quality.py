"""Quality of the default drift verdict: false alarms on stationary windows, detection of shifts.

What it measures, for windows of 1k, 10k, 100k and 1M rows (``--sizes``):

* Synthetic data, six columns: ``normal`` N(0, 1), ``lognormal`` exp N(0, 0.5), ``uniform``,
  ``bimodal`` (0.6 N(-1, 0.5) + 0.4 N(1.5, 0.7)), ``cat5`` (5 levels) and ``cat20`` (20
  levels, Zipf-like). The reference holds ``max(200,000, 10 × size)`` rows, so NannyML sees at
  least ten reference chunks of the window's size.
* Stationary windows, drawn from the reference's distribution: the share of checks where any
  of the six columns is flagged is the false-alarm rate (target: at most 1 per 100 checks).
* Shifted windows, one column moved per scenario, in graded sizes: a mean shift of
  ``normal``, a spread change of ``lognormal`` and a frequency shift of ``cat20`` (mixed
  towards the reversed frequencies), four grades each, labelled by their PSI on reference
  deciles (measured on a million rows; the grades include PSI 0.08-0.15). Detection rate:
  the share of windows where the moved column is flagged.
* Real data (Elec2, bundled with the package, six features): the reference is the first year
  without every seventh day; the held-out days of that year are stationary in the sense that
  matters (same period, only the day-to-day variation the reference also shows), so flags on
  them are false alarms on real data. Daily windows of the later 1.6 years and 1,000-row
  windows (about three weeks) show how often each verdict calls drift on a drifting stream.

Verdicts compared, all per window over all six columns:

* ``ours``: the product's default (``compare_many`` with no method: the calibrated verdict,
  family-wise 1% split over the six columns; on numbers the omnibus chi-square and its linear
  and quadratic components share the column's level), profiles built once per reference;
* ``ours, omnibus only``: the calibrated verdict without the ordered components (the omnibus
  chi-square at the column's whole level), as it was before them;
* ``ours, size rule``: the earlier default (KS / chi-square at alpha 0.05 up to 10,000 rows,
  PSI > 0.2 above), still available as ``large_sample=10_000``;
* NannyML: ``UnivariateDriftCalculator`` with its defaults (Jensen-Shannon, alert above the
  mean + 3 standard deviations over reference chunks), chunk size = window size;
* Evidently: ``Report([DataDriftPreset()])`` with its defaults, one run per window.

Peers run in their own virtual environments through small runner scripts under
``benchmarks/peers/`` (spec and results as JSON files, data as Parquet); their interpreters
come from ``--nannyml-python`` / ``--evidently-python`` or the ``DRIFT_QUALITY_NANNYML_PYTHON``
/ ``DRIFT_QUALITY_EVIDENTLY_PYTHON`` environment variables; a peer without one prints "not
run". They see fewer windows (``--peer-rows``, a row budget per scenario, and
``--peer-windows``) and Evidently only windows up to 10,000 rows (``--peer-max-size``; a run
takes seconds at 1,000 rows and about a minute at a million); each table cell gives its
number of windows.

Run::

    python benchmarks/drift_quality.py --nannyml-python /path/to/nannyml-venv/bin/python \\
        --evidently-python /path/to/evidently-venv/bin/python
    python benchmarks/drift_quality.py --quick      # seconds: 1k and 10k, fewer windows
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from feedback_loop.datasets import ELEC2_FEATURES, load_elec2
from feedback_loop.stats.drift import build_profile, compare_many
from feedback_loop.stats.drift.profile import LARGE_SAMPLE, Profile
from feedback_loop.stats.drift.univariate import bin_counts, quantile_edges

NUMERICAL = ["normal", "lognormal", "uniform", "bimodal"]
CATEGORICAL = ["cat5", "cat20"]
COLUMNS = NUMERICAL + CATEGORICAL
CAT5_P = np.array([0.4, 0.25, 0.15, 0.12, 0.08])
CAT20_P = 1.0 / np.arange(1, 21)
CAT20_P /= CAT20_P.sum()
PEERS = ("nannyml", "evidently")
HERE = Path(__file__).resolve().parent
VERDICTS = ("ours", "ours, omnibus only", "ours, size rule", "nannyml", "evidently")


@dataclass(frozen=True)
class Shift:
    """One moved column: ``kind`` in mean/scale/frequency, ``amount`` its parameter."""

    column: str
    kind: str
    amount: float

    @property
    def label(self) -> str:
        return f"{self.kind} {self.amount:g} ({self.column})"


SHIFTS = [
    *(Shift("normal", "mean", a) for a in (0.05, 0.1, 0.3, 0.4)),
    *(Shift("lognormal", "scale", a) for a in (1.05, 1.1, 1.4, 1.6)),
    *(Shift("cat20", "frequency", a) for a in (0.05, 0.1, 0.3, 0.4)),
]


def generate(rng: np.random.Generator, rows: int, shift: Shift | None = None) -> pd.DataFrame:
    """Rows of the synthetic distribution, with ``shift`` applied to its column."""
    mean = shift.amount if shift is not None and shift.kind == "mean" else 0.0
    spread = shift.amount if shift is not None and shift.kind == "scale" else 1.0
    mix = shift.amount if shift is not None and shift.kind == "frequency" else 0.0
    component = rng.random(rows) < 0.6
    bimodal = np.where(component, rng.normal(-1.0, 0.5, size=rows), rng.normal(1.5, 0.7, size=rows))
    cat20_p = (1.0 - mix) * CAT20_P + mix * CAT20_P[::-1]
    return pd.DataFrame(
        {
            "normal": rng.normal(mean, 1.0, size=rows),
            "lognormal": np.exp(rng.normal(0.0, 0.5 * spread, size=rows)),
            "uniform": rng.random(rows),
            "bimodal": bimodal,
            "cat5": pd.Categorical.from_codes(
                rng.choice(5, size=rows, p=CAT5_P), categories=[f"c{i}" for i in range(5)]
            ),
            "cat20": pd.Categorical.from_codes(
                rng.choice(20, size=rows, p=cat20_p), categories=[f"k{i}" for i in range(20)]
            ),
        }
    )


def shift_psi(shift: Shift, rows: int = 1_000_000) -> float:
    """PSI of the moved column against the unmoved one on reference deciles (or categories)."""
    rng = np.random.default_rng(123)
    base = generate(rng, rows)[shift.column]
    moved = generate(rng, rows, shift)[shift.column]
    if shift.column in CATEGORICAL:
        p = base.value_counts(sort=False).to_numpy(dtype=float)
        q = moved.value_counts(sort=False).to_numpy(dtype=float)
    else:
        edges = quantile_edges(np.sort(base.to_numpy()), 10)
        p = bin_counts(base.to_numpy(), edges).astype(float)
        q = bin_counts(moved.to_numpy(), edges).astype(float)
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def profiles_of(frame: pd.DataFrame) -> dict[str, Profile]:
    return {
        name: build_profile(
            frame[name].to_numpy(dtype=object)
            if name in CATEGORICAL or frame[name].dtype == object
            else frame[name].to_numpy(dtype=np.float64),
            "categorical" if name in CATEGORICAL else "numeric",
        )
        for name in frame.columns
    }


def omnibus_only(profiles: dict[str, Profile]) -> dict[str, Profile]:
    """The profiles without the ordered components' tables: the omnibus chi-square alone at
    the whole level, as the calibrated verdict was before the components."""
    return {
        name: p
        if p.variation is None
        else replace(p, variation=replace(p.variation, components=()))
        for name, p in profiles.items()
    }


def our_verdicts(
    profiles: dict[str, Profile], window: pd.DataFrame, omnibus: dict[str, Profile] | None = None
) -> dict[str, list[str]]:
    """Flagged columns under the product's default, the omnibus alone and the size rule."""
    current = {
        name: window[name].array if name in CATEGORICAL else window[name].to_numpy()
        for name in profiles
    }
    calibrated = compare_many(profiles, current)
    plain = compare_many(omnibus or omnibus_only(profiles), current)
    size_rule = compare_many(profiles, current, large_sample=LARGE_SAMPLE)
    return {
        "ours": [n for n, r in calibrated.items() if r.drifted],
        "ours, omnibus only": [n for n, r in plain.items() if r.drifted],
        "ours, size rule": [n for n, r in size_rule.items() if r.drifted],
    }


@dataclass
class Tally:
    """Hits over windows for one verdict in one cell of a table."""

    hits: int = 0
    windows: int = 0

    def add(self, hit: bool) -> None:
        self.hits += int(hit)
        self.windows += 1

    def cell(self) -> str:
        if not self.windows:
            return "not run"
        return f"{self.hits / self.windows:.1%} ({self.hits}/{self.windows})"


@dataclass
class Scenario:
    """A row of a table: its windows' flagged columns per verdict, and what counts as a hit."""

    name: str
    size: int
    target: str | None  # the moved column; None: any flag is a (false) alarm
    tallies: dict[str, Tally] = field(default_factory=lambda: {v: Tally() for v in VERDICTS})

    def record(self, verdict: str, flagged: Sequence[str]) -> None:
        hit = bool(flagged) if self.target is None else self.target in flagged
        self.tallies[verdict].add(hit)


@dataclass
class PeerBatch:
    """Windows handed to the peers: ``count`` windows of ``size`` rows in one Parquet file."""

    id: str
    path: str
    size: int
    scenario: Scenario
    windows: int


def peer_count(windows: int, size: int, budget: int, minimum: int, most: int) -> int:
    return min(windows, most, max(minimum, budget // size))


def peer_flags(
    peer: str,
    python: str | None,
    reference_path: Path,
    numerical: list[str],
    categorical: list[str],
    batches: list[PeerBatch],
    workdir: Path,
) -> tuple[dict[str, list[list[str]]], str]:
    """Run ``benchmarks/peers/<peer>_quality.py`` under ``python``: flags per batch, a note."""
    if not python:
        return {}, "not run (no interpreter given)"
    if not Path(python).exists():
        return {}, f"not run ({python} does not exist)"
    spec_path, out_path = workdir / f"{peer}-spec.json", workdir / f"{peer}-out.json"
    spec = {
        "reference": str(reference_path),
        "numerical": numerical,
        "categorical": categorical,
        "batches": [
            {"id": b.id, "path": b.path, "chunk_size": b.size, "windows": b.windows}
            for b in batches
        ],
    }
    spec_path.write_text(json.dumps(spec))
    script = HERE / "peers" / f"{peer}_quality.py"
    done = subprocess.run(
        [python, str(script), str(spec_path), str(out_path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return {}, f"failed: {lines[-1] if lines else done.returncode}"
    out = json.loads(out_path.read_text())
    versions = ", ".join(f"{k} {v}" for k, v in out.get("versions", {}).items())
    return out["batches"], f"{versions}; {out['seconds']:.0f} s"


def synthetic(
    sizes: Sequence[int],
    stationary: int,
    shifted: int,
    peer_rows: dict[str, int],
    peer_windows: dict[str, int],
    peer_max_size: dict[str, int],
    pythons: dict[str, str | None],
    workdir: Path,
    seed: int,
) -> tuple[list[Scenario], dict[str, list[str]]]:
    scenarios: list[Scenario] = []
    notes: dict[str, list[str]] = {peer: [] for peer in PEERS}
    for size in sizes:
        rng = np.random.default_rng([seed, size])
        reference = generate(rng, max(200_000, 10 * size))
        started = time.perf_counter()
        profiles = profiles_of(reference)
        omnibus = omnibus_only(profiles)
        print(
            f"  {size:>9,} rows: reference {len(reference):,} rows profiled in "
            f"{time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        reference_path = workdir / f"reference-{size}.parquet"
        if any(pythons.values()):
            reference.to_parquet(reference_path)
        del reference
        plan: list[tuple[Scenario, Shift | None, int]] = [
            (Scenario("stationary", size, None), None, stationary)
        ]
        plan += [(Scenario(shift.label, size, shift.column), shift, shifted) for shift in SHIFTS]
        batches: dict[str, list[PeerBatch]] = {peer: [] for peer in PEERS}
        for index, (scenario, shift, count) in enumerate(plan):
            kept: list[pd.DataFrame] = []
            keep = {
                peer: peer_count(
                    count, size, peer_rows[peer], 2 if shift else 5, peer_windows[peer]
                )
                for peer in PEERS
                if pythons.get(peer) and size <= peer_max_size[peer]
            }
            most = max(keep.values(), default=0)
            for i in range(count):
                window = generate(rng, size, shift)
                for verdict, flagged in our_verdicts(profiles, window, omnibus).items():
                    scenario.record(verdict, flagged)
                if i < most:
                    kept.append(window)
            for peer, n in keep.items():
                path = workdir / f"{peer}-{size}-{index}.parquet"
                pd.concat(kept[:n], ignore_index=True).to_parquet(path)
                batch = PeerBatch(f"{size}-{index}", str(path), size, scenario, n)
                batches[peer].append(batch)
            scenarios.append(scenario)
        for peer in PEERS:
            if pythons.get(peer) and size > peer_max_size[peer]:
                notes[peer].append(f"{size:,} rows: not run (above --peer-max-size)")
            if not pythons.get(peer) or size > peer_max_size[peer]:
                continue
            flags, note = peer_flags(
                peer,
                pythons[peer],
                reference_path,
                NUMERICAL,
                CATEGORICAL,
                batches[peer],
                workdir,
            )
            notes[peer].append(f"{size:,} rows: {note}")
            for batch in batches[peer]:
                for flagged in flags.get(batch.id, []):
                    batch.scenario.record(peer, flagged)
            for batch in batches[peer]:
                Path(batch.path).unlink(missing_ok=True)
        reference_path.unlink(missing_ok=True)
    return scenarios, notes


def elec2(
    pythons: dict[str, str | None], peer_windows: dict[str, int], workdir: Path
) -> tuple[list[Scenario], dict[str, list[str]]]:
    """Elec2: held-out days of the reference year, later days, later 1,000-row windows."""
    frame = load_elec2()[ELEC2_FEATURES].astype(np.float64)
    per_day = 48
    day = np.arange(len(frame)) // per_day
    first_year = day < 365
    held_out = first_year & (day % 7 == 3)
    reference = frame[first_year & ~held_out].reset_index(drop=True)
    profiles = profiles_of(reference)
    later = frame[~first_year].reset_index(drop=True)
    groups = [
        ("Elec2 held-out days of the reference year", per_day, frame[held_out]),
        ("Elec2 later days", per_day, later),
        ("Elec2 later 1,000-row windows", 1_000, later),
    ]
    scenarios: list[Scenario] = []
    batches: dict[str, list[PeerBatch]] = {peer: [] for peer in PEERS}
    reference_path = workdir / "elec2-reference.parquet"
    reference.to_parquet(reference_path)
    for index, (name, size, rows) in enumerate(groups):
        rows = rows.reset_index(drop=True)
        usable = len(rows) // size * size
        rows = rows.iloc[:usable]
        scenario = Scenario(name, size, None)
        for start in range(0, usable, size):
            window = rows.iloc[start : start + size]
            for verdict, flagged in our_verdicts(profiles, window).items():
                scenario.record(verdict, flagged)
        path = workdir / f"elec2-{index}.parquet"
        rows.to_parquet(path)
        for peer in PEERS:
            count = min(usable // size, peer_windows[peer])
            batches[peer].append(PeerBatch(f"elec2-{index}", str(path), size, scenario, count))
        scenarios.append(scenario)
    notes: dict[str, list[str]] = {peer: [] for peer in PEERS}
    for peer in PEERS:
        flags, note = peer_flags(
            peer, pythons.get(peer), reference_path, ELEC2_FEATURES, [], batches[peer], workdir
        )
        notes[peer].append(f"Elec2: {note}")
        for batch in batches[peer]:
            for flagged in flags.get(batch.id, []):
                batch.scenario.record(peer, flagged)
    return scenarios, notes


def table(title: str, rows: list[Scenario], first: Callable[[Scenario], str]) -> None:
    print(f"\n{title}\n")
    print("| window | scenario | " + " | ".join(VERDICTS) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in VERDICTS) + " |")
    for row in rows:
        cells = " | ".join(row.tallies[v].cell() for v in VERDICTS)
        print(f"| {row.size:,} | {first(row)} | {cells} |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--stationary", type=int, default=200, help="stationary windows a size")
    parser.add_argument("--shifted", type=int, default=50, help="windows per shift scenario")
    parser.add_argument(
        "--peer-rows",
        default="nannyml=5000000,evidently=300000",
        help="row budget per scenario and size for each peer (at least 5 stationary windows "
        "and 2 shifted ones)",
    )
    parser.add_argument(
        "--peer-max-size",
        default="nannyml=1000000,evidently=10000",
        help="largest window each peer runs on (Evidently takes a minute a run at 1M rows)",
    )
    parser.add_argument(
        "--peer-windows",
        default="nannyml=1000,evidently=5",
        help="most windows per scenario for each peer (Evidently takes about a second a run)",
    )
    parser.add_argument("--nannyml-python", default=os.environ.get("DRIFT_QUALITY_NANNYML_PYTHON"))
    parser.add_argument(
        "--evidently-python", default=os.environ.get("DRIFT_QUALITY_EVIDENTLY_PYTHON")
    )
    parser.add_argument("--skip-elec2", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="1k and 10k rows, fewer windows")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    stationary, shifted = args.stationary, args.shifted
    if args.quick:
        sizes, stationary, shifted = [s for s in sizes if s <= 10_000], 50, 10
    peer_rows = {k: int(v) for k, v in (item.split("=") for item in args.peer_rows.split(","))}
    peer_max_size = {
        k: int(v) for k, v in (item.split("=") for item in args.peer_max_size.split(","))
    }
    peer_windows = {
        k: int(v) for k, v in (item.split("=") for item in args.peer_windows.split(","))
    }
    pythons: dict[str, str | None] = {
        "nannyml": args.nannyml_python,
        "evidently": args.evidently_python,
    }
    grades = {shift.label: shift_psi(shift) for shift in SHIFTS}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="drift-quality-") as tmp:
        workdir = Path(tmp)
        scenarios, notes = synthetic(
            sizes,
            stationary,
            shifted,
            peer_rows,
            peer_windows,
            peer_max_size,
            pythons,
            workdir,
            args.seed,
        )
        real: list[Scenario] = []
        if not args.skip_elec2:
            real, real_notes = elec2(pythons, peer_windows, workdir)
            for peer in PEERS:
                notes[peer] += real_notes[peer]
    print("# Drift verdicts: false alarms and detection (benchmarks/drift_quality.py)")
    print(
        "\nA window counts as a false alarm when any of its six columns is flagged; a shifted "
        "window counts as detected when its moved column is flagged. Cells: rate (hits/windows)."
    )
    table(
        "## False alarms on stationary windows (target: at most 1%)",
        [s for s in scenarios if s.target is None],
        lambda s: s.name,
    )
    table(
        "## Detection of shifted windows (PSI of the shift on reference deciles)",
        [s for s in scenarios if s.target is not None],
        lambda s: f"{s.name}, PSI {grades[s.name]:.3f}",
    )
    if real:
        table(
            "## Elec2 (real data, six features): share of windows flagged",
            real,
            lambda s: s.name,
        )
    print("\nPeers:")
    for peer in PEERS:
        print(f"- {peer}: " + ("; ".join(notes[peer]) if notes[peer] else "not run"))
    print(f"\nTotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
