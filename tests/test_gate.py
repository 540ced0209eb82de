"""The candidate-versus-champion gate: statistics checked against SciPy and scikit-learn, and
the checks on generated candidates whose verdict is known."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import f1_score, log_loss, mean_absolute_error, r2_score, roc_auc_score

from feedback_loop.deploy import gate_checks as checks_module
from feedback_loop.deploy.gate_checks import (
    Check,
    check_fairness,
    check_improvement,
    check_latency,
    check_segments,
    decide,
    row_outcomes,
)
from feedback_loop.stats import significance
from feedback_loop.stats.metrics import classification_metrics
from feedback_loop.stats.significance import UndefinedMetricError, mcnemar, paired_bootstrap


def mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.abs(y - p).mean())


def auc(y: np.ndarray, s: np.ndarray) -> float | None:
    return classification_metrics(y, y, 2, positive=1, score=s)["roc_auc"]


def paired(b: int, c: int, both_right: int = 30, both_wrong: int = 5) -> tuple[np.ndarray, ...]:
    """Correctness arrays with ``b`` rows only the champion gets right, ``c`` the reverse."""
    champion = [True] * both_right + [True] * b + [False] * c + [False] * both_wrong
    candidate = [True] * both_right + [False] * b + [True] * c + [False] * both_wrong
    order = np.random.default_rng(b * 1000 + c).permutation(len(champion))
    return np.array(champion)[order], np.array(candidate)[order]


def classified(rng: np.random.Generator, y: np.ndarray, accuracy: float | np.ndarray) -> np.ndarray:
    """Binary predictions right on each row with probability ``accuracy``."""
    right = rng.random(y.size) < accuracy
    return np.where(right, y, 1 - y)


# --- McNemar ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("b", "c"), [(0, 1), (3, 9), (9, 3), (7, 7), (0, 24), (12, 12)])
def test_mcnemar_exact_matches_binomtest(b: int, c: int) -> None:
    champion, candidate = paired(b, c)
    two = mcnemar(champion, candidate)
    one = mcnemar(champion, candidate, alternative="greater")
    assert (two.b, two.c, two.method, one.method) == (b, c, "exact", "exact")
    assert two.p_value == pytest.approx(stats.binomtest(min(b, c), b + c, 0.5).pvalue)
    expected = stats.binomtest(c, b + c, 0.5, alternative="greater").pvalue
    assert one.p_value == pytest.approx(expected)


@pytest.mark.parametrize(("b", "c"), [(10, 15), (40, 25), (25, 40), (100, 130), (300, 301)])
def test_mcnemar_chi_square_matches_scipy(b: int, c: int) -> None:
    champion, candidate = paired(b, c)
    two = mcnemar(champion, candidate)
    statistic = (abs(b - c) - 1) ** 2 / (b + c)
    assert two.method == "chi-square"
    assert two.statistic == pytest.approx(statistic)
    assert two.p_value == pytest.approx(stats.chi2.sf(statistic, 1))
    one = mcnemar(champion, candidate, alternative="greater")
    if c > b:
        # One-sided in the observed direction: half the two-sided chi-square p-value.
        assert one.p_value == pytest.approx(stats.chi2.sf(statistic, 1) / 2)
    else:
        assert one.p_value > 0.5
    # The continuity-corrected normal tail tracks the exact binomial tail.
    exact = stats.binomtest(c, b + c, 0.5, alternative="greater").pvalue
    assert one.p_value == pytest.approx(exact, abs=0.01)


def test_mcnemar_forced_method_and_edges() -> None:
    champion, candidate = paired(30, 45)
    forced = mcnemar(champion, candidate, exact=True, alternative="greater")
    assert forced.method == "exact"
    assert forced.p_value == pytest.approx(
        stats.binomtest(45, 75, 0.5, alternative="greater").pvalue
    )
    champion, candidate = paired(2, 9)
    approx = mcnemar(champion, candidate, exact=False)
    assert approx.method == "chi-square"
    assert approx.p_value == pytest.approx(stats.chi2.sf((7 - 1) ** 2 / 11, 1))
    # No discordant rows: no evidence either way, under both methods and both alternatives.
    same = np.array([True, False, True])
    for exact in (None, True, False):
        for alternative in ("two-sided", "greater"):
            r = mcnemar(same, same, exact=exact, alternative=alternative)
            assert (r.b, r.c, r.p_value) == (0, 0, 1.0)
    # Balanced discordance: the correction is floored, so the two-sided p-value is 1.
    champion, candidate = paired(50, 50)
    assert mcnemar(champion, candidate).p_value == 1.0
    assert mcnemar([1, 0, 1], [1, 1, 0]).b == 1  # 0/1 integers are accepted
    with pytest.raises(ValueError, match="lengths differ"):
        mcnemar([True, False], [True])
    with pytest.raises(ValueError, match="booleans"):
        mcnemar([0, 2], [1, 1])
    with pytest.raises(ValueError, match="alternative"):
        mcnemar([True], [True], alternative="less")  # type: ignore[arg-type]


# --- Paired bootstrap --------------------------------------------------------------------------


def test_bootstrap_identical_models_are_not_significant() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=2000)
    pred = y + rng.normal(size=2000)
    r = paired_bootstrap(mae, y, pred, pred.copy(), higher_is_better=False)
    assert (r.difference, r.low, r.high) == (0.0, 0.0, 0.0)
    assert r.p_value == 1.0  # no resample shows the candidate better


def test_bootstrap_equally_good_models_give_interval_around_zero() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=3000)
    champion = y + rng.normal(size=3000)
    candidate = y + rng.normal(size=3000)
    r = paired_bootstrap(mae, y, champion, candidate, higher_is_better=False)
    assert r.low < 0.0 < r.high
    assert 0.05 < r.p_value < 0.95


def test_bootstrap_clearly_better_candidate() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 4000)
    noise = rng.random(4000)
    champion = np.clip(0.15 * y + 0.85 * noise, 0, 1)
    candidate = np.clip(0.3 * y + 0.7 * noise, 0, 1)
    r = paired_bootstrap(auc, y, champion, candidate)
    assert r.champion == pytest.approx(roc_auc_score(y, champion))
    assert r.candidate == pytest.approx(roc_auc_score(y, candidate))
    assert r.difference == pytest.approx(r.candidate - r.champion)
    assert r.low > 0.0 and r.p_value < 0.01
    assert r.low <= r.difference <= r.high


def test_bootstrap_pairs_rows() -> None:
    # The candidate's error is 90% of the champion's on every row: every resample shows the
    # gain, and the interval is far narrower than the spread of either model's MAE alone.
    rng = np.random.default_rng(3)
    y = rng.normal(size=1000)
    error = rng.standard_t(3, size=1000)
    r = paired_bootstrap(mae, y, y + error, y + 0.9 * error, higher_is_better=False)
    assert r.p_value == 0.0 and r.high < 0.0
    assert r.difference == pytest.approx(-0.1 * np.abs(error).mean())
    spread = paired_bootstrap(mae, y, y + error, y + error, confidence=0.9)
    assert spread.high - spread.low == 0.0
    alone = np.std([mae(y[i], (y + error)[i]) for i in rng.integers(0, 1000, (200, 1000))])
    assert r.high - r.low < alone


def test_bootstrap_reproducible_and_seeded() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(size=500)
    a, b = y + rng.normal(size=500), y + rng.normal(size=500)
    first = paired_bootstrap(mae, y, a, b, n_resamples=300, random_state=7)
    assert first == paired_bootstrap(mae, y, a, b, n_resamples=300, random_state=7)
    assert first != paired_bootstrap(mae, y, a, b, n_resamples=300, random_state=8)
    assert first.n_resamples == 300


def test_bootstrap_point_estimates_match_scikit_learn() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 600)
    proba_a = rng.dirichlet(np.ones(3), 600)
    proba_b = 0.5 * proba_a + 0.5 * np.eye(3)[y]

    def loss(t: np.ndarray, p: np.ndarray) -> float | None:
        return classification_metrics(t, t, 3, proba=p)["log_loss"]

    r = paired_bootstrap(loss, y, proba_a, proba_b, n_resamples=200, higher_is_better=False)
    assert r.champion == pytest.approx(log_loss(y, proba_a, labels=[0, 1, 2]))
    assert r.candidate == pytest.approx(log_loss(y, proba_b, labels=[0, 1, 2]))
    assert r.p_value == 0.0 and r.high < 0

    w = rng.random(600)

    def weighted_mae(t: np.ndarray, p: np.ndarray, weight: np.ndarray) -> float:
        return float(np.average(np.abs(t - p), weights=weight))

    yr = rng.normal(size=600)
    pa, pb = yr + rng.normal(size=600), yr + 0.5 * rng.normal(size=600)
    r = paired_bootstrap(weighted_mae, yr, pa, pb, n_resamples=100, extra={"weight": w})
    assert r.champion == pytest.approx(mean_absolute_error(yr, pa, sample_weight=w))
    assert r.candidate == pytest.approx(mean_absolute_error(yr, pb, sample_weight=w))


def test_bootstrap_undefined_and_invalid() -> None:
    y = np.zeros(10, dtype=np.int64)
    with pytest.raises(UndefinedMetricError):
        paired_bootstrap(auc, y, np.full(10, 0.5), np.full(10, 0.5))
    # Resamples holding a single class are dropped, not counted.
    y = np.array([1] + [0] * 19)
    s = np.linspace(0, 1, 20)
    r = paired_bootstrap(auc, y, s, s[::-1].copy(), n_resamples=200)
    assert 0 < r.n_resamples < 200
    with pytest.raises(ValueError, match="rows"):
        paired_bootstrap(mae, np.ones(3), np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="n_resamples"):
        paired_bootstrap(mae, np.ones(3), np.ones(3), np.ones(3), n_resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap(mae, np.ones(3), np.ones(3), np.ones(3), confidence=1.0)


# --- Improvement ---------------------------------------------------------------------------


def test_identical_candidate_fails_improvement() -> None:
    rng = np.random.default_rng(10)
    y = rng.integers(0, 2, 2000)
    pred = classified(rng, y, 0.8)
    c = check_improvement(y, pred, pred.copy(), task="binary")
    assert not c.passed and c.detail["p_value"] == 1.0 and c.value == 0.0
    assert c.detail["b"] == c.detail["c"] == 0
    yr = rng.normal(size=1000)
    values = yr + rng.normal(size=1000)
    c = check_improvement(yr, values, values.copy(), task="regression", n_resamples=200)
    assert not c.passed and c.detail["p_value"] == 1.0 and c.detail["metric"] == "mae"


def test_equally_good_candidate_fails_with_non_significant_p() -> None:
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 3000)
    c = check_improvement(y, classified(rng, y, 0.8), classified(rng, y, 0.8), task="binary")
    assert not c.passed and c.detail["p_value"] > 0.05
    assert c.detail["test"] == "one-sided McNemar (chi-square)"


def test_much_better_candidate_passes_on_every_metric() -> None:
    rng = np.random.default_rng(12)
    n = 3000
    y = rng.integers(0, 2, n)
    noise = rng.random(n)
    champion_score = np.clip(0.2 * y + 0.8 * noise, 0.01, 0.99)
    candidate_score = np.clip(0.5 * y + 0.5 * noise, 0.01, 0.99)
    champion, candidate = (champion_score > 0.5).astype(int), (candidate_score > 0.5).astype(int)
    for metric in ("accuracy", "f1", "roc_auc", "log_loss", "brier"):
        c = check_improvement(
            y, champion, candidate, task="binary", metric=metric, n_resamples=300,
            champion_score=champion_score, candidate_score=candidate_score,
        )  # fmt: skip
        assert c.passed, (metric, c.detail)
        assert c.value is not None and c.value > 0  # positive is better, whatever the direction
    c = check_improvement(
        y, champion, candidate, task="binary", metric="roc_auc",
        champion_score=champion_score, candidate_score=candidate_score,
    )  # fmt: skip
    assert c.detail["champion"] == pytest.approx(roc_auc_score(y, champion_score))
    assert c.detail["candidate"] == pytest.approx(roc_auc_score(y, candidate_score))
    c = check_improvement(y, champion, candidate, task="binary", metric="f1", n_resamples=200)
    assert c.detail["candidate"] == pytest.approx(f1_score(y, candidate))

    yr = rng.normal(size=n)
    worse, better = yr + rng.normal(size=n), yr + 0.5 * rng.normal(size=n)
    for metric in ("mae", "rmse", "r2"):
        c = check_improvement(yr, worse, better, task="regression", metric=metric, n_resamples=300)
        assert c.passed, (metric, c.detail)
    assert c.detail["candidate"] == pytest.approx(r2_score(yr, better))

    yk = rng.integers(0, 4, n)
    weak = np.where(rng.random(n) < 0.5, yk, rng.integers(0, 4, n))
    strong = np.where(rng.random(n) < 0.8, yk, rng.integers(0, 4, n))
    c = check_improvement(yk, weak, strong, task="multiclass", metric="f1", n_resamples=300)
    assert c.passed
    assert c.detail["candidate"] == pytest.approx(f1_score(yk, strong, average="macro"))
    proba = np.full((n, 4), 0.1) + 0.6 * np.eye(4)[strong]
    flat = np.full((n, 4), 0.25)
    c = check_improvement(
        yk, weak, strong, task="multiclass", metric="log_loss", n_resamples=300,
        champion_score=flat, candidate_score=proba,
    )  # fmt: skip
    assert c.passed and c.detail["champion"] == pytest.approx(np.log(4))


def test_min_improvement_must_hold_with_confidence() -> None:
    rng = np.random.default_rng(13)
    y = rng.integers(0, 2, 5000)
    champion, candidate = classified(rng, y, 0.80), classified(rng, y, 0.85)
    small = check_improvement(y, champion, candidate, task="binary", min_improvement=0.01)
    large = check_improvement(y, champion, candidate, task="binary", min_improvement=0.1)
    assert small.passed and not large.passed
    assert large.detail["p_value"] < 0.05  # significant, but not by that much
    assert large.detail["ci_low"] < 0.1 and large.threshold == 0.1
    yr = rng.normal(size=2000)
    worse, better = yr + rng.normal(size=2000), yr + 0.9 * rng.normal(size=2000)
    kwargs = {"task": "regression", "n_resamples": 300}
    assert check_improvement(yr, worse, better, **kwargs).passed  # type: ignore[arg-type]
    assert not check_improvement(
        yr,
        worse,
        better,
        min_improvement=0.2,
        **kwargs,  # type: ignore[arg-type]
    ).passed


def test_string_labels_and_undefined_metric() -> None:
    y = np.array(["yes", "no"] * 100)
    champion = np.where(np.arange(200) < 140, y, np.where(y == "yes", "no", "yes"))
    c = check_improvement(y, champion, y, task="binary", positive="yes")
    assert c.passed and c.detail["champion"] == 0.7
    f1 = check_improvement(y, champion, y, task="binary", metric="f1", positive="yes")
    assert f1.detail["champion"] == pytest.approx(f1_score(y, champion, pos_label="yes"))
    one_class = np.ones(50, dtype=int)
    c = check_improvement(
        one_class, one_class, one_class, task="binary", metric="roc_auc",
        champion_score=np.full(50, 0.6), candidate_score=np.full(50, 0.7),
    )  # fmt: skip
    assert not c.passed and c.value is None and "undefined" in c.detail["reason"]
    with pytest.raises(ValueError, match="champion_score"):
        check_improvement(y, champion, y, task="binary", metric="roc_auc", positive="yes")
    with pytest.raises(ValueError, match="metric"):
        check_improvement(y, champion, y, task="binary", metric="mae", positive="yes")
    with pytest.raises(ValueError, match="task"):
        check_improvement(y, champion, y, task="ranking")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="two labels"):
        three = ["a", "b", "c"]
        check_improvement(three, three, three[::-1], task="binary", positive="a")


def test_null_stream_false_promotion_rate() -> None:
    # Champion and candidate equally good, independent errors: any promotion is false.
    # Measured: 1 of these 40 seeds (2.5%) for the McNemar check, 0 of 40 for the bootstrap
    # check on MAE; over 400 further seeds, 18 (4.5%) each: the nominal 5% rate.
    seeds = range(40)
    promoted_accuracy = promoted_mae = 0
    for seed in seeds:
        rng = np.random.default_rng(1000 + seed)
        y = rng.integers(0, 2, 1000)
        c = check_improvement(y, classified(rng, y, 0.75), classified(rng, y, 0.75), task="binary")
        promoted_accuracy += c.passed
        yr = rng.normal(size=500)
        worse, same = yr + rng.normal(size=500), yr + rng.normal(size=500)
        c = check_improvement(
            yr, worse, same, task="regression", n_resamples=400, random_state=seed
        )
        promoted_mae += c.passed
    assert promoted_accuracy / len(seeds) <= 0.10
    assert promoted_mae / len(seeds) <= 0.10


# --- Segments, latency, fairness -------------------------------------------------------------


def test_segment_regression_is_caught_and_named() -> None:
    rng = np.random.default_rng(20)
    n = 6000
    region = np.repeat(["eu", "us", "apac"], n // 3)
    plan = np.tile(["free", "pro"], n // 2)
    y = rng.integers(0, 2, n)
    champion = classified(rng, y, 0.8)
    candidate = classified(rng, y, np.where(region == "apac", 0.62, 0.93))
    overall = check_improvement(y, champion, candidate, task="binary")
    assert overall.detail["candidate"] > overall.detail["champion"]  # better on average
    keys = pd.DataFrame({"region": region})
    outcomes = [row_outcomes(y, p, task="binary") for p in (champion, candidate)]
    c = check_segments(keys, *outcomes, task="binary", max_regression=0.05, min_support=100)
    assert not c.passed
    assert c.detail["worst"]["segment"] == "region=apac"
    assert [f["segment"] for f in c.detail["failing"]] == ["region=apac"]
    assert c.value == pytest.approx(c.detail["worst"]["regression"])
    assert c.value == pytest.approx(
        outcomes[0][region == "apac"].mean() - outcomes[1][region == "apac"].mean()
    )
    both = pd.DataFrame({"region": region, "plan": plan})
    c = check_segments(both, *outcomes, task="binary", max_regression=0.05, min_support=100)
    assert {f["key"]["region"] for f in c.detail["failing"]} == {"apac"}
    assert c.detail["segments"] == 6 and len(c.detail["failing"]) == 2
    # Too little support: the slices are not judged.
    c = check_segments(region, *outcomes, task="binary", max_regression=0.05, min_support=5000)
    assert c.passed and c.value is None and c.detail["segments"] == 0
    c = check_segments(region, *outcomes, task="binary", max_regression=0.5, min_support=100)
    assert c.passed and c.detail["worst"]["segment"] == "apac"


def test_segments_on_regression_errors_and_missing_keys() -> None:
    rng = np.random.default_rng(21)
    y = rng.normal(size=900)
    group = np.array(["a", "b", None] * 300, dtype=object)
    champion = y + rng.normal(size=900)
    candidate = np.where(group == "b", y + 3 * rng.normal(size=900), y + 0.5 * rng.normal(size=900))
    errors = [row_outcomes(y, p, task="regression") for p in (champion, candidate)]
    errors[1][0] = np.nan  # dropped, not propagated
    c = check_segments(group, *errors, task="regression", max_regression=0.2, min_support=50)
    assert not c.passed and c.detail["metric"] == "mae"
    assert [f["segment"] for f in c.detail["failing"]] == ["b"]
    assert {s["key"]["segment"] for s in [c.detail["worst"], *c.detail["failing"]]} == {"b"}
    rows = check_fairness(group, None, errors[1], task="regression", max_gap=10, min_support=50)
    assert {g["segment"] for g in rows.detail["groups"]} == {"a", "b", "None"}
    assert sum(g["n"] for g in rows.detail["groups"]) == 899
    json.dumps(c.to_dict())


def test_latency_budget() -> None:
    rng = np.random.default_rng(22)
    fast = rng.gamma(2.0, 2.0, 1000)
    slow = fast + 30.0
    assert check_latency(fast, budget_ms=25.0).passed
    c = check_latency(slow, budget_ms=25.0, champion_ms=fast)
    assert not c.passed and c.value == pytest.approx(np.quantile(slow, 0.95))
    assert c.detail["champion"] == pytest.approx(np.quantile(fast, 0.95))
    assert c.detail["quantile"] == 0.95 and c.detail["n"] == 1000
    c = check_latency(np.r_[fast, np.nan], budget_ms=25.0, quantile=0.5)
    assert c.passed and c.value == pytest.approx(np.median(fast))
    empty = check_latency([], budget_ms=25.0)
    assert not empty.passed and empty.detail["reason"] == "no samples"


def test_unfair_gap_fails() -> None:
    rng = np.random.default_rng(23)
    n = 4000
    group = np.repeat(["a", "b"], n // 2)
    y = rng.integers(0, 2, n)
    champion = row_outcomes(y, classified(rng, y, 0.8), task="binary")
    unfair = row_outcomes(y, classified(rng, y, np.where(group == "a", 0.95, 0.7)), task="binary")
    fair = row_outcomes(y, classified(rng, y, 0.85), task="binary")
    c = check_fairness(group, champion, unfair, task="binary", max_gap=0.1)
    assert not c.passed and c.value == pytest.approx(0.25, abs=0.03)
    assert (c.detail["best"], c.detail["worst"]) == ("a", "b")
    assert c.detail["champion_gap"] < 0.05
    assert check_fairness(group, champion, fair, task="binary", max_gap=0.1).passed
    # Regression: errors, lower is better, so the worst group has the largest mean.
    errors = np.where(group == "a", 1.0, 3.0)
    c = check_fairness(group, None, errors, task="regression", max_gap=1.0)
    assert not c.passed and c.value == 2.0 and c.detail["worst"] == "b"
    assert "champion_gap" not in c.detail
    single = check_fairness(group, None, errors, task="regression", max_gap=1.0, min_support=3000)
    assert single.passed and single.value is None


def test_decision_combines_checks() -> None:
    passing = Check("improvement", True, 0.02, 0.0, {"p_value": 0.01})
    failing = Check("latency", False, 40.0, 25.0, {"quantile": 0.95})
    d = decide([passing, failing])
    assert not d.passed and d.failed == ["latency"]
    assert decide([passing]).passed and decide([]).passed
    payload = json.loads(json.dumps(d.to_dict()))
    assert payload["failed"] == ["latency"]
    assert payload["checks"][1] == {
        "name": "latency",
        "passed": False,
        "value": 40.0,
        "threshold": 25.0,
        "detail": {"quantile": 0.95},
    }


def test_full_gate_reports_are_json_ready() -> None:
    rng = np.random.default_rng(24)
    y = rng.integers(0, 2, 2000)
    group = rng.choice(np.array(["x", "y"]), 2000)
    champion, candidate = classified(rng, y, 0.8), classified(rng, y, 0.9)
    outcomes = [row_outcomes(y, p, task="binary") for p in (champion, candidate)]
    d = decide(
        [
            check_improvement(y, champion, candidate, task="binary"),
            check_segments(group, *outcomes, task="binary", max_regression=0.02),
            check_latency(rng.random(100) * 5, budget_ms=10.0),
            check_fairness(group, *outcomes, task="binary", max_gap=0.1),
        ]
    )
    assert d.passed, d.to_dict()
    json.dumps(d.to_dict())


@pytest.mark.parametrize("module", [significance, checks_module])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0
