"""Reference profiles: serialisation, default methods and grid approximations vs SciPy."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from scipy import stats

from feedback_loop.stats.drift.categorical import chi_square_test
from feedback_loop.stats.drift.profile import (
    LARGE_SAMPLE,
    CategoricalProfile,
    NumericProfile,
    build_profile,
    compare,
    compare_many,
    default_method,
    infer_kind,
    profile_from_dict,
)
from feedback_loop.stats.drift.univariate import (
    ks_test,
    numeric_jensen_shannon,
    numeric_psi,
)


def _numeric(values: Any, **kwargs: Any) -> NumericProfile:
    profile = build_profile(np.asarray(values, dtype=float), **kwargs)
    assert isinstance(profile, NumericProfile)
    return profile


def _categorical(values: Any, **kwargs: Any) -> CategoricalProfile:
    profile = build_profile(values, "categorical", **kwargs)
    assert isinstance(profile, CategoricalProfile)
    return profile


def _en(n: int, m: int) -> float:
    return float(np.round(n * m / (n + m)))


# --- building and serialising -------------------------------------------------------------


def test_kind_is_inferred_from_dtype() -> None:
    assert infer_kind(np.array([1.0, 2.0])) == "numeric"
    assert infer_kind(np.array([1, 2], dtype=np.int32)) == "numeric"
    assert infer_kind(np.array(["a"])) == "categorical"
    assert infer_kind(np.array(["a", None], dtype=object)) == "categorical"
    assert infer_kind(np.array([True])) == "categorical"
    with pytest.raises(TypeError):
        infer_kind(np.array(["2024-01-01"], dtype="datetime64[D]"))
    assert isinstance(build_profile(np.array([3, 1, 2])), NumericProfile)
    assert isinstance(build_profile(np.array([3, 1, 2]), "categorical"), CategoricalProfile)


def test_numeric_profile_summary_matches_the_data() -> None:
    rng = np.random.default_rng(0)
    values = rng.lognormal(size=30_000)
    profile = _numeric(np.concatenate([values, [np.nan] * 4]))
    assert profile.n == values.size and profile.missing == 4
    assert profile.mean == pytest.approx(values.mean())
    assert profile.std == pytest.approx(values.std())
    assert (profile.min, profile.max) == (values.min(), values.max())
    assert profile.bin_counts.sum() == values.size
    assert np.all(np.abs(profile.bin_counts - values.size / 10) <= 1)
    assert profile.grid[0] == values.min() and profile.grid[-1] == values.max()
    assert profile.grid.size == 2049
    assert profile.sample.size == 5_000 and not profile.is_exact
    assert np.isin(profile.sample, values).all()
    again = _numeric(values)
    np.testing.assert_array_equal(profile.sample, again.sample)  # seeded
    assert not profile.sample.flags.writeable


def test_numeric_profile_round_trips_through_json() -> None:
    rng = np.random.default_rng(1)
    profile = _numeric(rng.normal(size=20_000))
    text = json.dumps(profile.to_dict())
    restored = profile_from_dict(json.loads(text))
    assert isinstance(restored, NumericProfile)
    assert restored.to_dict() == profile.to_dict()
    for name in ("bin_edges", "grid", "sample", "bin_counts", "grid_count_le", "grid_count_lt"):
        np.testing.assert_array_equal(getattr(restored, name), getattr(profile, name))
    current = rng.normal(0.1, size=3_000)
    assert compare(restored, current) == compare(profile, current)


@pytest.mark.parametrize(
    "values",
    [
        np.array(["b", "a", "b", "c", None], dtype=object),
        np.array([7, 3, 7, 7]),
        np.array([True, False, False]),
    ],
)
def test_categorical_profile_round_trips_through_json(values: np.ndarray) -> None:
    profile = _categorical(values)
    restored = profile_from_dict(json.loads(json.dumps(profile.to_dict())))
    assert restored == profile
    assert isinstance(restored, CategoricalProfile)
    assert [type(label) for label in restored.labels] == [type(label) for label in profile.labels]


def test_categorical_profile_keeps_top_k_and_an_other_bucket() -> None:
    values = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 15 + ["d"] * 5 + [None] * 3, dtype=object)
    profile = _categorical(values, max_categories=2)
    assert profile.labels == ("a", "b") and profile.counts == (50, 30)
    assert profile.other == 20 and profile.missing == 3 and profile.n == 100


def test_from_dict_rejects_other_kinds_and_versions() -> None:
    data = _numeric([1.0, 2.0, 3.0]).to_dict()
    with pytest.raises(ValueError):
        CategoricalProfile.from_dict(data)
    with pytest.raises(ValueError):
        NumericProfile.from_dict({**data, "version": 99})
    with pytest.raises(ValueError):
        profile_from_dict({**data, "kind": "image"})
    with pytest.raises(ValueError):
        NumericProfile.from_dict({**data, "bin_counts": [1, 1]})


@pytest.mark.parametrize(
    "values", [[], [np.nan, np.inf], np.array([None, None], dtype=object), np.ones((2, 2))]
)
def test_build_profile_rejects_empty_or_malformed_input(values: Any) -> None:
    with pytest.raises(ValueError):
        build_profile(np.asarray(values))


def test_build_profile_rejects_bad_options() -> None:
    with pytest.raises(ValueError):
        build_profile(np.array([1.0, 2.0]), "text")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        build_profile(np.array([1.0, 2.0]), grid_size=1)
    with pytest.raises(ValueError):
        build_profile(np.array(["a"]), max_categories=0)
    with pytest.raises(TypeError):
        build_profile(np.array([(1, 2), (3,)], dtype=object), "categorical")


# --- default methods and verdicts ------------------------------------------------------------


def test_default_method_is_calibrated_unless_the_size_rule_is_asked_for() -> None:
    assert default_method("numeric", 1_000_000, 1_000_000) == "calibrated"
    assert default_method("categorical", 500, 500) == "calibrated"
    assert default_method("numeric", 1_000_000, 1_000_000, LARGE_SAMPLE) == "psi"
    assert default_method("numeric", 1_000_000, 10_000, LARGE_SAMPLE) == "ks"
    assert default_method("numeric", 5_000, 1_000_000, LARGE_SAMPLE) == "ks"
    assert default_method("categorical", 20_000, 20_000, LARGE_SAMPLE) == "psi"
    assert default_method("categorical", 20_000, 500, LARGE_SAMPLE) == "chi_square"
    assert default_method("numeric", 600, 600, large_sample=500) == "psi"


def test_numeric_size_rule_flags_shift_and_accepts_same_distribution() -> None:
    rng = np.random.default_rng(2)
    profile = _numeric(rng.normal(size=60_000))
    rule = {"large_sample": LARGE_SAMPLE}
    large_same = compare(profile, rng.normal(size=60_000), **rule)
    large_shift = compare(profile, rng.normal(0.7, size=60_000), **rule)
    assert large_same.method == large_shift.method == "psi"
    assert not large_same.drifted and large_shift.drifted
    small_shift = compare(profile, rng.normal(0.5, size=800), **rule)
    assert small_shift.method == "ks" and small_shift.drifted
    small_same = compare(profile, rng.permutation(profile.sample)[:800], **rule)
    assert small_same.method == "ks" and not small_same.drifted


def test_categorical_size_rule_flags_shift_and_accepts_same_distribution() -> None:
    rng = np.random.default_rng(3)
    labels = np.array(["x", "y", "z"], dtype=object)
    profile = _categorical(rng.choice(labels, size=50_000, p=[0.5, 0.3, 0.2]))
    for size, method in ((50_000, "psi"), (2_000, "chi_square")):
        same_rows = rng.choice(labels, size=size, p=[0.5, 0.3, 0.2])
        moved_rows = rng.choice(labels, size=size, p=[0.2, 0.3, 0.5])
        same = compare(profile, same_rows, large_sample=LARGE_SAMPLE)
        moved = compare(profile, moved_rows, large_sample=LARGE_SAMPLE)
        assert same.method == moved.method == method
        assert not same.drifted and moved.drifted


def test_thresholds_override_defaults() -> None:
    rng = np.random.default_rng(4)
    profile = _numeric(rng.normal(size=30_000))
    current = rng.normal(0.05, size=30_000)
    rule = {"large_sample": LARGE_SAMPLE}
    default = compare(profile, current, **rule)
    assert default.threshold == 0.2 and not default.drifted
    strict = compare(profile, current, threshold=0.0, **rule)
    assert strict.statistic == default.statistic and strict.drifted == (strict.statistic > 0)
    mapped = compare(profile, current, thresholds={"psi": default.statistic / 2}, **rule)
    assert mapped.threshold == default.statistic / 2 and mapped.drifted
    loose_alpha = compare(profile, current[:500], alpha=0.999, **rule)
    assert loose_alpha.method == "ks" and loose_alpha.p_value is not None
    assert loose_alpha.threshold == 0.999 and loose_alpha.drifted == (loose_alpha.p_value < 0.999)


# --- numeric: binned methods are exact ---------------------------------------------------------


@pytest.mark.parametrize("method", ["psi", "jensen_shannon"])
def test_binned_methods_equal_the_raw_array_versions(method: str) -> None:
    rng = np.random.default_rng(5)
    ref = np.round(rng.gamma(2.0, size=40_000), 1)  # ties on the bin edges
    cur = np.round(rng.gamma(2.3, size=25_000), 1)
    raw = numeric_psi(ref, cur) if method == "psi" else numeric_jensen_shannon(ref, cur)
    via_profile = compare(_numeric(ref), cur, method)
    assert via_profile.statistic == pytest.approx(raw.statistic, rel=1e-12, abs=1e-15)
    assert via_profile.drifted == raw.drifted


# --- numeric: grid approximations against SciPy ------------------------------------------------


REFERENCES = {
    "normal": lambda rng: rng.normal(size=60_000),
    "lognormal": lambda rng: rng.lognormal(sigma=1.0, size=60_000),
    "discrete": lambda rng: rng.poisson(4.0, size=60_000).astype(float),
}
CURRENTS = {
    "normal": lambda rng, m: rng.normal(0.05, 1.1, size=m),
    "lognormal": lambda rng, m: rng.lognormal(0.1, 1.0, size=m),
    "discrete": lambda rng, m: rng.poisson(4.2, size=m).astype(float),
}


@pytest.mark.parametrize("shape", list(REFERENCES))
@pytest.mark.parametrize("m", [300, 4_000, 40_000])
def test_grid_ks_is_within_the_documented_bound(shape: str, m: int) -> None:
    rng = np.random.default_rng(m)
    ref, cur = REFERENCES[shape](rng), CURRENTS[shape](rng, m)
    profile = _numeric(ref)
    bound = profile.ks_error_bound
    assert 0.0 < bound <= 1 / 2048 + 1 / ref.size + 1e-12
    exact = stats.ks_2samp(ref, cur)
    result = compare(profile, cur, "ks")
    assert exact.statistic - bound - 1e-12 <= result.statistic <= exact.statistic + 1e-12
    en = _en(ref.size, m)
    assert result.p_value is not None
    assert stats.kstwo.sf(exact.statistic, en) - 1e-12 <= result.p_value
    assert result.p_value <= stats.kstwo.sf(exact.statistic - bound, en) + 1e-12


@pytest.mark.parametrize("shape", ["normal", "lognormal"])
@pytest.mark.parametrize("m", [300, 4_000])
def test_grid_cramer_von_mises_is_within_the_documented_bound(shape: str, m: int) -> None:
    rng = np.random.default_rng(m + 1)
    ref, cur = REFERENCES[shape](rng), CURRENTS[shape](rng, m)
    profile = _numeric(ref)
    exact = stats.cramervonmises_2samp(ref, cur)
    result = compare(profile, cur, "cramer_von_mises")
    d_hat = compare(profile, cur, "ks").statistic
    eps = profile.ks_error_bound
    bound = ref.size * m / (ref.size + m) * eps * (6 * d_hat + 7 * eps)
    assert abs(result.statistic - exact.statistic) <= bound
    assert result.p_value == pytest.approx(exact.pvalue, abs=0.02)


@pytest.mark.parametrize("shape", list(REFERENCES))
@pytest.mark.parametrize("m", [300, 40_000])
def test_grid_wasserstein_is_within_the_documented_bound(shape: str, m: int) -> None:
    rng = np.random.default_rng(m + 2)
    ref, cur = REFERENCES[shape](rng), CURRENTS[shape](rng, m)
    profile = _numeric(ref)
    exact = stats.wasserstein_distance(ref, cur) / np.std(ref)
    result = compare(profile, cur, "wasserstein")
    assert abs(result.statistic - exact) <= profile.wasserstein_error_bound + 1e-12
    assert profile.wasserstein_error_bound < 0.05


@pytest.mark.parametrize("method", ["ks", "cramer_von_mises", "wasserstein"])
def test_small_reference_is_compared_exactly(method: str) -> None:
    rng = np.random.default_rng(6)
    ref, cur = rng.normal(size=3_000), rng.normal(0.1, size=700)
    profile = _numeric(ref)
    assert profile.is_exact and profile.ks_error_bound == 0.0
    result = compare(profile, cur, method)
    if method == "ks":
        expected = stats.ks_2samp(ref, cur)
        assert (result.statistic, result.p_value) == pytest.approx(
            (expected.statistic, expected.pvalue), rel=1e-12
        )
    elif method == "cramer_von_mises":
        cvm = stats.cramervonmises_2samp(ref, cur)
        assert (result.statistic, result.p_value) == pytest.approx(
            (cvm.statistic, cvm.pvalue), rel=1e-9
        )
    else:
        expected_w = stats.wasserstein_distance(ref, cur) / np.std(ref)
        assert result.statistic == pytest.approx(expected_w, rel=1e-9)


def test_grid_methods_flag_a_shift() -> None:
    rng = np.random.default_rng(7)
    profile = _numeric(rng.normal(size=50_000))
    current = rng.normal(0.3, size=2_000)
    for method in ("ks", "cramer_von_mises", "wasserstein"):
        assert compare(profile, current, method).drifted


# --- missing values and validation ------------------------------------------------------------


def test_missing_values_are_counted_on_both_sides() -> None:
    rng = np.random.default_rng(8)
    ref = np.concatenate([rng.normal(size=2_000), [np.nan] * 5])
    cur = np.concatenate([rng.normal(size=900), [np.nan, np.inf]])
    result = compare(_numeric(ref), cur, "ks")
    assert (result.missing_reference, result.missing_current) == (5, 2)
    calibrated = compare(_numeric(ref), cur)
    assert (calibrated.missing_reference, calibrated.missing_current) == (5, 2)
    assert (calibrated.n_reference, calibrated.n_current) == (2_000, 900)
    assert result.n_current == 900
    expected = ks_test(ref, cur)
    assert result.statistic == expected.statistic and result.p_value == expected.p_value

    cats = _categorical(np.array(["a", "b", None, "a"], dtype=object))
    res = compare(cats, np.array([None, "a", "b", float("nan")], dtype=object))
    assert (res.missing_reference, res.missing_current) == (1, 2)


def test_compare_rejects_bad_requests() -> None:
    numeric = _numeric(np.arange(100.0))
    categorical = _categorical(np.array(["a", "b"]))
    with pytest.raises(ValueError):
        compare(numeric, [])
    with pytest.raises(ValueError):
        compare(numeric, [np.nan])
    with pytest.raises(ValueError):
        compare(numeric, [1.0, 2.0], "chi_square")
    with pytest.raises(ValueError):
        compare(categorical, ["a"], "ks")
    with pytest.raises(ValueError):
        compare(categorical, np.array([None], dtype=object))
    with pytest.raises(TypeError):
        compare(numeric, np.array(["a", "b"]))
    with pytest.raises(TypeError):
        compare({"kind": "numeric"}, [1.0])  # type: ignore[arg-type]


# --- categorical profiles --------------------------------------------------------------------


def test_categorical_profile_matches_raw_chi_square_with_unseen_categories() -> None:
    ref = np.array(["a"] * 60 + ["b"] * 30 + ["c"] * 10, dtype=object)
    cur = np.array(["a"] * 40 + ["b"] * 35 + ["new"] * 25, dtype=object)
    via_profile = compare(_categorical(ref), cur, "chi_square")
    raw = chi_square_test(ref, cur)
    assert via_profile.statistic == pytest.approx(raw.statistic, rel=1e-12)
    assert via_profile.p_value == pytest.approx(raw.p_value, rel=1e-12)
    expected = stats.chi2_contingency([[60, 30, 10, 0], [40, 35, 0, 25]])
    assert via_profile.statistic == pytest.approx(expected.statistic, rel=1e-9)


def test_truncated_profile_pools_unknown_categories_into_other() -> None:
    ref = np.array(["a"] * 60 + ["b"] * 30 + ["c"] * 6 + ["d"] * 4, dtype=object)
    cur = np.array(["a"] * 50 + ["b"] * 30 + ["d"] * 5 + ["new"] * 15, dtype=object)
    profile = _categorical(ref, max_categories=2)
    result = compare(profile, cur, "chi_square")
    expected = stats.chi2_contingency([[60, 30, 10], [50, 30, 20]])
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)


@pytest.mark.parametrize("method", ["psi", "jensen_shannon", "linf"])
def test_categorical_distances_via_profile(method: str) -> None:
    ref = np.array([1] * 70 + [2] * 30)
    cur = np.array([1] * 30 + [2] * 30 + [3] * 40)
    result = compare(_categorical(ref), cur, method)
    assert result.method == method and result.p_value is None and result.drifted
    same = compare(_categorical(ref), np.array([1] * 7 + [2] * 3), method)
    assert same.statistic == pytest.approx(0.0, abs=1e-12) and not same.drifted


# --- many columns ------------------------------------------------------------------------------


def test_compare_many_equals_column_by_column() -> None:
    rng = np.random.default_rng(9)
    reference = {
        "x": rng.normal(size=20_000),
        "y": rng.exponential(size=20_000),
        "c": rng.choice(np.array(["u", "v"], dtype=object), size=20_000),
    }
    current = {
        "x": rng.normal(1.0, size=15_000),
        "y": rng.exponential(size=15_000),
        "c": rng.choice(np.array(["u", "v"], dtype=object), size=15_000),
        "unprofiled": np.zeros(3),
    }
    profiles = {name: build_profile(col) for name, col in reference.items()}
    sequential = compare_many(profiles, current)
    assert set(sequential) == set(profiles)
    for name, profile in profiles.items():
        # the family-wise 1% is split over the three columns
        assert sequential[name] == compare(profile, current[name], alpha=0.01 / 3)
    assert sequential["x"].drifted and not sequential["y"].drifted
    custom = compare_many(
        profiles,
        current,
        methods={"y": "ks"},
        thresholds={"psi": 1e-9},
        large_sample=LARGE_SAMPLE,
    )
    assert custom["y"].method == "ks" and custom["c"].threshold == 1e-9
    with pytest.raises(KeyError):
        compare_many(profiles, {"x": current["x"]})
