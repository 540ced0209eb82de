"""Paired significance tests: is the candidate better than the champion on the same rows?

Both models are scored on the same evaluation rows, so their outcomes are paired. Pairing
removes the variance both models share (hard rows are hard for both), which makes these tests
far more sensitive than comparing two independent metric values.

* :func:`mcnemar` compares per-row correctness through the discordant rows only: the rows one
  model gets right and the other wrong.
* :func:`paired_bootstrap` handles any metric (ROC AUC, log loss, MAE, ...) by resampling rows,
  with the same resampled rows for both models.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from feedback_loop.stats.lazy import lazy

if TYPE_CHECKING:
    from scipy import stats
else:  # imported on first use: see stats.lazy
    stats = lazy("scipy.stats")

__all__ = [
    "Alternative",
    "BootstrapResult",
    "McNemarResult",
    "MetricFn",
    "UndefinedMetricError",
    "mcnemar",
    "paired_bootstrap",
]

Alternative = Literal["two-sided", "greater"]
# metric(y_true, pred) for one resample; None (or NaN) when undefined on it.
MetricFn = Callable[..., float | None]

# Below this many discordant rows the chi-square approximation is poor: use the exact test.
EXACT_BELOW = 25
# Upper bound on the entries of one block of resampled row indices (int64: 32 MB).
_CHUNK_CELLS = 4_000_000


class UndefinedMetricError(ValueError):
    """The metric has no value on the data (ROC AUC with a single class, say)."""


@dataclass(frozen=True)
class McNemarResult:
    """Discordant counts and the test outcome.

    ``b``: rows the champion gets right and the candidate wrong; ``c``: the reverse.
    ``statistic`` is the binomial count tested (exact) or the chi-square statistic.
    """

    b: int
    c: int
    statistic: float
    p_value: float
    method: Literal["exact", "chi-square"]
    alternative: Alternative = "two-sided"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BootstrapResult:
    """Point estimates on all rows, and the bootstrap distribution of the difference.

    ``difference`` is ``candidate - champion`` whatever the metric's direction; ``low`` and
    ``high`` bound it (percentile interval). ``p_value`` is one-sided for "the candidate is
    better", in the direction the metric improves. ``n_resamples`` counts the resamples where
    both metrics were defined.
    """

    champion: float
    candidate: float
    difference: float
    low: float
    high: float
    p_value: float
    n_resamples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mcnemar(
    champion_correct: npt.ArrayLike,
    candidate_correct: npt.ArrayLike,
    *,
    exact: bool | None = None,
    alternative: Alternative = "two-sided",
) -> McNemarResult:
    """McNemar's test on paired per-row correctness.

    Only discordant rows carry evidence: under the null hypothesis (equal accuracy) each is
    equally likely to favour either model, so ``c ~ Binomial(b + c, 1/2)``.

    * ``exact=None`` picks the exact binomial test below 25 discordant rows and the chi-square
      approximation with continuity correction, ``(|b - c| - 1)² / (b + c)`` on one degree of
      freedom, from there on (the correction is floored at zero, so ``b == c`` gives p = 1).
    * ``alternative="two-sided"``: do the models differ? Exact: ``binomtest(min(b, c), b + c)``.
    * ``alternative="greater"``: is the candidate better (``c > b``)? This is what a promotion
      gate asks. Exact: ``P(X >= c)``; approximate: the continuity-corrected normal tail
      ``P(Z >= (c - b - 1) / sqrt(b + c))``, half the chi-square p-value when ``c > b``.

    Without discordant rows there is no evidence either way: p = 1.

    >>> champion = [True] * 80 + [False] * 20
    >>> candidate = [True] * 70 + [False] * 10 + [True] * 18 + [False] * 2
    >>> r = mcnemar(champion, candidate, alternative="greater")
    >>> r.b, r.c, r.method, round(r.p_value, 4)
    (10, 18, 'chi-square', 0.0929)
    """
    champ = _correctness("champion_correct", champion_correct)
    cand = _correctness("candidate_correct", candidate_correct)
    if champ.shape != cand.shape:
        raise ValueError(f"champion and candidate lengths differ: {champ.size} vs {cand.size}")
    if alternative not in ("two-sided", "greater"):
        raise ValueError(f"alternative must be 'two-sided' or 'greater', got {alternative!r}")
    b = int(np.count_nonzero(champ & ~cand))
    c = int(np.count_nonzero(cand & ~champ))
    n = b + c
    use_exact = n < EXACT_BELOW if exact is None else exact
    if use_exact:
        count = c if alternative == "greater" else min(b, c)
        if n == 0:
            p = 1.0
        else:
            side: Literal["greater", "two-sided"] = alternative
            p = float(stats.binomtest(count, n, 0.5, alternative=side).pvalue)
        return McNemarResult(b, c, float(count), min(p, 1.0), "exact", alternative)
    if n == 0:
        return McNemarResult(b, c, 0.0, 1.0, "chi-square", alternative)
    statistic = max(abs(b - c) - 1, 0) ** 2 / n
    if alternative == "greater":
        p = float(stats.norm.sf((c - b - 1) / math.sqrt(n)))
    else:
        p = float(stats.chi2.sf(statistic, 1))
    return McNemarResult(b, c, statistic, min(p, 1.0), "chi-square", alternative)


def paired_bootstrap(
    metric_fn: MetricFn,
    y_true: npt.ArrayLike,
    pred_champion: npt.ArrayLike,
    pred_candidate: npt.ArrayLike,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
    higher_is_better: bool = True,
    extra: Mapping[str, npt.ArrayLike] | None = None,
) -> BootstrapResult:
    """Paired bootstrap of ``metric(candidate) - metric(champion)``.

    Each resample draws rows with replacement, and both models are scored on the same drawn
    rows: that keeps the pairing, so the interval reflects only how the models differ. Rows are
    resampled whole, so any metric works, including ones that are not a mean over rows (ROC
    AUC, F1, R²).

    ``metric_fn(y_true, pred, **extra)`` scores one model on one resample; ``pred`` holds the
    rows of ``pred_champion`` or ``pred_candidate`` (1-D values or scores, or a 2-D matrix of
    class probabilities). ``extra`` holds further row-aligned arrays shared by both models
    (sample weights, say), resampled with the same rows and passed as keyword arguments.
    A metric returning None or NaN on a resample (one class only, for AUC) drops that resample;
    :class:`UndefinedMetricError` is raised when it is undefined on all rows or every resample.

    ``low``/``high`` is the percentile interval at ``confidence``. ``p_value`` is the share of
    resamples where the candidate is not better: difference ``<= 0``, or ``>= 0`` when
    ``higher_is_better`` is False (errors, log loss). It is a one-sided test of "the candidate
    is better", resolved to ``1 / n_resamples``. ``random_state`` makes the result repeatable.

    >>> y = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    >>> mae = lambda t, p: float(np.abs(t - p).mean())
    >>> r = paired_bootstrap(mae, y, y + 1.0, y + 0.5, higher_is_better=False)
    >>> r.champion, r.candidate, r.difference, r.p_value
    (1.0, 0.5, -0.5, 0.0)
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    t = np.asarray(y_true)
    champ = np.asarray(pred_champion)
    cand = np.asarray(pred_candidate)
    n = t.shape[0] if t.ndim else 0
    if t.ndim != 1 or n == 0:
        raise ValueError(f"y_true must be a non-empty 1-D array, got shape {t.shape}")
    shared = {k: np.asarray(v) for k, v in (extra or {}).items()}
    for name, a in {"pred_champion": champ, "pred_candidate": cand, **shared}.items():
        if a.ndim == 0 or a.shape[0] != n:
            raise ValueError(f"{name} must have {n} rows like y_true, got shape {a.shape}")

    champion_value = _value(metric_fn(t, champ, **shared))
    candidate_value = _value(metric_fn(t, cand, **shared))
    if math.isnan(champion_value) or math.isnan(candidate_value):
        raise UndefinedMetricError("the metric is undefined on the full sample")

    rng = np.random.default_rng(random_state)
    diffs = np.empty(n_resamples)
    chunk = max(1, min(n_resamples, _CHUNK_CELLS // n))
    for start in range(0, n_resamples, chunk):
        block = rng.integers(0, n, size=(min(chunk, n_resamples - start), n))
        for offset, rows in enumerate(block):
            t_rows = t[rows]
            kwargs = {k: a[rows] for k, a in shared.items()}
            before = _value(metric_fn(t_rows, champ[rows], **kwargs))
            after = _value(metric_fn(t_rows, cand[rows], **kwargs))
            diffs[start + offset] = after - before
    diffs = diffs[~np.isnan(diffs)]
    if diffs.size == 0:
        raise UndefinedMetricError("the metric is undefined on every resample")
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(diffs, [tail, 1.0 - tail])
    not_better = diffs <= 0.0 if higher_is_better else diffs >= 0.0
    return BootstrapResult(
        champion=champion_value,
        candidate=candidate_value,
        difference=candidate_value - champion_value,
        low=float(low),
        high=float(high),
        p_value=float(np.count_nonzero(not_better)) / diffs.size,
        n_resamples=int(diffs.size),
    )


def _correctness(name: str, values: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    if a.dtype == np.bool_:
        return a
    if a.size and not np.isin(a, (0, 1)).all():
        raise ValueError(f"{name} must hold booleans or 0/1")
    return a.astype(bool)


def _value(v: float | None) -> float:
    return math.nan if v is None else float(v)
