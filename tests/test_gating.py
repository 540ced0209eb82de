"""The candidate-vs-champion gate on generated held-out sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from feedback_loop.training.dataset import Dataset
from feedback_loop.training.gating import (
    GateConfig,
    mcnemar_better,
    paired_bootstrap_mean,
    run_gate,
)
from feedback_loop.training.scoring import Scored


def _scored(errors: np.ndarray, latency: float = 1.0) -> Scored:
    return Scored(np.zeros(len(errors)), None, errors.astype(float), {}, np.full(50, latency))


def _holdout(n: int, **columns: np.ndarray) -> Dataset:
    return Dataset(pd.DataFrame(columns or {"x": np.zeros(n)}), np.zeros(n), np.arange(n))


def _checks(decision: dict) -> dict[str, dict]:
    return {c["name"]: c for c in decision["checks"]}


def test_mcnemar_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    champion = rng.random(200) < 0.3
    candidate = rng.random(200) < 0.2
    got = mcnemar_better(champion, candidate)
    b = int(np.sum(candidate & ~champion))
    c = int(np.sum(champion & ~candidate))
    assert (got["b"], got["c"]) == (b, c)
    statistic = (abs(b - c) - 1) ** 2 / (b + c)
    assert got["p_value"] == stats.chi2.sf(statistic, 1) / 2
    small = mcnemar_better(np.array([1, 1, 1, 0]), np.array([0, 0, 0, 0]))
    assert small["p_value"] == stats.binomtest(3, 3, 0.5, alternative="greater").pvalue
    assert mcnemar_better(np.zeros(5), np.zeros(5))["p_value"] == 1.0


def test_identical_candidate_is_not_significant_and_better_one_passes() -> None:
    rng = np.random.default_rng(1)
    errors = (rng.random(1000) < 0.3).astype(float)
    same = run_gate(
        _scored(errors), _scored(errors.copy()), _holdout(1000), GateConfig(), task="binary"
    )
    assert not same["passed"]
    assert _checks(same)["improvement"]["detail"]["p_value"] == 1.0
    better = (rng.random(1000) < 0.15).astype(float)
    decision = run_gate(
        _scored(errors), _scored(better), _holdout(1000), GateConfig(), task="binary"
    )
    assert decision["passed"]
    assert _checks(decision)["improvement"]["detail"]["p_value"] < 1e-6


def test_segment_regression_fails_naming_the_segment() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    region = np.where(np.arange(n) % 4 == 0, "north", "south")
    champion = (rng.random(n) < 0.3).astype(float)
    candidate = (rng.random(n) < 0.15).astype(float)
    candidate[region == "north"] = rng.random(int((region == "north").sum())) < 0.6
    config = GateConfig(segment_by=("region",), max_segment_regression=0.05, min_support=100)
    decision = run_gate(
        _scored(champion), _scored(candidate), _holdout(n, region=region), config, task="binary"
    )
    check = _checks(decision)["segments"]
    assert not check["passed"] and check["detail"]["worst_segment"] == "north"
    assert "north" in check["detail"]["failing"]


def test_latency_and_fairness() -> None:
    rng = np.random.default_rng(3)
    errors = (rng.random(1000) < 0.3).astype(float)
    better = (rng.random(1000) < 0.1).astype(float)
    slow = run_gate(
        _scored(errors),
        _scored(better, latency=80.0),
        _holdout(1000),
        GateConfig(latency_budget_ms=50.0),
        task="binary",
    )
    assert not slow["passed"] and not _checks(slow)["latency"]["passed"]
    group = np.where(np.arange(1000) % 2 == 0, "a", "b")
    unfair = better.copy()
    unfair[group == "a"] = rng.random(500) < 0.02
    unfair[group == "b"] = rng.random(500) < 0.25
    decision = run_gate(
        _scored(errors),
        _scored(unfair),
        _holdout(1000, group=group),
        GateConfig(fairness_by="group", max_fairness_gap=0.1),
        task="binary",
    )
    check = _checks(decision)["fairness"]
    assert not check["passed"] and check["value"] > 0.1


def test_false_promotions_on_a_null_stream_are_rare() -> None:
    promoted = 0
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        champion = (rng.random(800) < 0.25).astype(float)
        candidate = (rng.random(800) < 0.25).astype(float)  # equally good
        promoted += run_gate(
            _scored(champion), _scored(candidate), _holdout(800), GateConfig(), task="binary"
        )["passed"]
    assert promoted <= 4  # alpha 0.05: about 2 of 40 expected


def test_regression_gate_uses_paired_bootstrap() -> None:
    rng = np.random.default_rng(4)
    champion = np.abs(rng.normal(0, 1.0, 600))
    candidate = champion * 0.8
    result = paired_bootstrap_mean(champion, candidate, resamples=1000, seed=0)
    assert result["low"] > 0 and result["p_value"] < 0.01
    assert result["mean_reduction"] == (champion - candidate).mean()
    decision = run_gate(
        _scored(champion), _scored(candidate), _holdout(600), GateConfig(), task="regression"
    )
    assert decision["passed"]
