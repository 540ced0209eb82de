"""The gate between a candidate and the champion, on one held-out set.

Both models are scored on the same recent rows, so their per-row errors pair up. The candidate
passes only if every configured check holds:

* ``improvement``: better by ``min_improvement`` with statistical significance — a one-sided
  McNemar test for accuracy, a one-sided paired bootstrap for the other metrics (``mae`` for
  regression). When the candidate is the best of ``tried`` candidates chosen on the same
  holdout, the test runs at ``alpha / tried`` (Bonferroni): picking the luckiest of several
  would otherwise pass a candidate that is no better more often than ``alpha`` says;
* ``segments``: no slice (of ``segment_by`` columns) with ``min_support`` rows gets worse by
  more than ``max_segment_regression``;
* ``latency``: the candidate's p95 single-row latency within ``latency_budget_ms``;
* ``fairness``: the candidate's error-rate gap between groups of ``fairness_by`` at most
  ``max_fairness_gap``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pandas as pd

from feedback_loop.core.tasks import label_key
from feedback_loop.deploy.gate_checks import (
    Check,
    Task,
    check_fairness,
    check_improvement,
    check_latency,
    check_segments,
    decide,
    row_outcomes,
)
from feedback_loop.retrain.dataset import Dataset
from feedback_loop.retrain.scoring import Scored


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


def run_gate(
    champion: Scored | None,
    candidate: Scored,
    holdout: Dataset,
    config: GateConfig,
    *,
    task: str,
    positive: Any = 1,
    tried: int = 1,
) -> dict[str, Any]:
    """Every configured check, and whether all passed (a JSON-ready dict for the event).
    ``tried``: how many candidates were fitted to choose this one (the significance level is
    divided by it)."""
    gate_task = cast(Task, task)
    tried = max(int(tried), 1)
    alpha = config.alpha / tried
    truth = candidate.truth
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
        metric = "mae" if task == "regression" else "accuracy"
        improvement = check_improvement(
            truth,
            champion.pred,
            candidate.pred,
            task=gate_task,
            metric=metric,
            champion_score=champion.score,
            candidate_score=candidate.score,
            positive=label_key(positive),
            min_improvement=config.min_improvement,
            alpha=alpha,
            n_resamples=config.bootstrap_resamples,
            random_state=config.random_state,
        )
        detail = {
            **improvement.detail,
            "candidates_tried": tried,
            "alpha_corrected": alpha,
            "champion_metrics": champion.metrics,
            "candidate_metrics": candidate.metrics,
        }
        checks.append(
            Check(
                improvement.name,
                improvement.passed,
                improvement.value,
                improvement.threshold,
                detail,
            )
        )
        before = row_outcomes(truth, champion.pred, task=gate_task)
        after = row_outcomes(truth, candidate.pred, task=gate_task)
        if config.segment_by:
            keys = _keys(holdout, list(config.segment_by))
            checks.append(
                check_segments(
                    keys,
                    before,
                    after,
                    task=gate_task,
                    max_regression=config.max_segment_regression,
                    min_support=config.min_support,
                )
                if keys is not None
                else _missing("segments", config.segment_by)
            )
    if config.latency_budget_ms is not None:
        checks.append(
            check_latency(
                candidate.latency_ms,
                budget_ms=config.latency_budget_ms,
                champion_ms=None if champion is None else champion.latency_ms,
            )
        )
    if config.fairness_by is not None and config.max_fairness_gap is not None:
        groups = _keys(holdout, [config.fairness_by])
        if groups is None:
            checks.append(_missing("fairness", (config.fairness_by,)))
        else:
            outcomes = row_outcomes(truth, candidate.pred, task=gate_task)
            old = None if champion is None else row_outcomes(truth, champion.pred, task=gate_task)
            checks.append(
                check_fairness(
                    groups[config.fairness_by],
                    old,
                    outcomes,
                    task=gate_task,
                    max_gap=config.max_fairness_gap,
                    min_support=config.min_support,
                )
            )
    decision = decide(checks).to_dict()
    decision["holdout_rows"] = len(holdout)
    return decision


def _missing(name: str, columns: tuple[str, ...]) -> Check:
    return Check(
        name,
        False,
        None,
        None,
        {"error": f"columns {list(columns)} are neither features nor tags of the holdout"},
    )


def _keys(holdout: Dataset, names: list[str]) -> pd.DataFrame | None:
    """Slicing columns from the holdout's features, or the tags logged with them."""
    tags = holdout.tags
    columns = {}
    for name in names:
        if name in holdout.X:
            columns[name] = holdout.X[name].to_numpy()
        elif tags is not None and name in tags:
            columns[name] = tags[name].to_numpy()
        else:
            return None
    return pd.DataFrame(columns)
