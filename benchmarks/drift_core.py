"""Time the profile-based drift checks against SciPy on raw arrays.

Generates a reference and a current set of 1,000,000 rows with 20 numerical columns (5 of
them shifted in the current set) and 5 string categorical columns (1 of them shifted),
summarises the reference into profiles, then times:

* ``compare_many`` with the default methods (PSI, as both sides exceed 10,000 rows);
* a two-thread pool over the columns, to check whether threads help (they did not);
* ``scipy.stats.ks_2samp`` on every numerical column and ``scipy.stats.chi2_contingency`` on
  every categorical column (category counts taken with pandas' ``value_counts``).

Each timing is the best of ``--repeat`` runs; peak memory is the tracemalloc peak of one
extra run, i.e. memory allocated by the checks on top of the input arrays.

Run: ``python benchmarks/drift_core.py [--rows 1000000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from _timing import timed, timed_with_peak
from scipy import stats

from feedback_loop.stats.drift.profile import Profile, build_profile, compare, compare_many

N_NUMERIC = 20
N_SHIFTED_NUMERIC = 5
N_CATEGORICAL = 5
N_CATEGORIES = 20


def make_data(rows: int, *, shifted: bool, seed: int) -> dict[str, np.ndarray]:
    """Numerical columns of mixed shapes plus string categorical columns."""
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    for i in range(N_NUMERIC):
        shift = 0.25 if shifted and i < N_SHIFTED_NUMERIC else 0.0
        if i % 3 == 0:
            col = rng.normal(loc=shift, size=rows)
        elif i % 3 == 1:
            col = rng.lognormal(mean=shift, sigma=0.5, size=rows)
        else:
            col = rng.gamma(shape=2.0 + 4 * shift, size=rows)
        data[f"num_{i:02d}"] = col
    labels = np.array([f"category_{k:02d}" for k in range(N_CATEGORIES)], dtype=object)
    base = 1.0 / np.arange(1, N_CATEGORIES + 1)
    for j in range(N_CATEGORICAL):
        weights = base.copy()
        if shifted and j == 0:
            weights[:3] = weights[:3][::-1]
        data[f"cat_{j}"] = labels[rng.choice(N_CATEGORIES, size=rows, p=weights / weights.sum())]
    return data


def scipy_baseline(
    reference: dict[str, np.ndarray], current: dict[str, np.ndarray], prefix: str
) -> int:
    """KS on numerical columns or chi-square on categorical ones; returns the drifted count."""
    drifted = 0
    for name in reference:
        if not name.startswith(prefix):
            continue
        if prefix == "num_":
            p = stats.ks_2samp(reference[name], current[name]).pvalue
        else:
            ref = pd.Series(reference[name]).value_counts()
            cur = pd.Series(current[name]).value_counts()
            table = pd.concat([ref, cur], axis=1).fillna(0).to_numpy().T
            p = stats.chi2_contingency(table).pvalue
        drifted += bool(p < 0.05)
    return drifted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    mib = 1024 * 1024

    print(f"rows={args.rows:,} columns={N_NUMERIC} numerical + {N_CATEGORICAL} categorical")
    print(f"cpus={os.cpu_count()} numpy={np.__version__} pandas={pd.__version__}")
    reference = make_data(args.rows, shifted=False, seed=1)
    current = make_data(args.rows, shifted=True, seed=2)

    start = time.perf_counter()
    profiles: dict[str, Profile] = {name: build_profile(col) for name, col in reference.items()}
    print(f"build profiles: {time.perf_counter() - start:.2f} s (one-off)")

    def default_sequential() -> dict[str, Any]:
        return compare_many(profiles, current)

    def default_threads() -> dict[str, Any]:
        names = list(profiles)
        with ThreadPoolExecutor(max_workers=2) as pool:
            found = pool.map(lambda name: compare(profiles[name], current[name]), names)
            return dict(zip(names, found, strict=True))

    for label, fn in (("sequential", default_sequential), ("2 threads", default_threads)):
        seconds, peak, results = timed_with_peak(fn, args.repeat)
        flagged = sorted(name for name, res in results.items() if res.drifted)
        methods = sorted({res.method for res in results.values()})
        print(
            f"profile compare, default methods {methods}, {label}: {seconds * 1e3:.0f} ms, "
            f"peak {peak / mib:.1f} MiB, drifted {len(flagged)}: {flagged}"
        )

    per_column: dict[str, float] = {}
    for name in ("num_00", "cat_0"):
        per_column[name] = timed(partial(compare, profiles[name], current[name]), args.repeat)[0]
    print(
        "per column: numerical {:.1f} ms, categorical {:.1f} ms".format(
            per_column["num_00"] * 1e3, per_column["cat_0"] * 1e3
        )
    )
    for method in ("ks", "wasserstein", "cramer_von_mises"):
        seconds, peak, res = timed_with_peak(
            partial(compare, profiles["num_00"], current["num_00"], method), args.repeat
        )
        print(
            f"non-default {method} (grid) on one 1M column: {seconds * 1e3:.0f} ms, "
            f"peak {peak / mib:.1f} MiB, statistic {res.statistic:.4g}"
        )

    total = 0.0
    for prefix, label in (("num_", "ks_2samp"), ("cat_", "chi2_contingency")):
        seconds, peak, flagged_count = timed_with_peak(
            partial(scipy_baseline, reference, current, prefix), 1
        )
        total += seconds
        print(
            f"scipy {label} on raw arrays: {seconds * 1e3:.0f} ms, "
            f"peak {peak / mib:.1f} MiB, drifted {flagged_count}"
        )
    print(f"scipy total: {total * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
