"""The post-promotion watch: does the new champion live up to its promise?

:func:`compare_paired` (what the watch uses): both the new champion and the previous one are
scored on the same labeled rows after the promotion (the previous one is still in the
registry), so the comparison is paired and about the same period: a one-sided McNemar test
for classification, a one-sided paired t-test on absolute errors for regression. Comparing the
new champion after the promotion with the old one before it (:func:`compare_live`, kept for
models whose predecessor cannot be loaded) mistakes a change of the data for a change of the
model: a promotion at the onset of a drift looks like a regression.
A significant regression beyond the tolerated margin calls for a rollback.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from feedback_loop.stats.lazy import lazy

if TYPE_CHECKING:
    from scipy import stats
else:  # imported on first use: see stats.lazy
    stats = lazy("scipy.stats")


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


def compare_paired(
    new_errors: np.ndarray,
    previous_errors: np.ndarray,
    *,
    binary_errors: bool,
    min_samples: int,
    margin: float = 0.0,
    alpha: float = 0.01,
    promised_error: float | None = None,
) -> WatchVerdict:
    """Is the new champion significantly worse than the previous one on the same rows?

    ``new_errors[i]`` and ``previous_errors[i]`` are both models' errors on row ``i`` (1/0
    for classification, absolute errors for regression).

    >>> rng = np.random.default_rng(0)
    >>> old = (rng.random(400) < 0.2).astype(float)
    >>> new = np.where(rng.random(400) < 0.3, 1.0, old)   # wrong on 30% more of the rows
    >>> compare_paired(new, old, binary_errors=True, min_samples=200).regressed
    True
    >>> compare_paired(old, old, binary_errors=True, min_samples=200).regressed
    False
    """
    from feedback_loop.stats.significance import mcnemar

    new = np.asarray(new_errors, dtype=np.float64)
    old = np.asarray(previous_errors, dtype=np.float64)
    if new.shape != old.shape:
        raise ValueError(f"paired errors differ in length: {new.size} vs {old.size}")
    n = len(new)
    if n < min_samples:
        return WatchVerdict(
            False,
            False,
            _mean(new),
            _mean(old),
            promised_error,
            None,
            None,
            n,
            n,
            f"waiting: {n} labeled predictions since the promotion (need {min_samples})",
        )
    new_mean, old_mean = float(np.mean(new)), float(np.mean(old))
    if binary_errors and margin == 0.0:
        test = mcnemar(new == 0, old == 0, alternative="greater")  # is the previous better?
        p_value = test.p_value
    else:
        diff = new - old - margin
        sd = float(np.std(diff, ddof=1))
        if sd == 0.0:
            p_value = 0.0 if float(np.mean(diff)) > 0 else 1.0
        else:
            t = float(np.mean(diff)) / (sd / np.sqrt(n))
            p_value = float(stats.t.sf(t, n - 1))
    promise_p = _against_promise(new, promised_error, binary_errors)
    regressed = p_value < alpha and new_mean > old_mean + margin
    word = "regressed" if regressed else "holds"
    reason = (
        f"new champion {word}: error {new_mean:.4f} vs previous champion {old_mean:.4f} on the"
        f" same {n} rows since the promotion (paired one-sided p = {p_value:.3g}, alpha {alpha},"
        f" margin {margin})"
    )
    return WatchVerdict(
        regressed, True, new_mean, old_mean, promised_error, p_value, promise_p, n, n, reason
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
