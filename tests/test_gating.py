"""The gate as the loop runs it: scored models on a held-out set, checks from config."""

from __future__ import annotations

import numpy as np
import pandas as pd

from feedback_loop.deploy.gate import GateConfig, run_gate
from feedback_loop.retrain.dataset import Dataset
from feedback_loop.retrain.scoring import Scored


def _scored(truth: np.ndarray, pred: np.ndarray, latency: float = 1.0) -> Scored:
    keys_t = np.array([str(int(v)) for v in truth], dtype=object)
    keys_p = np.array([str(int(v)) for v in pred], dtype=object)
    return Scored(keys_t, keys_p, None, (keys_t != keys_p).astype(float), {}, np.full(50, latency))


def _predict(rng, truth: np.ndarray, error_rate: float) -> np.ndarray:
    flip = rng.random(len(truth)) < error_rate
    return np.where(flip, 1 - truth, truth)


def _holdout(n: int, **columns: np.ndarray) -> Dataset:
    return Dataset(pd.DataFrame(columns or {"x": np.zeros(n)}), np.zeros(n), np.arange(n))


def _checks(decision: dict) -> dict[str, dict]:
    return {c["name"]: c for c in decision["checks"]}


def test_better_candidate_passes_identical_one_does_not() -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 1000)
    champion = _predict(rng, truth, 0.3)
    same = run_gate(
        _scored(truth, champion),
        _scored(truth, champion.copy()),
        _holdout(1000),
        GateConfig(),
        task="binary",
    )
    assert not same["passed"] and same["failed"] == ["improvement"]
    better = run_gate(
        _scored(truth, champion),
        _scored(truth, _predict(rng, truth, 0.15)),
        _holdout(1000),
        GateConfig(),
        task="binary",
    )
    assert better["passed"]
    assert _checks(better)["improvement"]["detail"]["p_value"] < 1e-6


def test_segment_latency_and_fairness_checks() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    truth = rng.integers(0, 2, n)
    region = np.where(np.arange(n) % 4 == 0, "north", "south")
    champion = _predict(rng, truth, 0.3)
    candidate = _predict(rng, truth, 0.1)
    north = region == "north"
    candidate[north] = _predict(rng, truth[north], 0.6)
    config = GateConfig(
        segment_by=("region",),
        max_segment_regression=0.05,
        min_support=100,
        latency_budget_ms=5.0,
        fairness_by="region",
        max_fairness_gap=0.1,
    )
    decision = run_gate(
        _scored(truth, champion),
        _scored(truth, candidate, latency=20.0),
        _holdout(n, region=region),
        config,
        task="binary",
    )
    checks = _checks(decision)
    assert not checks["segments"]["passed"]
    assert "north" in str(checks["segments"]["detail"])
    assert not checks["latency"]["passed"] and checks["latency"]["value"] == 20.0
    assert not checks["fairness"]["passed"]
    assert set(decision["failed"]) == {"segments", "latency", "fairness"}


def test_missing_segment_column_fails_closed() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 2, 500)
    decision = run_gate(
        _scored(truth, _predict(rng, truth, 0.3)),
        _scored(truth, _predict(rng, truth, 0.1)),
        _holdout(500),
        GateConfig(segment_by=("colour",)),
        task="binary",
    )
    assert not decision["passed"] and "colour" in str(_checks(decision)["segments"]["detail"])


def test_the_best_of_several_candidates_is_tested_at_a_divided_level() -> None:
    rng = np.random.default_rng(1)  # a candidate better at p = 0.017: passes alone, not of 8
    truth = rng.integers(0, 2, 600)
    champion = _predict(rng, truth, 0.30)
    candidate = _predict(rng, truth, 0.25)
    alone = run_gate(
        _scored(truth, champion),
        _scored(truth, candidate),
        _holdout(600),
        GateConfig(),
        task="binary",
    )
    improvement = _checks(alone)["improvement"]["detail"]
    assert improvement["candidates_tried"] == 1 and improvement["alpha_corrected"] == 0.05
    p_value = improvement["p_value"]
    tried = 8
    many = run_gate(
        _scored(truth, champion),
        _scored(truth, candidate),
        _holdout(600),
        GateConfig(),
        task="binary",
        tried=tried,
    )
    detail = _checks(many)["improvement"]["detail"]
    assert detail["alpha_corrected"] == 0.05 / tried
    assert 0.05 / tried < p_value < 0.05
    assert alone["passed"] and not many["passed"]
