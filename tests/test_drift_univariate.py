"""Per-feature drift statistics checked against SciPy on the same inputs."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from feedback_loop.stats.drift.categorical import (
    DEFAULT_EPSILON,
    align_counts,
    categorical_jensen_shannon,
    categorical_psi,
    chi_square_from_counts,
    chi_square_test,
    compare_counts,
    count_categories,
    jensen_shannon_from_counts,
    linf_distance,
    linf_from_counts,
    psi_from_counts,
)
from feedback_loop.stats.drift.correction import (
    adjust,
    benjamini_hochberg,
    bonferroni,
    dataset_drift,
)
from feedback_loop.stats.drift.result import DriftResult
from feedback_loop.stats.drift.univariate import (
    bin_counts,
    clean_numeric,
    cramer_von_mises_pvalue,
    cramer_von_mises_statistic,
    cramer_von_mises_test,
    ks_test,
    normalized_wasserstein,
    numeric_jensen_shannon,
    numeric_psi,
    quantile_edges,
)


def _smoothed(counts: np.ndarray, eps: float) -> np.ndarray:
    share = np.maximum(counts / counts.sum(), eps)
    return share / share.sum()


# --- result -------------------------------------------------------------------------------


def test_result_verdict_rules() -> None:
    assert DriftResult.from_p_value("ks", 0.2, 0.049, 0.05).drifted
    assert not DriftResult.from_p_value("ks", 0.2, 0.05, 0.05).drifted
    assert DriftResult.from_distance("psi", 0.21, 0.2).drifted
    assert not DriftResult.from_distance("psi", 0.2, 0.2).drifted
    assert DriftResult.from_distance("psi", 0.2, 0.2).p_value is None


def test_result_round_trips_through_json() -> None:
    result = DriftResult.from_p_value(
        "chi_square", 3.5, 0.17, 0.05, n_reference=10, n_current=12, missing_current=2
    )
    restored = DriftResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert restored == result


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1])
def test_result_rejects_bad_alpha(alpha: float) -> None:
    with pytest.raises(ValueError):
        DriftResult.from_p_value("ks", 0.1, 0.5, alpha)


def test_result_rejects_bad_p_value_and_threshold() -> None:
    with pytest.raises(ValueError):
        DriftResult.from_p_value("ks", 0.1, 1.5, 0.05)
    with pytest.raises(ValueError):
        DriftResult.from_distance("psi", 0.1, -1.0)


# --- numerical: agreement with SciPy --------------------------------------------------------


@pytest.mark.parametrize(("n", "m"), [(40, 25), (800, 1_200), (15_000, 12_000)])
def test_ks_matches_scipy(n: int, m: int) -> None:
    rng = np.random.default_rng(n)
    ref, cur = rng.normal(size=n), rng.normal(0.1, 1.2, size=m)
    expected = stats.ks_2samp(ref, cur)
    result = ks_test(ref, cur)
    assert result.method == "ks"
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-15)
    assert (result.n_reference, result.n_current) == (n, m)


@pytest.mark.parametrize(("n", "m"), [(7, 6), (15, 20), (120, 80), (3_000, 2_000)])
def test_cramer_von_mises_matches_scipy(n: int, m: int) -> None:
    rng = np.random.default_rng(m)
    ref, cur = rng.normal(size=n), rng.standard_t(3, size=m)
    expected = stats.cramervonmises_2samp(ref, cur)
    result = cramer_von_mises_test(ref, cur)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-12)


def test_cramer_von_mises_statistic_uses_midranks_for_ties() -> None:
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 6, size=300).astype(float)
    cur = rng.integers(0, 7, size=250).astype(float)
    expected = stats.cramervonmises_2samp(ref, cur)
    assert cramer_von_mises_statistic(ref, cur) == pytest.approx(expected.statistic, rel=1e-9)


@pytest.mark.parametrize("shift", [0.0, 0.1, 0.3, 0.8])
def test_cramer_von_mises_asymptotic_pvalue_matches_scipy(shift: float) -> None:
    rng = np.random.default_rng(11)
    ref, cur = rng.normal(size=400), rng.normal(shift, size=300)
    expected = stats.cramervonmises_2samp(ref, cur, method="asymptotic")
    p = cramer_von_mises_pvalue(expected.statistic, 400, 300)
    # SciPy stops its series once terms fall below 1e-7, so only compare the far tail loosely.
    assert p == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-8)
    assert 0.0 <= p <= 1.0


@pytest.mark.parametrize(("n", "m"), [(50, 70), (5_000, 3_000)])
def test_wasserstein_is_scipy_distance_over_reference_std(n: int, m: int) -> None:
    rng = np.random.default_rng(n + m)
    ref, cur = rng.gamma(2.0, 3.0, size=n), rng.gamma(2.5, 3.0, size=m)
    expected = stats.wasserstein_distance(ref, cur) / np.std(ref)
    result = normalized_wasserstein(ref, cur)
    assert result.statistic == pytest.approx(expected, rel=1e-9)
    assert result.p_value is None
    assert result.threshold == 0.1


def test_wasserstein_of_constant_reference() -> None:
    assert normalized_wasserstein([2.0] * 5, [2.0] * 3).statistic == 0.0
    moved = normalized_wasserstein([2.0] * 5, [2.0, 2.5])
    assert math.isinf(moved.statistic) and moved.drifted


def test_numeric_psi_is_symmetric_kl_on_decile_bins() -> None:
    rng = np.random.default_rng(5)
    ref, cur = rng.normal(size=4_000), rng.normal(0.4, 1.3, size=3_000)
    edges = np.quantile(ref, np.arange(1, 10) / 10)
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=10)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=10)
    p, q = _smoothed(ref_counts, DEFAULT_EPSILON), _smoothed(cur_counts, DEFAULT_EPSILON)
    expected = stats.entropy(q, p) + stats.entropy(p, q)
    result = numeric_psi(ref, cur)
    assert result.statistic == pytest.approx(expected, rel=1e-9)
    assert result.drifted == (expected > 0.2)


def test_numeric_jensen_shannon_matches_scipy_on_decile_bins() -> None:
    rng = np.random.default_rng(6)
    ref, cur = rng.exponential(size=3_000), rng.exponential(1.4, size=2_000)
    edges = np.quantile(ref, np.arange(1, 10) / 10)
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=10)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=10)
    expected = distance.jensenshannon(ref_counts, cur_counts, base=2)
    assert numeric_jensen_shannon(ref, cur).statistic == pytest.approx(expected, rel=1e-9)


def test_bin_counts_agrees_with_searchsorted_on_both_paths() -> None:
    rng = np.random.default_rng(8)
    values = rng.normal(size=200_003)
    for n_edges in (9, 100):
        edges = np.sort(rng.normal(size=n_edges))
        expected = np.bincount(np.searchsorted(edges, values, side="right"), minlength=n_edges + 1)
        np.testing.assert_array_equal(bin_counts(values, edges), expected)


def test_quantile_edges_merge_ties() -> None:
    values = np.array([0.0] * 80 + list(range(1, 21)), dtype=float)
    edges = quantile_edges(values)
    assert np.all(np.diff(edges) > 0)
    assert edges[0] == 0.0


# --- numerical: verdicts ----------------------------------------------------------------------


Check = Callable[..., DriftResult]
NUMERIC_CHECKS: list[Check] = [ks_test, cramer_von_mises_test, normalized_wasserstein, numeric_psi]


@pytest.mark.parametrize("check", NUMERIC_CHECKS)
def test_numeric_checks_flag_a_clear_shift(check: Check) -> None:
    rng = np.random.default_rng(21)
    assert check(rng.normal(size=3_000), rng.normal(1.0, size=3_000)).drifted


@pytest.mark.parametrize("check", NUMERIC_CHECKS)
def test_numeric_checks_accept_a_permuted_reference(check: Check) -> None:
    rng = np.random.default_rng(22)
    ref = rng.normal(size=3_000)
    result = check(ref, rng.permutation(ref))
    assert not result.drifted
    assert result.statistic <= 1e-12 or result.p_value == pytest.approx(1.0)


@pytest.mark.parametrize("check", [normalized_wasserstein, numeric_psi, numeric_jensen_shannon])
def test_numeric_distances_stay_low_on_same_distribution(check: Check) -> None:
    rng = np.random.default_rng(23)
    result = check(rng.normal(size=20_000), rng.normal(size=20_000))
    assert result.p_value is None
    assert result.statistic < result.threshold / 2


# --- numerical: validation and missing values ------------------------------------------------


def test_nan_and_infinities_are_dropped_and_counted() -> None:
    rng = np.random.default_rng(9)
    ref, cur = rng.normal(size=500), rng.normal(size=400)
    dirty_cur = np.concatenate([cur, [np.nan, np.inf, -np.inf]])
    dirty_ref = np.concatenate([[np.nan], ref])
    clean = ks_test(ref, cur)
    dirty = ks_test(dirty_ref, dirty_cur)
    assert dirty.statistic == clean.statistic and dirty.p_value == clean.p_value
    assert (dirty.missing_reference, dirty.missing_current) == (1, 3)
    assert (dirty.n_reference, dirty.n_current) == (500, 400)
    values, dropped = clean_numeric(dirty_cur)
    assert dropped == 3 and values.size == 400


@pytest.mark.parametrize("check", [*NUMERIC_CHECKS, numeric_jensen_shannon])
@pytest.mark.parametrize("bad", [[], [np.nan, np.nan]])
def test_numeric_checks_reject_empty_input(check: Check, bad: list[float]) -> None:
    with pytest.raises(ValueError):
        check([1.0, 2.0, 3.0], bad)
    with pytest.raises(ValueError):
        check(bad, [1.0, 2.0, 3.0])


def test_numeric_checks_reject_wrong_shapes_and_types() -> None:
    with pytest.raises(ValueError):
        ks_test(np.ones((3, 2)), [1.0])
    with pytest.raises(TypeError):
        ks_test(np.array(["a", "b"]), [1.0])
    with pytest.raises(ValueError):
        cramer_von_mises_test([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        numeric_psi([1.0, 2.0], [1.0], bins=1)


# --- categorical ------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 6])
def test_chi_square_matches_scipy_contingency(k: int) -> None:
    rng = np.random.default_rng(k)
    labels = np.array([f"c{i}" for i in range(k)])
    ref = rng.choice(labels, size=600)
    cur = rng.choice(labels, size=450, p=np.linspace(1, 2, k) / np.linspace(1, 2, k).sum())
    table = np.array(
        [[np.count_nonzero(ref == c) for c in labels], [np.count_nonzero(cur == c) for c in labels]]
    )
    expected = stats.chi2_contingency(table)  # default: Yates only when dof == 1
    result = chi_square_test(ref, cur)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    uncorrected = stats.chi2_contingency(table, correction=False)
    stat, p = chi_square_from_counts(table[0], table[1], correction=False)
    assert stat == pytest.approx(uncorrected.statistic, rel=1e-9)
    assert p == pytest.approx(uncorrected.pvalue, rel=1e-9)


def test_chi_square_with_unseen_categories_on_both_sides() -> None:
    ref = ["a"] * 40 + ["b"] * 30 + ["only_ref"] * 5
    cur = ["a"] * 35 + ["b"] * 25 + ["only_cur"] * 8
    expected = stats.chi2_contingency([[40, 30, 5, 0], [35, 25, 0, 8]])
    result = chi_square_test(ref, cur)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.drifted


def test_chi_square_drops_cells_empty_on_both_sides() -> None:
    stat, p = chi_square_from_counts([10, 0, 20, 5], [12, 0, 18, 9])
    expected = stats.chi2_contingency([[10, 20, 5], [12, 18, 9]])
    assert (stat, p) == pytest.approx((expected.statistic, expected.pvalue), rel=1e-9)
    assert chi_square_from_counts([7, 0], [3, 0]) == (0.0, 1.0)


def test_categorical_distances_match_scipy_formulas() -> None:
    ref = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    cur = ["a"] * 20 + ["b"] * 30 + ["d"] * 50
    ref_counts = np.array([50, 30, 20, 0])
    cur_counts = np.array([20, 30, 0, 50])
    js = distance.jensenshannon(ref_counts, cur_counts, base=2)
    assert categorical_jensen_shannon(ref, cur).statistic == pytest.approx(js, rel=1e-9)
    p, q = _smoothed(ref_counts, DEFAULT_EPSILON), _smoothed(cur_counts, DEFAULT_EPSILON)
    psi = stats.entropy(q, p) + stats.entropy(p, q)
    assert categorical_psi(ref, cur).statistic == pytest.approx(psi, rel=1e-9)
    linf = distance.chebyshev(ref_counts / 100, cur_counts / 100)
    assert linf_distance(ref, cur).statistic == pytest.approx(linf, rel=1e-12)
    assert all(f(ref, cur).drifted for f in (categorical_psi, categorical_jensen_shannon))


def test_psi_smoothing_keeps_a_new_category_finite() -> None:
    value = psi_from_counts([100, 0], [95, 5])
    assert math.isfinite(value)
    smaller_eps = psi_from_counts([100, 0], [95, 5], epsilon=1e-6)
    assert smaller_eps > value  # the floor, not the data, bounds the new-category term


@pytest.mark.parametrize(
    "values",
    [
        np.array(["x", "y", "x", "z", "x"]),
        np.array(["x", "y", "x", None, "z", "x", float("nan")], dtype=object),
        np.array([3, 1, 3, 3, 2]),
        np.array([True, False, True]),
        np.array([1.5, np.nan, 1.5, 2.5]),
    ],
)
def test_count_categories_matches_a_python_count(values: np.ndarray) -> None:
    present = [v for v in values.tolist() if v is not None and v == v]
    expected = {v: present.count(v) for v in set(present)}
    counted = count_categories(values)
    assert counted.as_dict() == expected
    assert counted.missing == len(values) - len(present)


def test_count_categories_merges_chunks() -> None:
    rng = np.random.default_rng(4)
    values = rng.choice(np.array(["p", "q", "r", None], dtype=object), size=150_001)
    counted = count_categories(values)
    for label in ("p", "q", "r"):
        assert counted.as_dict()[label] == int(np.sum(values == label))
    assert counted.missing == sum(v is None for v in values)


def test_align_counts_puts_unseen_categories_last() -> None:
    labels, ref, cur = align_counts(count_categories(["b", "a", "b"]), count_categories(["c", "b"]))
    assert labels[-1] == "c"
    assert dict(zip(labels, ref.tolist(), strict=True)) == {"a": 1, "b": 2, "c": 0}
    assert dict(zip(labels, cur.tolist(), strict=True)) == {"a": 0, "b": 1, "c": 1}


def test_categorical_missing_values_are_counted_not_compared() -> None:
    ref = np.array(["a", "b"] * 50, dtype=object)
    cur = np.array(["a", "b"] * 50 + [None] * 7, dtype=object)
    result = chi_square_test(ref, cur)
    assert result.missing_current == 7 and result.n_current == 100
    assert result.statistic == 0.0


def test_categorical_checks_reject_empty_input() -> None:
    with pytest.raises(ValueError):
        chi_square_test(["a"], [])
    with pytest.raises(ValueError):
        linf_distance(np.array([None, None], dtype=object), ["a"])
    with pytest.raises(ValueError):
        psi_from_counts([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        jensen_shannon_from_counts([0, 0], [1, 2])
    with pytest.raises(ValueError):
        linf_from_counts([-1, 2], [1, 2])
    with pytest.raises(ValueError):
        compare_counts("nope", [1], [1])


def test_categorical_checks_flag_shift_and_accept_same_shares() -> None:
    ref = ["a"] * 600 + ["b"] * 300 + ["c"] * 100
    same = ["a"] * 300 + ["b"] * 150 + ["c"] * 50
    moved = ["a"] * 150 + ["b"] * 200 + ["c"] * 150
    for check in (chi_square_test, categorical_psi, categorical_jensen_shannon, linf_distance):
        assert not check(ref, same).drifted
        assert check(ref, moved).drifted


# --- multiple testing and the dataset verdict -------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_benjamini_hochberg_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(size=30), rng.uniform(0, 0.01, size=10), [0.02, 0.02, 1.0]])
    rng.shuffle(p)
    np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p), rtol=1e-12)


def test_bonferroni_scales_and_caps() -> None:
    p = np.array([0.001, 0.02, 0.3, 0.9])
    np.testing.assert_allclose(bonferroni(p), np.minimum(p * 4, 1.0))
    np.testing.assert_array_equal(adjust(p, "none"), p)
    with pytest.raises(ValueError):
        bonferroni([0.1, np.nan])
    with pytest.raises(ValueError):
        adjust(p, "holm")  # type: ignore[arg-type]


def test_dataset_drift_share_and_correction() -> None:
    tests = {
        f"t{i}": DriftResult.from_p_value("ks", 0.1, p, 0.05)
        for i, p in enumerate([0.001, 0.012, 0.02, 0.04, 0.6, 0.7])
    }
    distances = {"d0": DriftResult.from_distance("psi", 0.3, 0.2)}
    results = {**tests, **distances}
    plain = dataset_drift(results)
    assert plain.n_drifted == 5 and plain.drifted  # 5 of 7 >= 0.5
    assert set(plain.drifted_features) == {"t0", "t1", "t2", "t3", "d0"}

    raw_p = [float(r.p_value or 0.0) for r in tests.values()]
    adjusted_p = bonferroni(raw_p)
    strict = dataset_drift(results, correction="bonferroni")
    assert strict.n_drifted == int(np.sum(adjusted_p < 0.05)) + 1
    assert strict.features["t1"].p_value == pytest.approx(adjusted_p[1])
    assert strict.features["d0"] == distances["d0"]
    assert strict.drifted == (strict.share >= 0.5)
    bh = dataset_drift(results, correction="benjamini_hochberg")
    bh_p = stats.false_discovery_control(raw_p)
    assert bh.n_drifted == int(np.sum(bh_p < 0.05)) + 1
    assert json.loads(json.dumps(bh.to_dict()))["n_drifted"] == bh.n_drifted


def test_dataset_drift_validates_input() -> None:
    with pytest.raises(ValueError):
        dataset_drift({})
    with pytest.raises(ValueError):
        dataset_drift({"a": DriftResult.from_distance("psi", 0.1, 0.2)}, share_threshold=0.0)
