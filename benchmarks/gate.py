"""Wall-clock cost of the gate's paired bootstrap (1,000 resamples, the default).

The gate scores candidate and champion on the same held-out rows; for metrics other than
accuracy it runs a paired bootstrap. This prints the best and median of ``N`` runs for MAE (a
regression holdout) and ROC AUC (a binary holdout) at a few holdout sizes. Measured on the
2-core development machine: about 0.35 s (MAE) and 1.1 s (AUC) on 20,000 rows. (These figures
used to be a test's time limit; a limit on speed fails on a busy machine, so they live here.)

Run with ``python benchmarks/gate.py [--repeat N]``.
"""

from __future__ import annotations

import argparse

import numpy as np
from _timing import timed

from feedback_loop.stats.metrics import classification_metrics
from feedback_loop.stats.significance import paired_bootstrap


def mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.abs(y - p).mean())


def auc(y: np.ndarray, s: np.ndarray) -> float | None:
    return classification_metrics(y, y, 2, positive=1, score=s)["roc_auc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat

    rng = np.random.default_rng(6)
    rows: list[tuple[str, int, float, float]] = []
    for n in (2_000, 20_000, 100_000):
        y = rng.normal(size=n)
        a, b = y + rng.normal(size=n), y + rng.normal(size=n)
        best, median = timed(
            lambda y=y, a=a, b=b: paired_bootstrap(mae, y, a, b, higher_is_better=False), repeat
        )
        rows.append(("paired bootstrap, MAE", n, best, median))
        labels = rng.integers(0, 2, n)
        sa, sb = rng.random(n), rng.random(n)
        best, median = timed(
            lambda labels=labels, sa=sa, sb=sb: paired_bootstrap(auc, labels, sa, sb), repeat
        )
        rows.append(("paired bootstrap, ROC AUC", n, best, median))

    print(f"{'case':<28} {'rows':>10} {'best s':>9} {'median s':>9}")
    for name, n, best, median in rows:
        print(f"{name:<28} {n:>10,} {best:>9.4f} {median:>9.4f}")


if __name__ == "__main__":
    main()
