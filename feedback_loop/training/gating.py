"""The gate between a candidate and the champion, on one held-out set.

Both models are scored on the same recent rows, so their per-row errors pair up. The candidate
passes only if every configured check holds:

* ``improvement``: better by ``min_improvement`` with statistical significance — a one-sided
  McNemar test on the discordant rows for classification errors, a one-sided paired bootstrap
  of the mean error difference for regression;
* ``segments``: no slice (of ``segment_by`` columns) with ``min_support`` rows gets worse by
  more than ``max_segment_regression``;
* ``latency``: the candidate's p95 single-row latency within ``latency_budget_ms``;
* ``fairness``: the candidate's error-rate gap between groups of ``fairness_by`` at most
  ``max_fairness_gap``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from feedback_loop.training.dataset import Dataset
from feedback_loop.training.scoring import Scored


@dataclass(frozen=True)
class GateConfig:
    min_improvement: float = 0.0
    alpha: float = 0.05
    segment_by: tuple[str, ...] = ()
    max_segment_regression: float = 0.05
    min_support: int = 50
    latency_budget_ms: float | None = None
    fairness_by: str | None = None
    max_fairness_gap: float | None = None
    bootstrap_resamples: int = 2000
    random_state: int = 0


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    value: float | None
    threshold: float | None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mcnemar_better(champion_wrong: np.ndarray, candidate_wrong: np.ndarray) -> dict[str, Any]:
    """One-sided McNemar: is the candidate right more often where the two disagree?

    ``b`` counts rows only the candidate gets wrong, ``c`` rows only the champion gets wrong.
    Exact binomial below 25 discordant rows, else chi-square with continuity correction.
    """
    b = int(np.sum(candidate_wrong.astype(bool) & ~champion_wrong.astype(bool)))
    c = int(np.sum(champion_wrong.astype(bool) & ~candidate_wrong.astype(bool)))
    n = b + c
    if n == 0:
        return {"b": b, "c": c, "p_value": 1.0, "method": "no discordant rows"}
    if n < 25:
        p = float(stats.binomtest(c, n, 0.5, alternative="greater").pvalue)
        return {"b": b, "c": c, "p_value": p, "method": "exact binomial"}
    statistic = (abs(b - c) - 1) ** 2 / n
    p_two = float(stats.chi2.sf(statistic, 1))
    p = p_two / 2 if c > b else 1 - p_two / 2
    return {"b": b, "c": c, "p_value": p, "statistic": statistic, "method": "chi-square (cc)"}


def paired_bootstrap_mean(
    champion_errors: np.ndarray,
    candidate_errors: np.ndarray,
    *,
    resamples: int,
    seed: int,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Bootstrap of the mean paired error reduction (champion minus candidate) over rows."""
    diff = champion_errors - candidate_errors
    rng = np.random.default_rng(seed)
    n = len(diff)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // max(n, 1))
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        index = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = diff[index].mean(axis=1)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return {
        "mean_reduction": float(diff.mean()),
        "low": float(low),
        "high": float(high),
        "p_value": float((np.sum(means <= 0) + 1) / (resamples + 1)),
    }


def _improvement(champion: Scored, candidate: Scored, config: GateConfig, task: str) -> Check:
    reduction = float(np.mean(champion.errors) - np.mean(candidate.errors))
    if task == "regression":
        test = paired_bootstrap_mean(
            champion.errors,
            candidate.errors,
            resamples=config.bootstrap_resamples,
            seed=config.random_state,
        )
    else:
        test = mcnemar_better(champion.errors, candidate.errors)
    passed = reduction > config.min_improvement and test["p_value"] < config.alpha
    metric = "error rate" if task != "regression" else "mean absolute error"
    return Check(
        "improvement",
        passed,
        reduction,
        config.min_improvement,
        {
            "metric": metric,
            "champion": float(np.mean(champion.errors)),
            "candidate": float(np.mean(candidate.errors)),
            "alpha": config.alpha,
            **test,
            "champion_metrics": champion.metrics,
            "candidate_metrics": candidate.metrics,
        },
    )


def _by_group(keys: pd.DataFrame, errors: np.ndarray, min_support: int) -> dict[str, float]:
    frame = keys.astype(str).assign(__e=errors)
    grouped = frame.groupby(list(keys.columns))["__e"].agg(["mean", "size"])
    grouped = grouped[grouped["size"] >= min_support]
    return {
        "|".join(map(str, k if isinstance(k, tuple) else (k,))): float(v)
        for k, v in grouped["mean"].items()
    }


def _keys(holdout: Dataset, names: list[str]) -> pd.DataFrame | None:
    tags = holdout.X.attrs.get("tags")
    columns = {}
    for name in names:
        if name in holdout.X:
            columns[name] = holdout.X[name].to_numpy()
        elif tags is not None and name in tags:
            columns[name] = tags[name].to_numpy()
        else:
            return None
    return pd.DataFrame(columns)


def _segments(champion: Scored, candidate: Scored, holdout: Dataset, config: GateConfig) -> Check:
    keys = _keys(holdout, list(config.segment_by))
    if keys is None:
        return Check(
            "segments",
            False,
            None,
            config.max_segment_regression,
            {"error": f"segment columns {list(config.segment_by)} not in the holdout"},
        )
    before = _by_group(keys, champion.errors, config.min_support)
    after = _by_group(keys, candidate.errors, config.min_support)
    worse = {k: after[k] - before[k] for k in before}
    failing = {k: v for k, v in worse.items() if v > config.max_segment_regression}
    worst = max(worse.items(), key=lambda kv: kv[1], default=(None, 0.0))
    return Check(
        "segments",
        not failing,
        worst[1],
        config.max_segment_regression,
        {"worst_segment": worst[0], "failing": failing, "segments": len(worse)},
    )


def _latency(candidate: Scored, config: GateConfig) -> Check:
    p95 = float(np.quantile(candidate.latency_ms, 0.95)) if len(candidate.latency_ms) else 0.0
    assert config.latency_budget_ms is not None
    return Check(
        "latency",
        p95 <= config.latency_budget_ms,
        p95,
        config.latency_budget_ms,
        {"quantile": 0.95, "sample": len(candidate.latency_ms)},
    )


def _fairness(
    champion: Scored | None, candidate: Scored, holdout: Dataset, config: GateConfig
) -> Check:
    assert config.fairness_by is not None and config.max_fairness_gap is not None
    keys = _keys(holdout, [config.fairness_by])
    if keys is None:
        return Check(
            "fairness",
            False,
            None,
            config.max_fairness_gap,
            {"error": f"{config.fairness_by!r} not in the holdout"},
        )
    groups = _by_group(keys, candidate.errors, config.min_support)
    gap = (max(groups.values()) - min(groups.values())) if len(groups) > 1 else 0.0
    detail: dict[str, Any] = {"groups": groups}
    if champion is not None:
        old = _by_group(keys, champion.errors, config.min_support)
        detail["champion_gap"] = (max(old.values()) - min(old.values())) if len(old) > 1 else 0.0
    return Check("fairness", gap <= config.max_fairness_gap, gap, config.max_fairness_gap, detail)


def run_gate(
    champion: Scored | None,
    candidate: Scored,
    holdout: Dataset,
    config: GateConfig,
    *,
    task: str,
) -> dict[str, Any]:
    """Every configured check, and whether all passed (a JSON-ready dict for the event)."""
    checks: list[Check] = []
    if champion is None:
        checks.append(
            Check(
                "improvement",
                True,
                None,
                None,
                {
                    "note": "no champion yet: the first candidate is promoted",
                    "candidate_metrics": candidate.metrics,
                },
            )
        )
    else:
        checks.append(_improvement(champion, candidate, config, task))
        if config.segment_by:
            checks.append(_segments(champion, candidate, holdout, config))
    if config.latency_budget_ms is not None:
        checks.append(_latency(candidate, config))
    if config.fairness_by is not None and config.max_fairness_gap is not None:
        checks.append(_fairness(champion, candidate, holdout, config))
    return {
        "passed": all(c.passed for c in checks),
        "holdout_rows": len(holdout),
        "checks": [c.to_dict() for c in checks],
    }
