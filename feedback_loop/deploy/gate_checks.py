"""The checks a candidate must pass before it replaces the champion, and the decision.

Pure computation on both models' outputs for the same evaluation rows. Each check returns a
:class:`Check` whose ``detail`` holds the numbers behind the verdict (JSON-ready), so a
rejected candidate comes with its reason. :func:`decide` promotes only if every check passes.

Tasks (the :data:`Task` literal):

* ``"binary"``: labels are class codes (``positive`` names the positive one, default 1) or
  labels of any sortable type; scores are P(positive) per row.
* ``"multiclass"``: labels are codes ``0 .. k - 1`` or sortable labels; scores are an
  ``(n, k)`` probability matrix whose columns follow the codes (or the sorted labels).
* ``"regression"``: labels and predictions are numbers.

The segment and fairness checks work on per-row outcomes (see :func:`row_outcomes`):
correctness (1 right, 0 wrong; its mean is accuracy) for classification, absolute error (its
mean is MAE) for regression.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from feedback_loop.stats.lazy import lazy
from feedback_loop.stats.metrics import (
    CLASSIFICATION_KEYS,
    REGRESSION_KEYS,
    classification_metrics,
    regression_metrics,
)
from feedback_loop.stats.significance import UndefinedMetricError, mcnemar, paired_bootstrap

if TYPE_CHECKING:
    from scipy import stats
else:  # imported on first use: see stats.lazy
    stats = lazy("scipy.stats")

__all__ = [
    "LOWER_IS_BETTER",
    "Check",
    "GateDecision",
    "Task",
    "check_fairness",
    "check_improvement",
    "check_latency",
    "check_segments",
    "decide",
    "row_outcomes",
]

Task = Literal["binary", "multiclass", "regression"]
_TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "mae", "rmse", "mape"})
# Classification metrics read from scores or probabilities rather than labels.
_SCORE_METRICS = frozenset({"roc_auc", "log_loss", "brier"})

_FloatArray = npt.NDArray[np.float64]
Keys = pd.DataFrame | pd.Series | npt.ArrayLike


@dataclass(frozen=True)
class Check:
    """One check's verdict: ``value`` is compared with ``threshold``; ``detail`` says why."""

    name: str
    passed: bool
    value: float | None
    threshold: float | None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateDecision:
    """Promote only if every check passed (an empty list of checks passes)."""

    passed: bool
    checks: list[Check]

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failed": self.failed,
            "checks": [c.to_dict() for c in self.checks],
        }


def decide(checks: Iterable[Check]) -> GateDecision:
    """Combine checks: the gate passes only when all of them do.

    >>> d = decide([Check("latency", True, 8.0, 10.0), Check("fairness", False, 0.2, 0.1)])
    >>> d.passed, d.failed
    (False, ['fairness'])
    """
    listed = list(checks)
    return GateDecision(all(c.passed for c in listed), listed)


def row_outcomes(y_true: npt.ArrayLike, pred: npt.ArrayLike, *, task: Task) -> _FloatArray:
    """Per-row outcomes for the segment and fairness checks.

    Classification: 1.0 where the predicted label is right, else 0.0 (mean: accuracy).
    Regression: the absolute error (mean: MAE).

    >>> row_outcomes([1, 0, 1], [1, 1, 1], task="binary").tolist()
    [1.0, 0.0, 1.0]
    >>> row_outcomes([1.0, 2.0], [1.5, 2.0], task="regression").tolist()
    [0.5, 0.0]
    """
    _check_task(task)
    t, p = np.asarray(y_true), np.asarray(pred)
    if t.ndim != 1 or t.shape != p.shape:
        raise ValueError(f"y_true and pred must be 1-D of equal length, got {t.shape}, {p.shape}")
    if task == "regression":
        return np.abs(t.astype(np.float64) - p.astype(np.float64))
    return (t == p).astype(np.float64)


def check_improvement(
    y_true: npt.ArrayLike,
    champion: npt.ArrayLike,
    candidate: npt.ArrayLike,
    *,
    task: Task,
    metric: str | None = None,
    champion_score: npt.ArrayLike | None = None,
    candidate_score: npt.ArrayLike | None = None,
    n_classes: int | None = None,
    positive: Any = 1,
    min_improvement: float = 0.0,
    alpha: float = 0.05,
    n_resamples: int = 1000,
    random_state: int | None = 0,
) -> Check:
    """Is the candidate better than the champion on ``metric``, by a margin and significantly?

    ``champion``/``candidate`` are the predicted labels (classification) or values
    (regression) for the rows of ``y_true``; the ``*_score`` arguments are needed for
    ``roc_auc``, ``log_loss`` and ``brier``. ``metric`` defaults to accuracy
    (classification) or MAE (regression); any key of ``classification_metrics`` or
    ``regression_metrics`` works, and the direction follows the metric.

    * accuracy: one-sided McNemar test (is the candidate right more often where the models
      disagree?), exact below 25 discordant rows;
    * any other metric: one-sided paired bootstrap of the difference over rows.

    The candidate passes when the p-value is below ``alpha`` and the lower bound of the
    one-sided ``1 - alpha`` interval of the improvement (a normal interval for the paired
    accuracy difference, the bootstrap percentile otherwise) is at least ``min_improvement``:
    the margin must hold with confidence, not just on average. ``detail`` reports that bound
    as ``ci_low`` of the two-sided ``1 - 2 alpha`` interval of ``candidate - champion``
    (``ci_high`` for metrics where lower is better), with b, c and the test's statistic for
    McNemar and both metric values. ``value`` is the improvement (positive means better,
    whatever the metric's direction). A metric undefined on the data (ROC AUC with one class)
    fails the check.

    >>> y = np.array([0, 1] * 50)
    >>> check_improvement(y, np.r_[y[:70], 1 - y[70:]], y, task="binary").passed
    True
    >>> check_improvement(y, y, y, task="binary").detail["p_value"]
    1.0
    """
    _check_task(task)
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5), got {alpha}")
    name = metric or ("mae" if task == "regression" else "accuracy")
    common = {
        "min_improvement": min_improvement,
        "alpha": alpha,
        "n_resamples": n_resamples,
        "random_state": random_state,
    }
    if task == "regression":
        if name not in REGRESSION_KEYS:
            raise ValueError(f"metric must be one of {REGRESSION_KEYS} for regression")
        yv, chv, cav = (np.asarray(a, dtype=np.float64) for a in (y_true, champion, candidate))
        return _bootstrap_check(
            name, lambda y, p: regression_metrics(y, p)[name], yv, chv, cav, common
        )

    if name not in CLASSIFICATION_KEYS:
        raise ValueError(f"metric must be one of {CLASSIFICATION_KEYS} for classification")
    width = None if champion_score is None else np.shape(champion_score)
    t, ch, ca, k, pos = _encode(task, y_true, champion, candidate, n_classes, positive, width)
    if name == "accuracy":
        return _mcnemar_check(t == ch, t == ca, min_improvement, alpha)
    if name not in _SCORE_METRICS:

        def by_label(y: npt.NDArray[Any], p: npt.NDArray[Any]) -> float | None:
            return classification_metrics(y, p, k, positive=pos)[name]

        return _bootstrap_check(name, by_label, t, ch, ca, common)

    if champion_score is None or candidate_score is None:
        raise ValueError(f"{name} needs champion_score and candidate_score")
    chs = np.asarray(champion_score, dtype=np.float64)
    cas = np.asarray(candidate_score, dtype=np.float64)
    if chs.shape != cas.shape:
        raise ValueError(f"score shapes differ: {chs.shape} vs {cas.shape}")

    # The probability metrics ignore predicted labels: y itself stands in for them.
    def by_score(y: npt.NDArray[Any], s: npt.NDArray[Any]) -> float | None:
        if pos is not None:
            return classification_metrics(y, y, k, positive=pos, score=s)[name]
        return classification_metrics(y, y, k, proba=s)[name]

    return _bootstrap_check(name, by_score, t, chs, cas, common)


def check_segments(
    segment_keys: Keys,
    champion: npt.ArrayLike,
    candidate: npt.ArrayLike,
    *,
    task: Task,
    max_regression: float,
    min_support: int = 50,
) -> Check:
    """No segment with ``min_support`` rows gets worse by more than ``max_regression``.

    An average gain can hide a large loss on one slice of traffic; this catches it.
    ``segment_keys`` is a DataFrame (a segment is each combination of its columns' values) or
    one label per row. ``champion``/``candidate`` are per-row outcomes on the same rows (see
    :func:`row_outcomes`). A segment's regression is how much worse the candidate's mean is,
    in the metric's direction; ``value`` is the largest. ``detail`` names the worst segment
    and lists every failing one, worst first. Rows with a NaN outcome are left out.

    >>> keys = pd.DataFrame({"region": ["eu"] * 4 + ["us"] * 4})
    >>> champion = [1, 1, 1, 0, 1, 0, 0, 1]
    >>> candidate = [1, 0, 0, 0, 1, 1, 1, 1]
    >>> c = check_segments(keys, champion, candidate, task="binary", max_regression=0.1,
    ...                    min_support=2)
    >>> c.passed, c.value, c.detail["worst"]["segment"]
    (False, 0.5, 'region=eu')
    """
    if max_regression < 0:
        raise ValueError(f"max_regression must be non-negative, got {max_regression}")
    higher = _higher_is_better(task)
    rows = _group_means(segment_keys, champion, candidate, min_support)
    for r in rows:
        gap = r["champion"] - r["candidate"]
        r["regression"] = gap if higher else -gap
    rows.sort(key=lambda r: -r["regression"])
    failing = [r for r in rows if r["regression"] > max_regression]
    worst = rows[0] if rows else None
    detail = {
        "metric": _outcome_metric(task),
        "min_support": min_support,
        "segments": len(rows),
        "worst": worst,
        "failing": failing,
    }
    value = None if worst is None else worst["regression"]
    return Check("segments", not failing, value, max_regression, detail)


def check_latency(
    candidate_ms: npt.ArrayLike,
    *,
    budget_ms: float,
    quantile: float = 0.95,
    champion_ms: npt.ArrayLike | None = None,
) -> Check:
    """The candidate's latency ``quantile`` (p95 by default) is within ``budget_ms``.

    A tail quantile, not the mean: users feel the slow requests. No samples fail the check
    (there is no evidence the budget holds). The champion's quantile is reported when given.

    >>> c = check_latency([4.0, 5.0, 6.0, 30.0], budget_ms=20.0, quantile=0.5)
    >>> c.passed, c.value
    (True, 5.5)
    """
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must lie in [0, 1], got {quantile}")
    latencies = _finite(candidate_ms)
    detail: dict[str, Any] = {"quantile": quantile, "n": int(latencies.size)}
    if champion_ms is not None:
        before = _finite(champion_ms)
        detail["champion"] = float(np.quantile(before, quantile)) if before.size else None
    if latencies.size == 0:
        return Check("latency", False, None, budget_ms, {**detail, "reason": "no samples"})
    value = float(np.quantile(latencies, quantile))
    detail["max"] = float(latencies.max())
    return Check("latency", value <= budget_ms, value, budget_ms, detail)


def check_fairness(
    groups: Keys,
    champion: npt.ArrayLike | None,
    candidate: npt.ArrayLike,
    *,
    task: Task,
    max_gap: float,
    min_support: int = 50,
) -> Check:
    """The candidate's metric gap between its best and worst group is at most ``max_gap``.

    Groups (one label per row, or a DataFrame of columns) with fewer than ``min_support`` rows
    are too noisy to judge and are left out; with fewer than two groups left there is no gap
    and the check passes with ``value`` None. ``champion``/``candidate`` are per-row outcomes
    (see :func:`row_outcomes`); the champion's gap on the same groups is reported for
    comparison (pass None when there is no champion).

    >>> groups = ["a", "a", "b", "b"]
    >>> c = check_fairness(groups, None, [1, 1, 1, 0], task="binary", max_gap=0.2,
    ...                    min_support=2)
    >>> c.passed, c.value, c.detail["worst"]
    (False, 0.5, 'b')
    """
    if max_gap < 0:
        raise ValueError(f"max_gap must be non-negative, got {max_gap}")
    higher = _higher_is_better(task)
    champ = candidate if champion is None else champion
    rows = _group_means(groups, champ, candidate, min_support)
    if champion is None:
        for r in rows:
            r["champion"] = None
    detail: dict[str, Any] = {
        "metric": _outcome_metric(task),
        "min_support": min_support,
        "groups": rows,
    }
    if len(rows) < 2:
        note = "fewer than two groups with min_support rows"
        return Check("fairness", True, None, max_gap, {**detail, "note": note})
    ranked = sorted(rows, key=lambda r: r["candidate"], reverse=higher)
    gap = abs(ranked[0]["candidate"] - ranked[-1]["candidate"])
    detail["best"], detail["worst"] = ranked[0]["segment"], ranked[-1]["segment"]
    if champion is not None:
        means = [r["champion"] for r in rows]
        detail["champion_gap"] = max(means) - min(means)
    return Check("fairness", gap <= max_gap, gap, max_gap, detail)


# --- improvement internals ---------------------------------------------------------------


def _mcnemar_check(
    champion_correct: npt.NDArray[np.bool_],
    candidate_correct: npt.NDArray[np.bool_],
    min_improvement: float,
    alpha: float,
) -> Check:
    n = champion_correct.size
    if n == 0:
        raise ValueError("no rows to compare")
    test = mcnemar(champion_correct, candidate_correct, alternative="greater")
    diff = (test.c - test.b) / n
    # Paired rows differ by -1, 0 or +1: the normal interval of their mean.
    se = math.sqrt(max((test.b + test.c) / n - diff * diff, 0.0) / n)
    z = float(stats.norm.ppf(1.0 - alpha))
    low, high = diff - z * se, diff + z * se
    passed = test.p_value < alpha and low >= min_improvement
    detail = {
        "metric": "accuracy",
        "higher_is_better": True,
        "test": f"one-sided McNemar ({test.method})",
        "champion": float(np.count_nonzero(champion_correct)) / n,
        "candidate": float(np.count_nonzero(candidate_correct)) / n,
        "difference": diff,
        "ci_low": low,
        "ci_high": high,
        "confidence": 1.0 - 2.0 * alpha,
        "b": test.b,
        "c": test.c,
        "statistic": test.statistic,
        "p_value": test.p_value,
        "alpha": alpha,
        "n": n,
    }
    return Check("improvement", passed, diff, min_improvement, detail)


def _bootstrap_check(
    name: str,
    fn: Callable[[npt.NDArray[Any], npt.NDArray[Any]], float | None],
    y_true: npt.NDArray[Any],
    champion: npt.NDArray[Any],
    candidate: npt.NDArray[Any],
    common: dict[str, Any],
) -> Check:
    higher = name not in LOWER_IS_BETTER
    alpha, margin = common["alpha"], common["min_improvement"]
    base: dict[str, Any] = {"metric": name, "higher_is_better": higher}
    # A one-sided test at alpha reads the alpha quantile: a two-sided 1 - 2 alpha interval.
    confidence = 1.0 - 2.0 * alpha
    try:
        r = paired_bootstrap(
            fn,
            y_true,
            champion,
            candidate,
            n_resamples=common["n_resamples"],
            confidence=confidence,
            random_state=common["random_state"],
            higher_is_better=higher,
        )
    except UndefinedMetricError as exc:
        return Check("improvement", False, None, margin, {**base, "reason": str(exc)})
    sign = 1.0 if higher else -1.0
    gain_low = r.low if higher else -r.high
    passed = r.p_value < alpha and gain_low >= margin
    detail = {
        **base,
        "test": "one-sided paired bootstrap",
        "champion": r.champion,
        "candidate": r.candidate,
        "difference": r.difference,
        "ci_low": r.low,
        "ci_high": r.high,
        "confidence": confidence,
        "p_value": r.p_value,
        "alpha": alpha,
        "n_resamples": r.n_resamples,
        "n": int(y_true.shape[0]),
    }
    return Check("improvement", passed, sign * r.difference, margin, detail)


def _encode(
    task: Task,
    y_true: npt.ArrayLike,
    champion: npt.ArrayLike,
    candidate: npt.ArrayLike,
    n_classes: int | None,
    positive: Any,
    score_shape: tuple[int, ...] | None,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp], int, int | None]:
    """Class codes of the three label arrays, the number of classes and the positive code."""
    arrays = [np.asarray(a) for a in (y_true, champion, candidate)]
    if any(a.ndim != 1 or a.shape != arrays[0].shape for a in arrays):
        raise ValueError(f"labels must be 1-D of equal length, got {[a.shape for a in arrays]}")
    binary = task == "binary"
    if all(a.dtype.kind in "iub" for a in arrays):
        codes = [a.astype(np.intp) for a in arrays]
        top = max((int(c.max()) + 1 for c in codes if c.size), default=0)
        width = score_shape[1] if score_shape is not None and len(score_shape) == 2 else 0
        k = n_classes or max(2 if binary else 0, top, width)
        return codes[0], codes[1], codes[2], k, int(positive) if binary else None
    labels = np.concatenate([a.astype(object) for a in arrays])
    if binary:
        labels = np.append(labels, np.array([positive], dtype=object))
    try:
        classes = np.unique(labels)
    except TypeError as exc:
        raise ValueError(f"labels (and positive={positive!r}) must be comparable") from exc
    if binary and classes.size > 2:
        raise ValueError(f"a binary task has at most two labels, got {classes.tolist()}")
    k = n_classes or classes.size
    codes = [np.searchsorted(classes, a.astype(object)).astype(np.intp) for a in arrays]
    pos = int(np.searchsorted(classes, positive)) if binary else None
    return codes[0], codes[1], codes[2], k, pos


# --- grouping internals ------------------------------------------------------------------


def _group_means(
    keys: Keys, champion: npt.ArrayLike, candidate: npt.ArrayLike, min_support: int
) -> list[dict[str, Any]]:
    """Both models' mean outcome in every group with ``min_support`` rows (NaN rows dropped)."""
    frame, named = _key_frame(keys)
    ch = np.asarray(champion, dtype=np.float64)
    ca = np.asarray(candidate, dtype=np.float64)
    n = len(frame)
    if ch.shape != (n,) or ca.shape != (n,):
        raise ValueError(f"outcomes must have {n} rows like the keys, got {ch.shape}, {ca.shape}")
    if min_support < 1:
        raise ValueError(f"min_support must be at least 1, got {min_support}")
    ids = frame.groupby(list(frame.columns), dropna=False, sort=False).ngroup().to_numpy()
    known = ~(np.isnan(ch) | np.isnan(ca))
    ids, ch, ca = ids[known], ch[known], ca[known]
    first_rows = np.flatnonzero(known)
    count = np.bincount(ids, minlength=0)
    ch_sum = np.bincount(ids, weights=ch, minlength=count.size)
    ca_sum = np.bincount(ids, weights=ca, minlength=count.size)
    _, first = np.unique(ids, return_index=True)
    out = []
    for g, row in zip(np.unique(ids), first_rows[first], strict=True):
        if count[g] < min_support:
            continue
        values = [_plain(v) for v in frame.iloc[row].tolist()]
        if named:
            name = ", ".join(f"{c}={v}" for c, v in zip(frame.columns, values, strict=True))
        else:
            name = str(values[0])
        out.append(
            {
                "segment": name,
                "key": dict(zip(map(str, frame.columns), values, strict=True)),
                "n": int(count[g]),
                "champion": float(ch_sum[g] / count[g]),
                "candidate": float(ca_sum[g] / count[g]),
            }
        )
    return out


def _key_frame(keys: Keys) -> tuple[pd.DataFrame, bool]:
    """Keys as a DataFrame, and whether its column names belong in segment names."""
    if isinstance(keys, pd.DataFrame):
        if keys.shape[1] == 0:
            raise ValueError("segment keys need at least one column")
        return keys.reset_index(drop=True), True
    if isinstance(keys, pd.Series):
        return keys.reset_index(drop=True).to_frame(str(keys.name or "segment")), False
    a = np.asarray(keys)
    if a.ndim != 1:
        raise ValueError(f"group labels must be one-dimensional, got shape {a.shape}")
    return pd.DataFrame({"segment": a}), False


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar: NumPy scalars unwrapped, missing values as None."""
    if isinstance(value, np.generic):
        value = value.item()
    return None if value is None or (np.ndim(value) == 0 and pd.isna(value)) else value


def _finite(values: npt.ArrayLike) -> _FloatArray:
    a = np.asarray(values, dtype=np.float64).ravel()
    return a[~np.isnan(a)]


def _higher_is_better(task: Task) -> bool:
    _check_task(task)
    return task != "regression"


def _outcome_metric(task: Task) -> str:
    return "mae" if task == "regression" else "accuracy"


def _check_task(task: str) -> None:
    if task not in _TASKS:
        raise ValueError(f"task must be one of {_TASKS}, got {task!r}")
