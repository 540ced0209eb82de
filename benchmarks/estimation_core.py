"""Wall-clock cost of label-free performance estimation.

Budget: a binary estimate over 1,000,000 rows -- applying the calibrator and computing the
expected ROC AUC included -- should take at most 0.5 s on a 2-core machine.

Run with ``python benchmarks/estimation_core.py [--repeat N]``; prints one row per case with
the best and median of ``N`` runs.
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np
from _timing import timed
from scipy.special import expit, softmax

from feedback_loop.stats.estimation import (
    ScoreCalibrator,
    estimate_binary,
    estimate_multiclass,
    fit_one_vs_rest,
)

BUDGET_S = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    repeat = parser.parse_args().repeat

    rng = np.random.default_rng(0)
    z_ref = rng.normal(0.0, 1.2, size=200_000)
    scores_ref = expit(3.0 * z_ref)  # an overconfident model
    labels = rng.random(z_ref.size) < expit(z_ref)
    calibrator = ScoreCalibrator.fit(scores_ref, labels)
    logits_ref = rng.normal(size=(200_000, 5))
    labels_ref = (rng.random((200_000, 1)) > np.cumsum(softmax(logits_ref, axis=1), axis=1)).sum(1)
    calibrators = fit_one_vs_rest(softmax(3.0 * logits_ref, axis=1), np.minimum(labels_ref, 4))

    rows: list[tuple[str, int, float, float]] = []
    best, median = timed(lambda: ScoreCalibrator.fit(scores_ref, labels), repeat)
    rows.append((f"fit calibrator ({calibrator.x.size} knots)", z_ref.size, best, median))
    for n in (10_000, 100_000, 1_000_000):
        scores = expit(3.0 * rng.normal(0.0, 1.2, size=n))
        best, median = timed(partial(estimate_binary, scores), repeat)
        rows.append(("binary, already calibrated", n, best, median))
        best, median = timed(partial(estimate_binary, scores, 0.5, calibrator), repeat)
        rows.append(("binary, isotonic calibrator", n, best, median))
    for n in (100_000, 1_000_000):
        proba = softmax(3.0 * rng.normal(size=(n, 5)), axis=1)
        best, median = timed(partial(estimate_multiclass, proba, calibrators), repeat)
        rows.append(("multiclass k=5, calibrators", n, best, median))

    print(f"{'case':<36} {'rows':>10} {'best s':>9} {'median s':>9}")
    for name, n, best, median in rows:
        print(f"{name:<36} {n:>10,} {best:>9.4f} {median:>9.4f}")
    worst = max(m for name, n, _, m in rows if name.startswith("binary") and n == 1_000_000)
    verdict = "within" if worst <= BUDGET_S else "OVER"
    print(f"\nbinary 1M-row median {worst:.3f} s: {verdict} the {BUDGET_S} s budget")


if __name__ == "__main__":
    main()
