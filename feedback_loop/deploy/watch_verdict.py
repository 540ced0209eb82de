"""The post-promotion watch: does the new champion live up to its promise?

Over its first labeled predictions, the new champion's live error rate is compared with the
previous champion's live error rate just before the promotion (two independent samples, a
one-sided two-proportion z-test; for regression a one-sided Welch t-test on absolute errors).
A significant regression beyond the tolerated margin calls for a rollback.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class WatchVerdict:
    """``regressed`` is True when the new champion is significantly worse than before."""

    regressed: bool
    ready: bool  # enough labeled predictions of the new champion to judge
    new_error: float | None
    previous_error: float | None
    promised_error: float | None
    p_value: float | None
    promise_p_value: float | None  # one-sided: live error above what the gate promised
    n_new: int
    n_previous: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_live(
    new_errors: np.ndarray,
    previous_errors: np.ndarray,
    *,
    binary_errors: bool,
    min_samples: int,
    margin: float = 0.0,
    alpha: float = 0.01,
    promised_error: float | None = None,
) -> WatchVerdict:
    """Is the new error level significantly above the previous one (by more than ``margin``)?

    >>> rng = np.random.default_rng(0)
    >>> verdict = compare_live(rng.random(500) < 0.4, rng.random(500) < 0.2,
    ...                        binary_errors=True, min_samples=200)
    >>> verdict.regressed, verdict.ready
    (True, True)
    """
    n_new, n_prev = len(new_errors), len(previous_errors)
    if n_new < min_samples or n_prev < min_samples:
        return WatchVerdict(
            False,
            False,
            _mean(new_errors),
            _mean(previous_errors),
            promised_error,
            None,
            None,
            n_new,
            n_prev,
            f"waiting: {n_new} labeled predictions of the new champion, {n_prev} of the previous"
            f" (need {min_samples} each)",
        )
    new_mean, prev_mean = float(np.mean(new_errors)), float(np.mean(previous_errors))
    if binary_errors:
        pooled = (new_errors.sum() + previous_errors.sum()) / (n_new + n_prev)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n_new + 1 / n_prev))
        z = (new_mean - prev_mean - margin) / se if se > 0 else 0.0
        p_value = float(stats.norm.sf(z))
    else:
        test = stats.ttest_ind(
            new_errors, previous_errors + margin, equal_var=False, alternative="greater"
        )
        p_value = float(test.pvalue)
    promise_p = _against_promise(new_errors, promised_error, binary_errors)
    regressed = p_value < alpha and new_mean > prev_mean + margin
    word = "regressed" if regressed else "holds"
    reason = (
        f"new champion {word}: error {new_mean:.4f} over {n_new} vs previous {prev_mean:.4f} "
        f"over {n_prev} (one-sided p = {p_value:.3g}, alpha {alpha}, margin {margin})"
    )
    if promised_error is not None and promise_p is not None:
        reason += f"; promised {promised_error:.4f} (p = {promise_p:.3g} that it is worse)"
    return WatchVerdict(
        regressed,
        True,
        new_mean,
        prev_mean,
        promised_error,
        p_value,
        promise_p,
        n_new,
        n_prev,
        reason,
    )


def _against_promise(
    errors: np.ndarray, promised: float | None, binary_errors: bool
) -> float | None:
    """How surprising the live errors are if the gate's promise held (one-sided). Reported,
    not acted on: a holdout's promise is optimistic by construction, while the previous
    champion's live record is the fair comparison."""
    if promised is None or len(errors) == 0:
        return None
    if binary_errors:
        wrong = int(np.sum(errors))
        p0 = min(max(promised, 1e-9), 1 - 1e-9)
        return float(stats.binomtest(wrong, len(errors), p0, alternative="greater").pvalue)
    return float(stats.ttest_1samp(errors, promised, alternative="greater").pvalue)


def _mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None
