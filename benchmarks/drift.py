"""Drift checks and label-free performance estimation beside Evidently, NannyML and SciPy.

What it does, in one run:

1. Generates (seeded) a reference and a current set of ``--rows`` rows (default 1,000,000)
   with 20 numerical features ``num_0..num_19`` (normal, lognormal, uniform and two-component
   mixture columns) and 5 string categorical features ``cat_0..cat_4`` (5 to 50 levels). In
   the current set 5 numerical features move (mean shifts of 0.25, 0.5 and 1 standard
   deviation, spread changes of x1.5 and x0.6) and ``cat_2``'s category frequencies change:
   6 of the 25 columns drift. A binary classifier adds ``y_pred_proba`` (a somewhat
   overconfident score), ``y_pred`` (score >= 0.5) and, in the reference only, ``y_true``
   drawn from the true, calibrated probabilities. The classifier's inputs are among the
   shifted features, so the current set has a covariate shift; its true labels are drawn too
   but only used to print the realised metrics next to the estimates.
2. Our side, in this process: reference profiles are built once (``build_profile``, reported
   as one-off work), then ``compare_many`` checks all 25 current columns against them with
   the default methods. Label-free estimation: a ``ScoreCalibrator`` is fitted on the
   reference (one-off), then ``estimate_binary`` runs on the current scores.
3. Plain SciPy in this process: ``ks_2samp`` on the 20 numerical columns and
   ``chi2_contingency`` on the 5 categorical ones (counts from pandas ``value_counts``).
4. Peers, each in its own virtual environment (their pins clash with this project's: Evidently
   0.7 does not import under pandas 3, which this project runs on), created under
   ``--cache`` (default ``.bench/peers/<name>``) from ``benchmarks/peers/<name>.txt`` with pip,
   and reused when present and importable:

   * Evidently: a ``Report`` with ``DataDriftPreset`` over the 25 columns (its default
     per-column methods; for this many rows normed Wasserstein for numbers and Jensen-Shannon
     for categories, both with threshold 0.1).
   * NannyML: ``UnivariateDriftCalculator`` over the 25 columns with Kolmogorov-Smirnov for
     numbers and chi-square for categories, the whole current set as one chunk; then ``CBPE``
     (binary, ROC AUC and accuracy) fitted on the reference and estimated on the current set.
     With a single reference chunk NannyML's default KS threshold (spread of the statistic
     over reference chunks) collapses to 0 and flags every column, so the KS alert is given a
     constant threshold: the asymptotic critical value of the KS statistic at alpha 0.05.

   The data is written once to Parquet in a temporary folder; each peer job runs as a
   subprocess that reads it, times only the drift (or estimation) call, and prints JSON back.
   A peer that cannot be installed or fails shows the first line of its error in the table.

Timings: in-process work (ours, SciPy) is the median of ``--repeat`` runs after a warm-up run;
a peer job is one run after a warm-up on the first 2,000 rows. "Extra RSS" is the rise of the
process' peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs``) above its
resident set just before the call, in a fresh subprocess that has loaded the data and made the
same 2,000-row warm-up call: one yardstick for every tool. For our side and SciPy the
tracemalloc peak (memory allocated through Python's allocators during one extra run) is shown
as well.

Targets (printed beside the results): drift of 25 columns at 1M rows within 0.5 s and 300 MB
of extra memory, at least 20x faster than NannyML and 100x faster than Evidently; binary
estimation on 1M rows within 0.5 s.

Run::

    python benchmarks/drift.py                      # full run, installs the peers first time
    python benchmarks/drift.py --rows 20000 --skip-peers   # smoke test, a few seconds
    python benchmarks/drift.py --peers nannyml --cache /tmp/peer-envs

The first full run installs the peers (several minutes); later runs reuse the environments.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table
from scipy import stats
from scipy.special import expit

import feedback_loop
from feedback_loop.stats.drift import build_profile, compare_many, profile_from_dict
from feedback_loop.stats.drift.profile import Profile
from feedback_loop.stats.estimation import ScoreCalibrator, estimate_binary

MB = 1_000_000
ALPHA = 0.05
SEED = 20_240_601
N_NUMERIC = 20
NUMERIC = [f"num_{i}" for i in range(N_NUMERIC)]
CATEGORY_LEVELS = (5, 12, 20, 35, 50)
CATEGORICAL = [f"cat_{j}" for j in range(len(CATEGORY_LEVELS))]
FEATURES = NUMERIC + CATEGORICAL
SHAPES = ("normal", "lognormal", "uniform", "mixture")
# column index -> (kind of change, size): "mean" moves the column by size standard deviations,
# "scale" multiplies its spread around the median by size.
NUMERIC_SHIFTS: dict[int, tuple[str, float]] = {
    1: ("mean", 0.5),
    4: ("mean", 0.25),
    10: ("scale", 1.5),
    12: ("scale", 0.6),
    15: ("mean", 1.0),
}
SHIFTED_CATEGORICAL = "cat_2"
EXPECTED_DRIFT = sorted([f"num_{i}" for i in NUMERIC_SHIFTS] + [SHIFTED_CATEGORICAL])
SCORE, PREDICTION, LABEL = "y_pred_proba", "y_pred", "y_true"
PEERS = ("evidently", "nannyml")
PEER_JOBS: dict[str, tuple[str, ...]] = {
    "evidently": ("evidently_drift",),
    "nannyml": ("nannyml_drift", "nannyml_cbpe"),
}
IMPORT_CHECK = {
    "evidently": (
        "import pyarrow, pandas; from evidently import Report, Dataset, DataDefinition; "
        "from evidently.presets import DataDriftPreset"
    ),
    "nannyml": "import pyarrow, pandas; from nannyml import CBPE, UnivariateDriftCalculator",
}
PEER_ENV = {"NML_DISABLE_USAGE_LOGGING": "1", "DO_NOT_TRACK": "1", "PYTHONWARNINGS": "ignore"}
RESULT_MARK = "@@RESULT@@"
# Targets at 1,000,000 rows.
DRIFT_BUDGET_S = 0.5
DRIFT_BUDGET_MB = 300.0
ESTIMATE_BUDGET_S = 0.5
MIN_SPEEDUP = {"evidently": 100.0, "nannyml": 20.0}

Columns = dict[str, NDArray[Any]]


# ----------------------------------------------------------------------------- data


def _numeric_column(rng: np.random.Generator, i: int, rows: int) -> NDArray[np.float64]:
    shape = SHAPES[i % len(SHAPES)]
    level = 1.0 + i  # different location and spread per column
    if shape == "normal":
        return rng.normal(level, 0.5 + 0.1 * i, size=rows)
    if shape == "lognormal":
        return rng.lognormal(mean=0.1 * i, sigma=0.4 + 0.02 * i, size=rows)
    if shape == "uniform":
        return rng.uniform(-level, 2.0 * level, size=rows)
    first = rng.random(rows) < 0.7
    mixed = np.where(first, rng.normal(0.0, 1.0, size=rows), rng.normal(4.0, 1.5, size=rows))
    return np.asarray(mixed, dtype=np.float64)


def _category_weights(levels: int, shifted: bool) -> NDArray[np.float64]:
    weights = 1.0 / np.arange(1, levels + 1) ** 0.8
    if shifted:
        # The most frequent quarter of the categories hands share to the rarest quarter.
        quarter = levels // 4
        weights[:quarter] *= 0.55
        weights[-quarter:] *= 3.0
    return np.asarray(weights / weights.sum(), dtype=np.float64)


def make_sets(rows: int, seed: int = SEED) -> tuple[Columns, Columns, NDArray[np.int8]]:
    """Reference and current columns, plus the current set's hidden true labels."""
    rng = np.random.default_rng(seed)
    reference: Columns = {}
    current: Columns = {}
    for i, name in enumerate(NUMERIC):
        reference[name] = _numeric_column(rng, i, rows)
        cur = _numeric_column(rng, i, rows)
        change = NUMERIC_SHIFTS.get(i)
        if change is not None and change[0] == "mean":
            cur += change[1] * float(np.std(reference[name]))
        elif change is not None:
            centre = float(np.median(reference[name]))
            cur = centre + (cur - centre) * change[1]
        current[name] = cur
    for name, levels in zip(CATEGORICAL, CATEGORY_LEVELS, strict=True):
        labels = np.array([f"{name}_level_{k:02d}" for k in range(levels)], dtype=object)
        for target, shifted in ((reference, False), (current, name == SHIFTED_CATEGORICAL)):
            codes = rng.choice(levels, size=rows, p=_category_weights(levels, shifted))
            target[name] = labels[codes]

    # A binary classifier on two of the shifted features: the true probability is
    # expit(logit); the model's score is overconfident, expit(1.4 * logit).
    def logit(cols: Columns) -> NDArray[np.float64]:
        parts = [
            (cols[name] - float(np.mean(reference[name]))) / float(np.std(reference[name]))
            for name in ("num_15", "num_12")
        ]
        return -0.4 + 1.1 * parts[0] + 0.8 * parts[1]

    labels_out: list[NDArray[np.int8]] = []
    for cols in (reference, current):
        z = logit(cols)
        cols[SCORE] = expit(1.4 * z)
        cols[PREDICTION] = (cols[SCORE] >= 0.5).astype(np.int8)
        labels_out.append((rng.random(rows) < expit(z)).astype(np.int8))
    reference[LABEL] = labels_out[0]
    return reference, current, labels_out[1]


def write_parquet(reference: Columns, current: Columns, folder: Path) -> None:
    for name, cols in (("reference", reference), ("current", current)):
        table = pa.table({key: pa.array(values) for key, values in cols.items()})
        pq.write_table(table, folder / f"{name}.parquet")


def read_parquet(path: Path, columns: Sequence[str]) -> Columns:
    """Columns as NumPy arrays: float64 for numbers, object arrays of str for categories."""
    table = pq.read_table(path, columns=list(columns))
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in columns}


# ----------------------------------------------------------------------------- measuring


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def peak_rss_extra(fn: Callable[[], Any]) -> tuple[Any, float, float, bool]:
    """(result, seconds, peak extra RSS in bytes, whether the peak could be reset)."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # resets VmHWM to the current RSS
        reset = True
    except OSError:
        reset = False
    base = _status_bytes("VmRSS")
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    return result, seconds, float(max(0, _status_bytes("VmHWM") - base)), reset


def median_seconds(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    result = fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def traced_peak(fn: Callable[[], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return float(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


@dataclass
class Outcome:
    """One measured job; ``error`` replaces the numbers when it failed."""

    seconds: float | None = None
    rss: float | None = None
    traced: float | None = None
    rss_exact: bool = True
    error: str | None = None
    flagged: list[str] | None = None
    methods: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"


# ----------------------------------------------------------------------------- our side + SciPy


def ours_drift(profiles: Mapping[str, Profile], current: Columns) -> dict[str, Any]:
    return compare_many(profiles, {name: current[name] for name in profiles})


def ours_estimate(scores: NDArray[np.float64], calibrator: ScoreCalibrator) -> dict[str, Any]:
    return dict(estimate_binary(scores, 0.5, calibrator))


def scipy_drift(reference: Columns, current: Columns) -> dict[str, float]:
    """p-value per column: KS on numbers, chi-square on value_counts tables for categories."""
    p_values: dict[str, float] = {}
    for name in NUMERIC:
        p_values[name] = float(stats.ks_2samp(reference[name], current[name]).pvalue)
    for name in CATEGORICAL:
        counts = pd.concat(
            [pd.Series(reference[name]).value_counts(), pd.Series(current[name]).value_counts()],
            axis=1,
        ).fillna(0)
        p_values[name] = float(stats.chi2_contingency(counts.to_numpy().T).pvalue)
    return p_values


def head(columns: Columns, rows: int | None) -> Columns:
    """The first ``rows`` rows of every column (views, no copies); all of them for ``None``."""
    return {name: values[:rows] for name, values in columns.items()}


def run_worker(job: str, data: Path) -> dict[str, Any]:
    """Fresh-process measurement of one of our jobs (or SciPy's) for a clean RSS reading.

    As in the peer jobs, a warm-up on the first 2,000 rows precedes the measured call.
    """
    work: Callable[[int | None], Any]
    if job == "ours_drift":
        current = read_parquet(data / "current.parquet", FEATURES)
        stored = json.loads((data / "profiles.json").read_text())
        profiles = {name: profile_from_dict(value) for name, value in stored.items()}

        def work(rows: int | None) -> Any:
            return ours_drift(profiles, head(current, rows))

    elif job == "ours_estimate":
        scores = read_parquet(data / "current.parquet", [SCORE])[SCORE]
        calibrator = ScoreCalibrator.from_dict(json.loads((data / "calibrator.json").read_text()))

        def work(rows: int | None) -> Any:
            return ours_estimate(scores[:rows], calibrator)

    elif job == "scipy_drift":
        reference = read_parquet(data / "reference.parquet", FEATURES)
        current = read_parquet(data / "current.parquet", FEATURES)

        def work(rows: int | None) -> Any:
            return scipy_drift(head(reference, rows), head(current, rows))

    else:
        raise ValueError(f"unknown worker job {job!r}")
    work(2_000)
    _, seconds, rss, exact = peak_rss_extra(lambda: work(None))
    return {"seconds": seconds, "rss": rss, "rss_exact": exact}


def measure_worker(job: str, data: Path) -> tuple[float | None, bool, str | None]:
    """Run :func:`run_worker` in a fresh interpreter: (peak extra RSS, exact, error)."""
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", job, "--data", str(data)],
        capture_output=True,
        text=True,
        check=False,
    )
    payload = parse_result(proc.stdout)
    if payload is None:
        return None, True, first_line(proc.stderr or f"exit code {proc.returncode}")
    return payload["rss"], bool(payload["rss_exact"]), None


def parse_result(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            loaded: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return loaded
    return None


# ----------------------------------------------------------------------------- peers

PEER_SCRIPT = r"""
import gc, json, sys, time, traceback, warnings
from importlib import metadata

warnings.filterwarnings("ignore")
import pandas as pd

MARK = "@@RESULT@@"


def status_bytes(key):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def measured(fn):
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        reset = True
    except OSError:
        reset = False
    base = status_bytes("VmRSS")
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    return result, {"seconds": seconds, "rss": max(0, status_bytes("VmHWM") - base),
                    "rss_exact": reset}


def versions(*names):
    return {name: metadata.version(name) for name in names}


def evidently_drift(spec, data):
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = spec["numerical"] + spec["categorical"]
    ref = pd.read_parquet(data + "/reference.parquet", columns=columns)
    cur = pd.read_parquet(data + "/current.parquet", columns=columns)
    definition = DataDefinition(
        numerical_columns=spec["numerical"], categorical_columns=spec["categorical"]
    )

    def run(reference, current):
        report = Report([DataDriftPreset()])
        snapshot = report.run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
        return snapshot.dict()

    run(ref.head(2000), cur.head(2000))
    out, timing = measured(lambda: run(ref, cur))
    flagged, methods, reported = [], set(), None
    for metric in out["metrics"]:
        config = metric.get("config", {})
        kind = str(config.get("type", ""))
        if kind.endswith("DriftedColumnsCount"):
            reported = metric["value"]["count"]
        elif kind.endswith("ValueDrift"):
            method, cut, value = config["method"], config["threshold"], metric["value"]
            methods.add(f"{method} ({cut:g})")
            drifted = value < cut if "p_value" in method else value >= cut
            if drifted:
                flagged.append(config["column"])
    return {
        "drift": timing,
        "flagged": flagged,
        "methods": sorted(methods),
        "reported_count": reported,
        "versions": versions("evidently", "pandas", "numpy", "scipy"),
    }


def nannyml_drift(spec, data):
    import nannyml as nml
    from nannyml.thresholds import ConstantThreshold

    columns = spec["numerical"] + spec["categorical"]
    ref = pd.read_parquet(data + "/reference.parquet", columns=columns)
    cur = pd.read_parquet(data + "/current.parquet", columns=columns)

    def calculator():
        return nml.UnivariateDriftCalculator(
            column_names=columns,
            treat_as_categorical=spec["categorical"],
            continuous_methods=["kolmogorov_smirnov"],
            categorical_methods=["chi2"],
            chunk_number=1,
            thresholds={"kolmogorov_smirnov": ConstantThreshold(upper=spec["ks_critical"])},
        )

    warm = calculator()
    warm.fit(ref.head(2000))
    warm.calculate(cur.head(2000))
    calc = calculator()
    _, fit = measured(lambda: calc.fit(ref))
    result, timing = measured(lambda: calc.calculate(cur))
    frame = result.filter(period="analysis").to_df()
    flagged = []
    for name in columns:
        method = "chi2" if name in spec["categorical"] else "kolmogorov_smirnov"
        if bool(frame[(name, method, "alert")].iloc[0]):
            flagged.append(name)
    return {
        "fit": fit,
        "drift": timing,
        "flagged": flagged,
        "methods": [f"kolmogorov_smirnov (D > {spec['ks_critical']:.5f})", "chi2 (p < 0.05)"],
        "versions": versions("nannyml", "pandas", "numpy", "scipy"),
    }


def nannyml_cbpe(spec, data):
    import nannyml as nml

    score, pred, label = spec["score"], spec["prediction"], spec["label"]
    ref = pd.read_parquet(data + "/reference.parquet", columns=[score, pred, label])
    cur = pd.read_parquet(data + "/current.parquet", columns=[score, pred])

    def estimator():
        return nml.CBPE(
            y_pred_proba=score,
            y_pred=pred,
            y_true=label,
            problem_type="classification_binary",
            metrics=["roc_auc", "accuracy"],
            chunk_number=1,
        )

    warm = estimator()
    warm.fit(ref.head(2000))
    warm.estimate(cur.head(2000))
    cbpe = estimator()
    _, fit = measured(lambda: cbpe.fit(ref))
    result, timing = measured(lambda: cbpe.estimate(cur))
    frame = result.filter(period="analysis").to_df()
    return {
        "fit": fit,
        "estimate": timing,
        "roc_auc": float(frame[("roc_auc", "value")].iloc[0]),
        "accuracy": float(frame[("accuracy", "value")].iloc[0]),
        "versions": versions("nannyml", "pandas", "numpy", "scipy"),
    }


if __name__ == "__main__":
    job, data, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    try:
        payload = globals()[job](spec, data)
    except Exception as exc:  # reported back instead of a number
        traceback.print_exc()
        message = (str(exc).strip().splitlines() or [""])[0]
        payload = {"error": f"{type(exc).__name__}: {message}".rstrip(": ")}
    print(MARK + json.dumps(payload), flush=True)
"""


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _imports_work(python: Path, peer: str) -> bool:
    if not python.exists():
        return False
    check = subprocess.run(
        [str(python), "-c", IMPORT_CHECK[peer]],
        capture_output=True,
        env={**os.environ, **PEER_ENV},
        check=False,
    )
    return check.returncode == 0


def ensure_peer(peer: str, cache: Path, base_python: str, console: Console) -> Path:
    """Return the peer environment's interpreter, creating the environment if needed."""
    venv = cache / peer
    python = _venv_python(venv)
    if _imports_work(python, peer):
        console.print(f"[dim]{peer}: reusing {venv}[/dim]")
        return python
    requirements = Path(__file__).resolve().parent / "peers" / f"{peer}.txt"
    if venv.exists():
        if not (venv / "pyvenv.cfg").exists():
            raise RuntimeError(f"{venv} exists and is not a virtual environment")
        shutil.rmtree(venv)
    cache.mkdir(parents=True, exist_ok=True)
    log = cache / f"{peer}.install.log"
    console.print(f"{peer}: creating {venv} from {requirements.name} (pip log: {log})")
    start = time.perf_counter()
    with log.open("w") as out:
        for command in (
            [base_python, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "--upgrade", "pip"],
            [str(python), "-m", "pip", "install", "-r", str(requirements)],
        ):
            out.write(f"$ {' '.join(command)}\n")
            out.flush()
            proc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
            if proc.returncode != 0:
                errors = [line for line in log.read_text().splitlines() if line.startswith("ERROR")]
                reason = errors[0] if errors else f"exit code {proc.returncode}"
                raise RuntimeError(f"install failed: {reason}")
    if not _imports_work(python, peer):
        check = subprocess.run(
            [str(python), "-c", IMPORT_CHECK[peer]],
            capture_output=True,
            text=True,
            env={**os.environ, **PEER_ENV},
            check=False,
        )
        raise RuntimeError(f"import failed: {first_line(check.stderr.splitlines()[-1])}")
    console.print(f"{peer}: installed in {time.perf_counter() - start:.0f} s")
    return python


def run_peer_job(
    python: Path, job: str, data: Path, spec: Mapping[str, Any], timeout: float
) -> dict[str, Any]:
    script = data / "peer_job.py"
    if not script.exists():
        script.write_text(PEER_SCRIPT)
    try:
        proc = subprocess.run(
            [str(python), str(script), job, str(data), json.dumps(spec)],
            capture_output=True,
            text=True,
            env={**os.environ, **PEER_ENV},
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    payload = parse_result(proc.stdout)
    if payload is None:
        tail = proc.stderr.strip().splitlines()
        reason = tail[-1] if tail else ""
        return {"error": f"crashed (exit code {proc.returncode}) {reason}".strip()}
    return payload


def outcome_from(payload: Mapping[str, Any], key: str) -> Outcome:
    if "error" in payload:
        return Outcome(error=str(payload["error"]))
    timing = payload[key]
    return Outcome(
        seconds=float(timing["seconds"]),
        rss=float(timing["rss"]),
        rss_exact=bool(timing["rss_exact"]),
        flagged=list(payload["flagged"]) if "flagged" in payload else None,
        methods=list(payload.get("methods", [])),
        info=dict(payload),
    )


# ----------------------------------------------------------------------------- report


@dataclass
class Row:
    """One line of a results table; ``versus`` is our outcome for the speed-up column."""

    task: str
    tool: str
    outcome: Outcome
    versus: Outcome | None = None
    target: str = ""
    met: bool | None = None


def fmt_seconds(outcome: Outcome) -> str:
    if outcome.error is not None:
        return f"[red]failed: {outcome.error}[/red]"
    seconds = outcome.seconds
    if seconds is None:
        return "—"
    if seconds < 0.1:
        return f"{seconds:.4f}"
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:.1f}"


def fmt_mb(value: float | None, exact: bool = True) -> str:
    if value is None:
        return "—"
    return f"{value / MB:,.0f}" + ("" if exact else " (≤)")


def speedup(ours: Outcome, other: Outcome) -> float | None:
    if ours.seconds is None or other.seconds is None or ours.seconds <= 0:
        return None
    return other.seconds / ours.seconds


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    return f"{ratio:,.0f}×" if ratio >= 10 else f"{ratio:.1f}×"


def verdict(ok: bool | None) -> str:
    if ok is None:
        return "—"
    return "[green]yes[/green]" if ok else "[red]no[/red]"


def results_table(title: str, rows: Sequence[Row]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("task")
    table.add_column("tool / method")
    table.add_column("time (s)", justify="right")
    table.add_column("extra RSS (MB)", justify="right")
    table.add_column("tracemalloc (MB)", justify="right")
    table.add_column("ours faster", justify="right")
    table.add_column("target")
    table.add_column("met")
    for row in rows:
        failed = row.outcome.error is not None
        table.add_row(
            row.task,
            row.tool,
            fmt_seconds(row.outcome),
            "—" if failed else fmt_mb(row.outcome.rss, row.outcome.rss_exact),
            "—" if failed else fmt_mb(row.outcome.traced),
            fmt_ratio(speedup(row.versus, row.outcome)) if row.versus is not None else "—",
            row.target,
            verdict(row.met),
        )
    return table


def flagged_table(rows: Sequence[tuple[str, Outcome]]) -> Table:
    table = Table(
        title=f"Columns flagged as drifted (expected {len(EXPECTED_DRIFT)}: "
        f"{', '.join(EXPECTED_DRIFT)})",
        title_justify="left",
    )
    table.add_column("tool")
    table.add_column("methods (threshold)")
    table.add_column("flagged", justify="right")
    table.add_column("missed")
    table.add_column("also flagged")
    for tool, outcome in rows:
        methods = ", ".join(outcome.methods) or "—"
        own_count = outcome.info.get("reported_count")
        if own_count is not None:
            methods += f"; its own drifted-column count: {own_count:g}"
        if outcome.error is not None or outcome.flagged is None:
            table.add_row(tool, methods, "—", "—", "—")
            continue
        flagged = set(outcome.flagged)
        missed = [name for name in EXPECTED_DRIFT if name not in flagged]
        extra = [name for name in FEATURES if name in flagged and name not in EXPECTED_DRIFT]
        table.add_row(
            tool,
            methods,
            f"{len(flagged)}/{len(FEATURES)}",
            ", ".join(missed) or "none",
            ", ".join(extra) or "none",
        )
    return table


# ----------------------------------------------------------------------------- main


@dataclass
class InProcess:
    """Everything measured in this process, plus the realised metrics of the current set."""

    build: Outcome
    fit_calibrator: Outcome
    drift: Outcome
    drift_encoded: Outcome
    estimate: Outcome
    scipy: Outcome
    realised: tuple[float, float]


def realised_metrics(labels: NDArray[np.int8], scores: NDArray[np.float64]) -> tuple[float, float]:
    """(accuracy at threshold 0.5, ROC AUC) against the hidden true labels."""
    accuracy = float(np.mean((scores >= 0.5) == labels.astype(bool)))
    ranks = stats.rankdata(scores)
    positives = int(labels.sum())
    negatives = labels.size - positives
    rank_sum = float(ranks[labels == 1].sum())
    return accuracy, (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def measure_in_process(rows: int, repeat: int, data: Path, console: Console) -> InProcess:
    """Generate the data, time our side and SciPy here, and write the inputs for subprocesses.

    The arrays are dropped when this returns, so the peers run without them in memory.
    """
    start = time.perf_counter()
    reference, current, hidden_labels = make_sets(rows)
    console.print(f"data generated in {time.perf_counter() - start:.1f} s")

    start = time.perf_counter()
    profiles: dict[str, Profile] = {name: build_profile(reference[name]) for name in FEATURES}
    build = Outcome(seconds=time.perf_counter() - start)
    start = time.perf_counter()
    calibrator = ScoreCalibrator.fit(reference[SCORE], reference[LABEL])
    fit_calibrator = Outcome(seconds=time.perf_counter() - start)

    def drift() -> dict[str, Any]:
        return ours_drift(profiles, current)

    def estimate() -> dict[str, Any]:
        return ours_estimate(current[SCORE], calibrator)

    def scipy_run() -> dict[str, float]:
        return scipy_drift(reference, current)

    seconds, results = median_seconds(drift, repeat)
    drift_out = Outcome(
        seconds=seconds,
        traced=traced_peak(drift),
        flagged=[name for name, res in results.items() if res.drifted],
        methods=sorted({f"{res.method} ({res.threshold:g})" for res in results.values()}),
    )
    # The log stores categorical features as codes and reads them back dictionary-encoded
    # (pandas Categorical); counting categories is then a bincount over the codes.
    encoded: Columns = {**current, **{name: pd.Categorical(current[name]) for name in CATEGORICAL}}

    def drift_encoded() -> dict[str, Any]:
        return ours_drift(profiles, encoded)

    seconds, results = median_seconds(drift_encoded, repeat)
    drift_encoded_out = Outcome(
        seconds=seconds,
        traced=traced_peak(drift_encoded),
        flagged=[name for name, res in results.items() if res.drifted],
    )
    seconds, estimated = median_seconds(estimate, repeat)
    estimate_out = Outcome(seconds=seconds, traced=traced_peak(estimate), info=estimated)
    seconds, p_values = median_seconds(scipy_run, repeat)
    scipy_out = Outcome(
        seconds=seconds,
        traced=traced_peak(scipy_run),
        flagged=[name for name, p in p_values.items() if p < ALPHA],
        methods=[f"ks_2samp (p < {ALPHA:g})", f"chi2_contingency (p < {ALPHA:g})"],
    )

    start = time.perf_counter()
    write_parquet(reference, current, data)
    stored = {name: profile.to_dict() for name, profile in profiles.items()}
    (data / "profiles.json").write_text(json.dumps(stored))
    (data / "calibrator.json").write_text(json.dumps(calibrator.to_dict()))
    console.print(f"Parquet and profiles written in {time.perf_counter() - start:.1f} s")
    return InProcess(
        build=build,
        fit_calibrator=fit_calibrator,
        drift=drift_out,
        drift_encoded=drift_encoded_out,
        estimate=estimate_out,
        scipy=scipy_out,
        realised=realised_metrics(hidden_labels, current[SCORE]),
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per set")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs for in-process work")
    parser.add_argument("--skip-peers", action="store_true", help="run ours and SciPy only")
    parser.add_argument(
        "--peers", default=",".join(PEERS), help="comma-separated subset of evidently,nannyml"
    )
    parser.add_argument(
        "--cache", type=Path, default=Path(".bench/peers"), help="folder of peer environments"
    )
    parser.add_argument(
        "--python", default="python3", help="interpreter that creates the peer environments"
    )
    parser.add_argument(
        "--peer-timeout", type=float, default=3600.0, help="seconds allowed per peer job"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    peers = [name.strip() for name in args.peers.split(",") if name.strip()]
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        parser.error(f"unknown peers {unknown}; choose from {list(PEERS)}")
    if args.rows < 2_000:
        parser.error("--rows must be at least 2000")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.peer_list = [] if args.skip_peers else [name for name in PEERS if name in peers]
    return args


def run_peers(
    peers: Sequence[str], args: argparse.Namespace, data: Path, console: Console
) -> dict[str, dict[str, Any]]:
    spec = {
        "numerical": NUMERIC,
        "categorical": CATEGORICAL,
        "score": SCORE,
        "prediction": PREDICTION,
        "label": LABEL,
        # Asymptotic critical value of the two-sample KS statistic at ALPHA, n = m = rows.
        "ks_critical": math.sqrt(-math.log(ALPHA / 2) / 2) * math.sqrt(2.0 / args.rows),
    }
    results: dict[str, dict[str, Any]] = {}
    for peer in peers:
        try:
            python = ensure_peer(peer, args.cache, args.python, console)
        except RuntimeError as exc:
            reason = first_line(str(exc))
        except OSError as exc:
            reason = f"install failed: {first_line(str(exc))}"
        else:
            for job in PEER_JOBS[peer]:
                console.print(f"running {job} ...")
                started = time.perf_counter()
                results[job] = run_peer_job(python, job, data, spec, args.peer_timeout)
                status = results[job].get("error", "ok")
                console.print(f"  {status} after {time.perf_counter() - started:.0f} s (wall)")
            continue
        console.print(f"[red]{peer}: {reason}[/red]")
        for job in PEER_JOBS[peer]:
            results[job] = {"error": reason}
    return results


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(RESULT_MARK + json.dumps(run_worker(args.worker, args.data)), flush=True)
        return
    console = Console(width=max(160, Console().width))
    load = os.getloadavg()
    console.print(
        f"[bold]Drift and label-free estimation benchmark[/bold]: {args.rows:,} rows per set, "
        f"{len(NUMERIC)} numerical + {len(CATEGORICAL)} categorical features"
    )
    console.print(
        f"cpus={os.cpu_count()}  load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}  "
        f"python {sys.version.split()[0]}  feedback-loop {feedback_loop.__version__}  "
        f"numpy {np.__version__}  pandas {pd.__version__}  scipy {scipy.__version__}"
    )
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        data = Path(tmp)
        ours = measure_in_process(args.rows, args.repeat, data, console)
        gc.collect()
        for job, outcome in (
            ("ours_drift", ours.drift),
            ("ours_estimate", ours.estimate),
            ("scipy_drift", ours.scipy),
        ):
            outcome.rss, outcome.rss_exact, error = measure_worker(job, data)
            if error is not None:
                console.print(f"[red]RSS measurement of {job} failed: {error}[/red]")
        peer_results = run_peers(args.peer_list, args, data, console)
    load = os.getloadavg()
    console.print(f"load average after the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    report(console, args, ours, peer_results)


def report(
    console: Console,
    args: argparse.Namespace,
    ours: InProcess,
    peer_results: Mapping[str, Mapping[str, Any]],
) -> None:
    full_size = args.rows >= 1_000_000
    drift, estimate = ours.drift, ours.estimate
    drift_ok = (
        drift.seconds is not None
        and drift.rss is not None
        and drift.seconds <= DRIFT_BUDGET_S
        and drift.rss <= DRIFT_BUDGET_MB * MB
    )
    monitoring = [
        Row(
            "drift",
            "ours: compare_many vs stored profiles",
            drift,
            target=f"≤ {DRIFT_BUDGET_S} s, ≤ {DRIFT_BUDGET_MB:.0f} MB",
            met=drift_ok if full_size else None,
        )
    ]
    flags: list[tuple[str, Outcome]] = [("ours", drift), ("ours, encoded", ours.drift_encoded)]
    one_off = [
        Row("reference", "ours: build_profile × 25", ours.build),
        Row("reference", "ours: ScoreCalibrator.fit", ours.fit_calibrator),
    ]
    estimates: list[tuple[str, Any, Any]] = [
        ("ours: estimate_binary", estimate.info.get("accuracy"), estimate.info.get("roc_auc"))
    ]
    for peer, tool in (
        ("evidently", "Evidently: Report + DataDriftPreset"),
        ("nannyml", "NannyML: UnivariateDriftCalculator.calculate"),
    ):
        if peer not in args.peer_list:
            continue
        payload = peer_results[f"{peer}_drift"]
        outcome = outcome_from(payload, "drift")
        ratio = speedup(drift, outcome)
        target = f"ours ≥ {MIN_SPEEDUP[peer]:.0f}× faster"
        met = ratio >= MIN_SPEEDUP[peer] if ratio is not None and full_size else None
        monitoring.append(Row("drift", tool, outcome, drift, target, met))
        encoded_ratio = speedup(ours.drift_encoded, outcome)
        monitoring.append(
            Row(
                "drift",
                f"  vs ours with categoricals dictionary-encoded (as read from the log): "
                f"{ours.drift_encoded.seconds or 0:.3f} s",
                outcome,
                ours.drift_encoded,
                target,
                encoded_ratio >= MIN_SPEEDUP[peer]
                if encoded_ratio is not None and full_size
                else None,
            )
        )
        flags.append((tool.split(":")[0], outcome))
        if peer == "nannyml":
            fit = outcome_from(payload, "fit")
            one_off.append(Row("reference", "NannyML: UnivariateDriftCalculator.fit", fit))
    monitoring.append(Row("drift", "SciPy: ks_2samp + chi2_contingency", ours.scipy, drift))
    flags.append(("SciPy", ours.scipy))
    monitoring.append(
        Row(
            "estimation",
            "ours: estimate_binary",
            estimate,
            target=f"≤ {ESTIMATE_BUDGET_S} s",
            met=(estimate.seconds or math.inf) <= ESTIMATE_BUDGET_S if full_size else None,
        )
    )
    if "nannyml" in args.peer_list:
        cbpe = peer_results["nannyml_cbpe"]
        monitoring.append(
            Row("estimation", "NannyML: CBPE.estimate", outcome_from(cbpe, "estimate"), estimate)
        )
        one_off.append(Row("reference", "NannyML: CBPE.fit", outcome_from(cbpe, "fit")))
        estimates.append(("NannyML: CBPE", cbpe.get("accuracy"), cbpe.get("roc_auc")))

    console.print()
    console.print(
        results_table(
            f"Monitoring work: drift of 25 columns and binary estimation on {args.rows:,} "
            "current rows",
            monitoring,
        )
    )
    console.print(results_table("One-off reference work (not part of the comparison)", one_off))
    console.print(flagged_table(flags))

    est_table = Table(
        title="Label-free estimates on the current set (no labels used)", title_justify="left"
    )
    est_table.add_column("tool")
    est_table.add_column("accuracy", justify="right")
    est_table.add_column("ROC AUC", justify="right")
    for tool, accuracy, auc in [*estimates, ("realised, from the hidden labels", *ours.realised)]:
        est_table.add_row(
            tool,
            "—" if accuracy is None else f"{accuracy:.4f}",
            "—" if auc is None else f"{auc:.4f}",
        )
    console.print(est_table)

    envs: dict[str, dict[str, str]] = {}
    for job, payload in peer_results.items():
        envs.setdefault(job.split("_")[0], {}).update(payload.get("versions", {}))
    for env, found in envs.items():
        listed = ", ".join(f"{name} {version}" for name, version in found.items())
        console.print(f"{env} environment: {listed or 'versions unknown'}")
    console.print(
        f"Timings: ours and SciPy median of {args.repeat} runs after a warm-up; peers one run "
        "after a warm-up on 2,000 rows. Extra RSS: fresh subprocess, rise of VmHWM over "
        "VmRSS right before the call; (≤) marks a figure whose peak could not be reset first."
    )
    if not full_size:
        console.print(f"Targets apply at 1,000,000 rows; not judged at {args.rows:,}.")


if __name__ == "__main__":
    main()
