"""Monitoring measured end to end: what a user calls, in a fresh process, beside NannyML.

    python benchmarks/e2e.py --quick                      # 100k rows, SQLite and PostgreSQL
    python benchmarks/e2e.py --rows 100000,1000000 --json e2e.json
    python benchmarks/e2e.py --rows 1000000 --nannyml-python /path/to/venv/bin/python

For each row count and database, the reference is set first (``set_reference`` with features,
scores and labels of the first fifth of the rows, at most 200,000), as for a model in
production, then the rows are logged through the public API: ``FeedbackLoop.log_predictions``
(a DataFrame of 20 numerical and 5 categorical features and a binary classifier's positive-class
score, spread over six days), then ``log_outcomes`` for every prediction, so the drift summaries
and metric blocks are kept as the rows arrive. Five numerical features and one categorical
feature move after the reference's rows. Then each call is timed in a FRESH process (a
subprocess that opens the loop and makes the call twice: "first" pays the imports' first use,
the connections and whatever counting a bulk load left to the reader, "second" is the steady
state):

* ``check_drift(window='7d')`` (every feature, the prediction and the label),
* ``estimate_performance(window='7d')``,
* ``get_metrics('7d')``.

With ``--repeat 1`` "first" is the first call after the bulk load.

Measured: CPU seconds of the client process (``time.process_time``: every thread), on
PostgreSQL plus the CPU of the server processes serving the client's connections (``utime +
stime`` from ``/proc/<pid>/stat`` of the backends whose title names the client's ports, before
and after; the JSON also holds the whole server's CPU delta, which includes other clients' work
on a shared server), wall seconds, and the peak resident set of the child (``VmHWM``, imports
included; ``ru_maxrss`` would report the forking parent's peak). Each figure is the median of
``--repeat`` (3) fresh processes.

Beside them, on the same rows written to Parquet (the window's rows as current, the reference
rows as reference), each in a fresh process too:

* NannyML ``UnivariateDriftCalculator`` (default methods and thresholds, the window as one chunk)
  and ``CBPE`` (binary, ROC AUC and accuracy, one chunk), in NannyML's own virtual environment
  (``--nannyml-python`` or ``FEEDBACK_LOOP_NANNYML_PYTHON``; otherwise created and reused under
  ``--cache`` the way ``benchmarks/drift.py`` does). Reading the Parquet is included, fitting on
  the reference is reported apart (one-off work, like ``set_reference``).
* the floor: a pyarrow read of the window's Parquet and NumPy PSI on the reference's deciles
  (and category shares), in this project's interpreter.

Targets (printed as pass/fail): ``check_drift('7d')`` over 1M rows within 0.25 s CPU; 3M within
1.5x of 1M; peak RSS within 300 MB at 3M; estimate within 0.3 s; ``get_metrics`` within 0.1 s,
first call after a bulk load included (CPU seconds, server's included on PostgreSQL).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

NOW = datetime(2026, 1, 8, tzinfo=UTC)
BATCH = 100_000
N_NUMERIC = 20
LEVELS = (5, 10, 20, 30, 50)
NUMERIC = [f"num_{i}" for i in range(N_NUMERIC)]
CATEGORICAL = [f"cat_{j}" for j in range(len(LEVELS))]
FEATURES = NUMERIC + CATEGORICAL
SHIFTED_NUMERIC = ("num_0", "num_3", "num_7", "num_11", "num_16")
SHIFTED_CATEGORICAL = "cat_2"
OPS = ("check_drift", "estimate", "get_metrics")
PEER_ENV = {"NML_DISABLE_USAGE_LOGGING": "1", "DO_NOT_TRACK": "1", "PYTHONWARNINGS": "ignore"}
MARK = "@@RESULT@@"
MB = 1_000_000
# targets: (label, seconds or MB)
DRIFT_CPU_1M = 0.25
DRIFT_SCALING_3M = 1.5
RSS_3M_MB = 300.0
ESTIMATE_CPU = 0.3
METRICS_CPU = 0.1


# ----------------------------------------------------------------------------- data


def make_frame(rng: np.random.Generator, n: int, shifted: bool) -> pd.DataFrame:
    """Features of ``n`` predictions; ``shifted`` moves five numbers and one category."""
    out: dict[str, Any] = {}
    for i, name in enumerate(NUMERIC):
        column = rng.normal(0.1 * i, 1.0 + 0.05 * i, n)
        if shifted and name in SHIFTED_NUMERIC:
            column = column + 0.5
        out[name] = column
    for name, k in zip(CATEGORICAL, LEVELS, strict=True):
        weights = 1.0 / np.arange(1, k + 1) ** 0.8
        if shifted and name == SHIFTED_CATEGORICAL:
            weights = weights[::-1].copy()
        labels = np.array([f"{name}_{j:02d}" for j in range(k)], dtype=object)
        out[name] = labels[rng.choice(k, size=n, p=weights / weights.sum())]
    return pd.DataFrame(out)


def score_and_label(rng: np.random.Generator, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A somewhat overconfident positive-class score and a label drawn from the truth."""
    z = -0.3 + 0.9 * frame["num_3"].to_numpy() - 0.6 * frame["num_5"].to_numpy()
    truth = 1.0 / (1.0 + np.exp(-z))
    score = 1.0 / (1.0 + np.exp(-1.3 * z))
    return score.round(12), (rng.random(len(frame)) < truth).astype(np.int64)


def reference_rows(rows: int) -> int:
    return min(rows // 5, 200_000)


def batches(rows: int) -> Iterator[tuple[np.ndarray, pd.DataFrame, np.ndarray, np.ndarray]]:
    """The logged rows batch by batch, ``(row numbers, features, score, label)``; the same every
    time (one seed), so the reference can be drawn from the first batches before they are
    logged."""
    rng = np.random.default_rng(7)
    n_ref = reference_rows(rows)
    for start in range(0, rows, BATCH):
        n = min(BATCH, rows - start)
        idx = np.arange(start, start + n)
        frame = make_frame(rng, n, shifted=False)
        moved = make_frame(rng, n, shifted=True)
        late = idx >= n_ref
        frame.loc[late] = moved.loc[late].to_numpy()
        frame = frame.astype({name: np.float64 for name in NUMERIC})
        score, label = score_and_label(rng, frame)
        yield idx, frame, score, label


def reference_frame(rows: int) -> pd.DataFrame:
    """The first fifth of the rows (at most 200,000), with their scores and labels."""
    n_ref = reference_rows(rows)
    parts = []
    for idx, frame, score, label in batches(rows):
        if idx[0] >= n_ref:
            break
        early = idx < n_ref
        part = frame.loc[early].copy()
        part["y_pred_proba"] = score[early]
        part["y_pred"] = (score[early] >= 0.5).astype(np.int64)
        part["y_true"] = label[early]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def load(url: str, model: str, rows: int, folder: Path, console: Console) -> dict[str, float]:
    """Set the reference, then log ``rows`` predictions and their outcomes through the public
    API, as a model in production does (the summaries are kept as rows arrive); write the
    window's and the reference's rows to Parquet. Returns the load's wall seconds."""
    from feedback_loop import FeedbackLoop, ManualClock
    from feedback_loop.loop import dispose_engines

    loop = FeedbackLoop(model, tracking_db=url, clock=ManualClock(NOW), task="binary")
    seconds = {"log_predictions": 0.0, "log_outcomes": 0.0}
    reference = reference_frame(rows)
    reference.to_parquet(folder / "reference.parquet", index=False)
    t = time.perf_counter()
    loop.set_reference(
        reference[FEATURES],
        predictions=reference["y_pred_proba"].to_numpy(),
        actuals=reference["y_true"].to_numpy(),
    )
    seconds["set_reference"] = time.perf_counter() - t
    writer: pq.ParquetWriter | None = None
    for idx, frame, score, label in batches(rows):
        logged = frame.copy()
        logged["prediction_id"] = [f"p{i}" for i in idx]
        logged["timestamp"] = NOW - pd.to_timedelta((rows - idx) * (6 * 86400 / rows), unit="s")
        logged["prediction"] = score
        t = time.perf_counter()
        loop.log_predictions(logged)
        seconds["log_predictions"] += time.perf_counter() - t
        t = time.perf_counter()
        loop.log_outcomes(pd.DataFrame({"prediction_id": logged["prediction_id"], "actual": label}))
        seconds["log_outcomes"] += time.perf_counter() - t
        current = frame.copy()
        current["y_pred_proba"] = score
        current["y_pred"] = (score >= 0.5).astype(np.int64)
        table = pa.Table.from_pandas(current, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(folder / "current.parquet", table.schema)
        writer.write_table(table)
        console.log(f"{url.split(':')[0]}: {idx[-1] + 1:,} of {rows:,} predictions and outcomes")
    if writer is not None:
        writer.close()
    dispose_engines()
    return seconds


def _cpu_ticks(pid: str) -> tuple[int, int]:
    """(utime + stime, cutime + cstime) of a process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def postgres_cpu() -> dict[str, tuple[int, int, str]]:
    """Every postgres process: pid -> (own ticks, reaped children's ticks, title)."""
    out: dict[str, tuple[int, int, str]] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmd:
                title = cmd.read().replace(b"\0", b" ").decode(errors="replace").strip()
            if not title.startswith(("postgres", "/usr/lib/postgresql")):
                continue
            own, children = _cpu_ticks(pid)
        except OSError:
            continue
        out[pid] = (own, children, title)
    return out


def own_ports(server_port: int) -> set[int]:
    """Local ports of this process's TCP connections to ``server_port``."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, remote, inode = parts[1], parts[2], parts[9]
            if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == server_port:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def server_seconds(
    before: dict[str, tuple[int, int, str]], after: dict[str, tuple[int, int, str]], ports: set[int]
) -> tuple[float, float]:
    """(CPU of the backends serving ``ports``, CPU of the whole server) between two readings.
    The whole server counts processes that ended through the postmaster's reaped-children
    time; a backend of ours that ended meanwhile is missed by the first figure."""
    tick = os.sysconf("SC_CLK_TCK")
    mine = 0
    total = 0
    for pid, (own, children, title) in after.items():
        old_own, old_children, _ = before.get(pid, (0, 0, ""))
        total += own - old_own + children - old_children
        if any(f"({port})" in title for port in ports):
            mine += own - old_own
    return mine / tick, total / tick


# ----------------------------------------------------------------------------- the child


def peak_rss_mb() -> float:
    """This process's peak resident set (``VmHWM``). Not ``ru_maxrss``: on Linux that carries
    the forking parent's peak across ``exec``, so a child would report the parent's size."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / MB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB


def child(op: str, url: str, model: str, pg_port: int | None) -> dict[str, Any]:
    """Open the loop and make the call twice; CPU, wall and server CPU of each."""
    from feedback_loop import FeedbackLoop, ManualClock

    loop = FeedbackLoop(model, tracking_db=url, clock=ManualClock(NOW))
    # Start-up, not the call: the library imports SciPy and scikit-learn on first use, so a
    # fresh process's first call would otherwise pay ~1 s of imports that `import
    # feedback_loop` used to pay before the clock started.
    import scipy.special
    import scipy.stats  # noqa: F401
    import sklearn.metrics  # noqa: F401

    calls: dict[str, Callable[[], Any]] = {
        "check_drift": lambda: loop.check_drift(window="7d"),
        "estimate": lambda: loop.estimate_performance(window="7d"),
        "get_metrics": lambda: loop.get_metrics("7d"),
    }
    call = calls[op]
    out: dict[str, Any] = {}
    summary: Any = None
    for which in ("first", "second"):
        ports = own_ports(pg_port) if pg_port else set()
        before = postgres_cpu() if pg_port else {}
        cpu, wall = time.process_time(), time.perf_counter()
        result = call()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        server, server_total = 0.0, 0.0
        if pg_port:
            server, server_total = server_seconds(
                before, postgres_cpu(), ports | own_ports(pg_port)
            )
        out[which] = {
            "cpu": cpu,
            "wall": wall,
            "server_cpu": server,
            "server_cpu_all": server_total,
        }
        summary = result
    out["rss_mb"] = peak_rss_mb()
    out["summary"] = summarise(op, summary)
    return out


def summarise(op: str, result: Any) -> dict[str, Any]:
    if op == "check_drift":
        flagged = [c for c in result.drifted_columns if not c.startswith("__")]
        return {"flagged": sorted(flagged)}
    if op == "estimate":
        return {k: result.get(k) for k in ("roc_auc", "accuracy")}
    return {k: result.get(k) for k in ("predictions", "labeled", "accuracy", "roc_auc")}


# ----------------------------------------------------------------------------- peers and floor

PEER_SCRIPT = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
MARK = "@@RESULT@@"


def timed(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return out, {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}


def nannyml_drift(folder, spec):
    import nannyml as nml
    import pandas as pd

    columns = spec["numerical"] + spec["categorical"]
    ref = pd.read_parquet(folder + "/reference.parquet", columns=columns)
    calc = nml.UnivariateDriftCalculator(
        column_names=columns, treat_as_categorical=spec["categorical"], chunk_number=1
    )
    _, fit = timed(lambda: calc.fit(ref))

    def run():
        cur = pd.read_parquet(folder + "/current.parquet", columns=columns)
        return calc.calculate(cur)

    result, call = timed(run)
    frame = result.filter(period="analysis").to_df()
    flagged = sorted({c[0] for c in frame.columns if c[-1] == "alert" and bool(frame[c].iloc[0])})
    return {"fit": fit, "call": call, "summary": {"flagged": flagged}}


def nannyml_cbpe(folder, spec):
    import nannyml as nml
    import pandas as pd

    columns = ["y_pred_proba", "y_pred", "y_true"]
    ref = pd.read_parquet(folder + "/reference.parquet", columns=columns)
    cbpe = nml.CBPE(
        y_pred_proba="y_pred_proba", y_pred="y_pred", y_true="y_true",
        problem_type="classification_binary", metrics=["roc_auc", "accuracy"], chunk_number=1,
    )
    _, fit = timed(lambda: cbpe.fit(ref))

    def run():
        cur = pd.read_parquet(folder + "/current.parquet", columns=["y_pred_proba", "y_pred"])
        return cbpe.estimate(cur)

    result, call = timed(run)
    frame = result.filter(period="analysis").to_df()
    summary = {m: float(frame[(m, "value")].iloc[0]) for m in ("roc_auc", "accuracy")}
    return {"fit": fit, "call": call, "summary": summary}


def floor_psi(folder, spec):
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    columns = spec["numerical"] + spec["categorical"]
    ref = pq.read_table(folder + "/reference.parquet", columns=columns)
    edges, shares = {}, {}
    for name in spec["numerical"]:
        values = ref.column(name).to_numpy()
        edges[name] = np.quantile(values, np.linspace(0.1, 0.9, 9))
        shares[name] = np.bincount(np.searchsorted(edges[name], values), minlength=10) / len(values)
    for name in spec["categorical"]:
        counts = pc.value_counts(ref.column(name)).to_pylist()
        shares[name] = {c["values"]: c["counts"] / len(ref) for c in counts}

    def psi(expected, actual):
        e = np.clip(expected, 1e-4, None)
        a = np.clip(actual, 1e-4, None)
        return float(np.sum((a - e) * np.log(a / e)))

    def run():
        cur = pq.read_table(folder + "/current.parquet", columns=columns)
        out = {}
        for name in spec["numerical"]:
            values = cur.column(name).to_numpy()
            actual = np.bincount(np.searchsorted(edges[name], values), minlength=10) / len(values)
            out[name] = psi(shares[name], actual)
        for name in spec["categorical"]:
            counts = pc.value_counts(cur.column(name)).to_pylist()
            now = {c["values"]: c["counts"] / len(cur) for c in counts}
            keys = sorted(set(now) | set(shares[name]))
            out[name] = psi(
                np.array([shares[name].get(k, 0.0) for k in keys]),
                np.array([now.get(k, 0.0) for k in keys]),
            )
        return out

    result, call = timed(run)
    return {"call": call, "summary": {"flagged": sorted(k for k, v in result.items() if v > 0.1)}}


if __name__ == "__main__":
    job, folder, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    try:
        payload = globals()[job](folder, spec)
    except Exception as exc:
        import traceback

        traceback.print_exc()
        payload = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[:1]}"}
    with open("/proc/self/status") as status:
        hwm = [line for line in status if line.startswith("VmHWM:")]
    payload["rss_mb"] = int(hwm[0].split()[1]) * 1024 / 1e6
    print(MARK + json.dumps(payload), flush=True)
"""

PEER_JOBS = {"nannyml_drift": "nannyml", "nannyml_cbpe": "nannyml", "floor_psi": "self"}


def run_script(argv: Sequence[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = subprocess.run(
        list(argv), capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False
    )
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            payload: dict[str, Any] = json.loads(line[len(MARK) :])
            return payload
    tail = proc.stderr.strip().splitlines()
    return {"error": f"exit code {proc.returncode}: {tail[-1] if tail else ''}"}


def nannyml_python(args: argparse.Namespace, console: Console) -> str | None:
    """NannyML's interpreter: given, or the environment ``benchmarks/drift.py`` creates."""
    given = args.nannyml_python or os.environ.get("FEEDBACK_LOOP_NANNYML_PYTHON")
    if given:
        return str(given)
    if args.skip_peers:
        return None
    from drift import ensure_peer

    try:
        return str(ensure_peer("nannyml", args.cache, args.python, console))
    except (RuntimeError, OSError) as exc:
        console.print(f"[red]nannyml: {exc}[/red]")
        return None


# ----------------------------------------------------------------------------- orchestration


def median_of(samples: list[dict[str, Any]], key: str, field: str) -> float | None:
    values = [s[key][field] for s in samples if key in s]
    return statistics.median(values) if values else None


def measure_ops(url: str, model: str, pg_port: int | None, repeat: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for op in OPS:
        samples = []
        for _ in range(repeat):
            argv = [sys.executable, __file__, "--child", op, "--url", url, "--model", model]
            if pg_port:
                argv += ["--pg-port", str(pg_port)]
            samples.append(run_script(argv))
        errors = [s["error"] for s in samples if "error" in s]
        if errors:
            results[op] = {"error": errors[0]}
            continue
        entry: dict[str, Any] = {"summary": samples[-1]["summary"], "samples": samples}
        for which in ("first", "second"):
            entry[which] = {
                f: median_of(samples, which, f)
                for f in ("cpu", "wall", "server_cpu", "server_cpu_all")
            }
        entry["rss_mb"] = statistics.median(s["rss_mb"] for s in samples)
        results[op] = entry
    return results


def measure_peers(folder: Path, nannyml: str | None, repeat: int) -> dict[str, Any]:
    script = folder / "peer_job.py"
    script.write_text(PEER_SCRIPT)
    spec = json.dumps({"numerical": NUMERIC, "categorical": CATEGORICAL})
    results: dict[str, Any] = {}
    for job, where in PEER_JOBS.items():
        python = sys.executable if where == "self" else nannyml
        if python is None:
            results[job] = {"error": "no NannyML environment"}
            continue
        samples = [
            run_script([python, str(script), job, str(folder), spec], PEER_ENV)
            for _ in range(repeat)
        ]
        errors = [s["error"] for s in samples if "error" in s]
        if errors:
            results[job] = {"error": errors[0]}
            continue
        results[job] = {
            "call": {f: median_of(samples, "call", f) for f in ("cpu", "wall")},
            "fit": {f: median_of(samples, "fit", f) for f in ("cpu", "wall")}
            if "fit" in samples[0]
            else None,
            "rss_mb": statistics.median(s["rss_mb"] for s in samples),
            "summary": samples[-1]["summary"],
        }
    return results


@contextmanager
def pg_database(url: str) -> Iterator[str]:
    from pg_schema import temporary_schema

    with temporary_schema(url) as scoped:
        yield scoped


def run_one(
    db: str, base_url: str, rows: int, args: argparse.Namespace, console: Console
) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="fl-e2e-"))
    model = f"e2e-{uuid.uuid4().hex[:6]}"
    out: dict[str, Any] = {"db": db, "rows": rows, "folder": str(folder)}
    if db == "sqlite":
        url = f"sqlite:///{folder / 'e2e.db'}"
        out["load"] = load(url, model, rows, folder, console)
        out["ops"] = measure_ops(url, model, None, args.repeat)
        return out
    port = int(pa_url_port(base_url))
    with pg_database(base_url) as url:
        out["load"] = load(url, model, rows, folder, console)
        out["ops"] = measure_ops(url, model, port, args.repeat)
    return out


def pa_url_port(url: str) -> int:
    from sqlalchemy.engine import make_url

    return make_url(url).port or 5432


# ----------------------------------------------------------------------------- report


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def cpu_of(entry: dict[str, Any], which: str) -> float | None:
    """Client CPU plus the CPU of the backends that served it."""
    part = entry.get(which)
    if not part or part["cpu"] is None:
        return None
    return float(part["cpu"] + (part["server_cpu"] or 0.0))


def ops_table(run: dict[str, Any]) -> Table:
    table = Table(title=f"{run['db']}, {run['rows']:,} rows: fresh process per call, median")
    for column in (
        "call",
        "CPU s (1st)",
        "of which server",
        "wall s (1st)",
        "CPU s (2nd)",
        "wall s (2nd)",
        "peak RSS MB",
        "result",
    ):
        table.add_column(column, justify="left" if column in ("call", "result") else "right")
    names = {
        "check_drift": "check_drift('7d')",
        "estimate": "estimate_performance('7d')",
        "get_metrics": "get_metrics('7d')",
    }
    for op, label in names.items():
        entry = run["ops"].get(op, {})
        if "error" in entry:
            table.add_row(label, *["-"] * 6, f"[red]{entry['error']}[/red]")
            continue
        table.add_row(
            label,
            fmt(cpu_of(entry, "first")),
            fmt(entry["first"]["server_cpu"]),
            fmt(entry["first"]["wall"]),
            fmt(cpu_of(entry, "second")),
            fmt(entry["second"]["wall"]),
            fmt(entry["rss_mb"], 0),
            json.dumps(entry["summary"])[:60],
        )
    return table


def peers_table(rows: int, peers: dict[str, Any], ours: list[dict[str, Any]]) -> Table:
    table = Table(title=f"beside NannyML and the floor, {rows:,} rows (second call for ours)")
    for column in ("tool", "CPU s", "wall s", "peak RSS MB", "fit CPU s", "ours/this (CPU)"):
        table.add_column(column, justify="left" if column == "tool" else "right")
    pairs = {"nannyml_drift": "check_drift", "floor_psi": "check_drift", "nannyml_cbpe": "estimate"}
    for run in ours:
        for op in ("check_drift", "estimate"):
            entry = run["ops"].get(op, {})
            if "error" in entry:
                continue
            table.add_row(
                f"ours: {op} ({run['db']})",
                fmt(cpu_of(entry, "second")),
                fmt(entry["second"]["wall"]),
                fmt(entry["rss_mb"], 0),
                "",
                "",
            )
    labels = {
        "nannyml_drift": "NannyML UnivariateDriftCalculator (read + calculate)",
        "nannyml_cbpe": "NannyML CBPE (read + estimate)",
        "floor_psi": "floor: pyarrow read + NumPy PSI on deciles",
    }
    for job, label in labels.items():
        entry = peers.get(job, {})
        if "error" in entry:
            table.add_row(label, "-", "-", "-", "-", f"[red]{entry['error'][:50]}[/red]")
            continue
        ratios = []
        for run in ours:
            mine = cpu_of(run["ops"].get(pairs[job], {}), "second")
            if mine is not None and entry["call"]["cpu"]:
                ratios.append(f"{run['db'][:2]} {mine / entry['call']['cpu']:.2f}x")
        table.add_row(
            label,
            fmt(entry["call"]["cpu"]),
            fmt(entry["call"]["wall"]),
            fmt(entry["rss_mb"], 0),
            fmt(entry["fit"]["cpu"]) if entry.get("fit") else "",
            ", ".join(ratios),
        )
    return table


def targets(results: list[dict[str, Any]], console: Console) -> list[dict[str, Any]]:
    """Pass/fail lines against the targets, for every run that measured what they need."""
    lines: list[dict[str, Any]] = []

    def line(name: str, value: float | None, limit: float, unit: str) -> None:
        if value is None:
            return
        ok = value <= limit
        lines.append({"target": name, "value": value, "limit": limit, "pass": ok})
        mark = "[green]PASS[/green]" if ok else "[red]FAIL[/red]"
        console.print(f"{mark} {name}: {value:,.3f} {unit} (target <= {limit:g})")

    by_key = {(r["db"], r["rows"]): r for r in results}
    for (db, rows), run in sorted(by_key.items()):
        ops = run["ops"]

        def cpu(op: str, which: str, ops: dict[str, Any] = ops) -> float | None:
            entry = ops.get(op, {})
            return None if "error" in entry else cpu_of(entry, which)

        if rows == 1_000_000:
            line(
                f"{db}: check_drift('7d') at 1M, CPU",
                cpu("check_drift", "first"),
                DRIFT_CPU_1M,
                "s",
            )
        if rows == 3_000_000:
            small = by_key.get((db, 1_000_000))
            big = cpu("check_drift", "first")
            if small is not None and big is not None:
                base = cpu_of(small["ops"]["check_drift"], "first") or float("nan")
                line(f"{db}: check_drift 3M / 1M, CPU", big / base, DRIFT_SCALING_3M, "x")
            peak = max((e["rss_mb"] for e in ops.values() if "error" not in e), default=None)
            line(f"{db}: peak RSS at 3M", peak, RSS_3M_MB, "MB")
        line(
            f"{db} {rows:,}: estimate_performance, CPU", cpu("estimate", "first"), ESTIMATE_CPU, "s"
        )
        line(
            f"{db} {rows:,}: get_metrics first after load, CPU",
            cpu("get_metrics", "first"),
            METRICS_CPU,
            "s",
        )
        line(
            f"{db} {rows:,}: get_metrics second, CPU",
            cpu("get_metrics", "second"),
            METRICS_CPU,
            "s",
        )
    return lines


# ----------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", default="100000,1000000", help="comma-separated row counts")
    parser.add_argument("--quick", action="store_true", help="100,000 rows only")
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per figure")
    parser.add_argument("--pg", default="postgresql://127.0.0.1:5432/test", help="PostgreSQL URL")
    parser.add_argument("--db", default="sqlite,postgresql", help="databases to run")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--skip-peers", action="store_true", help="ours only (and the floor)")
    parser.add_argument("--nannyml-python", help="interpreter of a NannyML environment")
    parser.add_argument("--cache", type=Path, default=Path(".bench/peers"))
    parser.add_argument("--python", default="python3", help="creates the peer environment")
    parser.add_argument("--keep", action="store_true", help="keep the databases and Parquet files")
    parser.add_argument("--child", choices=OPS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--pg-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.row_counts = [100_000] if args.quick else [int(r) for r in args.rows.split(",")]
    args.dbs = [d.strip() for d in args.db.split(",") if d.strip()]
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        payload = child(args.child, args.url, args.model, args.pg_port)
        print(MARK + json.dumps(payload), flush=True)
        return
    console = Console(width=150)
    nannyml = nannyml_python(args, console)
    results: list[dict[str, Any]] = []
    peers: dict[int, dict[str, Any]] = {}
    for rows in args.row_counts:
        ours = []
        for db in args.dbs:
            run = run_one(db, args.pg, rows, args, console)
            results.append(run)
            ours.append(run)
            console.print(ops_table(run))
        # every run wrote the same (seeded) rows to Parquet: the peers read the last one's
        folder = Path(ours[-1]["folder"])
        peers[rows] = measure_peers(folder, None if args.skip_peers else nannyml, args.repeat)
        console.print(peers_table(rows, peers[rows], ours))
        if not args.keep:
            for run in ours:
                shutil.rmtree(run["folder"], ignore_errors=True)
    lines = targets(results, console)
    if args.json:
        payload = {
            "runs": results,
            "peers": {str(k): v for k, v in peers.items()},
            "targets": lines,
            "repeat": args.repeat,
            "python": sys.version.split()[0],
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str))
        console.print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
