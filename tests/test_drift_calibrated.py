"""The calibrated drift verdict: SciPy agreement, false alarms, detection, natural variation."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from feedback_loop.stats.drift.calibrated import (
    Variation,
    calibrated_chi_square,
    contrasts,
    estimate_variation,
    pool_map,
)
from feedback_loop.stats.drift.profile import (
    CategoricalProfile,
    NumericProfile,
    build_profile,
    compare,
    compare_many,
    profile_from_dict,
)

LEVELS = np.array([f"l{i}" for i in range(8)], dtype=object)
LEVEL_P = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.07, 0.05, 0.03])


def _columns(rng: np.random.Generator, rows: int, mean: float = 0.0) -> dict[str, np.ndarray]:
    return {
        "normal": rng.normal(mean, 1.0, size=rows),
        "skewed": rng.exponential(size=rows),
        "uniform": rng.random(rows),
        "level": rng.choice(LEVELS, size=rows, p=LEVEL_P),
    }


def test_plain_case_matches_scipy_chi2_contingency() -> None:
    rng = np.random.default_rng(0)
    reference = rng.integers(50, 500, size=7)
    current = rng.integers(50, 500, size=7)
    test = calibrated_chi_square(reference, current)
    expected = stats.chi2_contingency(np.vstack([reference, current]), correction=False)
    assert (test.scale, test.dof) == (1.0, 6.0)
    assert test.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert test.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_variation_widens_the_null_distribution() -> None:
    reference, current = np.array([4000, 3000, 3000]), np.array([420, 280, 300])
    plain = calibrated_chi_square(reference, current)
    variation = Variation((100, 400), (0.004, 0.002), (1e-5, 4e-6))
    wide = calibrated_chi_square(reference, current, variation)
    n, m = reference.sum(), current.sum()
    e = m * n / (m + n)
    mean, var = 2 + e * 0.002, 4 + 4 * e * 0.002 + e**2 * 4e-6  # beyond the last size
    assert wide.statistic == plain.statistic and wide.psi == plain.psi
    assert wide.scale == pytest.approx(var / (2 * mean)) and wide.dof == pytest.approx(
        2 * mean**2 / var
    )
    assert wide.p_value == pytest.approx(stats.chi2.sf(plain.statistic / wide.scale, wide.dof))
    assert wide.p_value > plain.p_value
    assert (plain.scale, plain.dof) == (1.0, 2.0)


def test_rare_and_unseen_cells_are_pooled() -> None:
    assert pool_map(np.array([600, 390, 5, 5, 0]), 200).tolist() == [0, 1, 2, 2, 2]
    assert pool_map(np.array([600, 398, 1, 1, 0]), 100).tolist() == [0, 1, 1, 1, 1]
    # one row of a never-seen category in a large window is not drift
    profile = build_profile(
        np.random.default_rng(0).choice(np.array(["a", "b"], dtype=object), 10_000)
    )
    window = np.concatenate([np.repeat(np.array(["a", "b"], dtype=object), 20_000), ["new"]])
    assert not compare(profile, window).drifted
    # but a new category holding a tenth of the window is
    moved = np.concatenate([window, np.repeat(np.array(["new"], dtype=object), 4_000)])
    assert compare(profile, moved).drifted


def test_variation_is_recovered_from_overdispersed_periods() -> None:
    # each period of 500 rows draws its own category shares q from a Dirichlet around p;
    # the per-row divergence sum((q - p)^2 / p) then has mean (k - 1) / (a0 + 1)
    rng = np.random.default_rng(1)
    p, a0, period, periods = np.array([0.4, 0.3, 0.2, 0.1]), 100.0, 500, 400
    shares = rng.dirichlet(p * a0, size=periods)
    cells = np.concatenate([rng.choice(4, size=period, p=s) for s in shares])
    found = estimate_variation(cells, 4, sizes=[50, 100, 250, 500])
    expected = 3 / (a0 + 1)
    for size, mu in zip(found.sizes, found.mean, strict=True):
        assert expected * 0.7 < mu < expected * 1.4, (size, mu, expected)
    iid = estimate_variation(rng.choice(4, size=200_000, p=p), 4)
    # an upper confidence bound: a small chi-square excess at each size
    assert all(mu * size < 4.0 for size, mu in zip(iid.sizes, iid.mean, strict=True))


def test_profiles_keep_their_dispersion_through_json() -> None:
    rng = np.random.default_rng(2)
    numeric = build_profile(rng.normal(size=20_000))
    categorical = build_profile(rng.choice(LEVELS, size=20_000, p=LEVEL_P))
    for profile in (numeric, categorical):
        assert profile.variation is not None and profile.variation.sizes[0] == 50
        again = profile_from_dict(json.loads(json.dumps(profile.to_dict())))
        assert again.variation == profile.variation
        older = profile.to_dict()
        del older["variation"]  # stored before calibration existed: the plain test
        assert profile_from_dict(older).variation is None
    assert build_profile(rng.normal(size=200)).variation is None  # too few rows to chunk
    assert build_profile(rng.normal(size=20_000), calibrate=False).variation is None
    assert isinstance(numeric, NumericProfile) and isinstance(categorical, CategoricalProfile)


@pytest.mark.parametrize("size", [300, 5_000, 60_000])
def test_stationary_windows_rarely_alarm(size: int) -> None:
    rng = np.random.default_rng(size)
    profiles = {name: build_profile(col) for name, col in _columns(rng, 300_000).items()}
    alarms = 0
    for _ in range(40):
        results = compare_many(profiles, _columns(rng, size))
        alarms += any(r.drifted for r in results.values())
        assert all(r.method == "calibrated" for r in results.values())
        assert all(r.threshold == pytest.approx(0.01 / 4) for r in results.values())
    assert alarms <= 2  # family-wise 1% over 40 checks: more than 2 has odds below 1%


def test_moderate_shifts_are_caught_at_large_sizes() -> None:
    rng = np.random.default_rng(3)
    profiles = {name: build_profile(col) for name, col in _columns(rng, 300_000).items()}
    shifted = _columns(rng, 200_000, mean=0.3)  # PSI about 0.09 on deciles
    shifted["level"] = rng.choice(LEVELS, size=200_000, p=LEVEL_P[::-1])
    results = compare_many(profiles, shifted)
    assert {n for n, r in results.items() if r.drifted} == {"normal", "level"}
    assert 0.06 < results["normal"].statistic < 0.12  # the PSI over the test's cells
    small = compare_many(profiles, _columns(rng, 200_000, mean=0.08))  # PSI about 0.006
    assert small["normal"].drifted


def test_natural_variation_is_not_drift_but_a_real_shift_is() -> None:
    # a stream whose days differ: each 200-row day has its own mean, N(0, 0.3)
    rng = np.random.default_rng(4)
    day = 200

    def days(count: int, shift: float = 0.0) -> np.ndarray:
        means = rng.normal(shift, 0.3, size=count)
        return (rng.normal(size=(count, day)) + means[:, None]).ravel()

    reference = days(500)
    calibrated = build_profile(reference)
    plain = build_profile(reference, calibrate=False)
    assert calibrated.variation is not None and calibrated.variation.at(day)[0] > 0.05
    windows = [days(1) for _ in range(60)]
    plain_alarms = sum(compare(plain, w).drifted for w in windows)
    calibrated_alarms = sum(compare(calibrated, w).drifted for w in windows)
    assert plain_alarms >= 10 and calibrated_alarms <= 2
    # a month of days whose level moved by half a standard deviation is still drift
    assert compare(calibrated, days(30, shift=0.5)).drifted
    assert not compare(calibrated, days(30)).drifted


def test_a_tiny_window_far_outside_the_reference_is_drift() -> None:
    # ten rows over ten deciles: neighbouring deciles merge into five cells, not one
    reference = build_profile(np.random.default_rng(6).normal(size=200))
    assert compare(reference, 50.0 + np.arange(10.0)).drifted
    assert not compare(reference, np.linspace(-1.5, 1.5, 10)).drifted


def _table(rng: np.random.Generator, k: int, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    p = rng.dirichlet(np.full(k, 5.0))
    return rng.multinomial(n, p), rng.multinomial(m, p)


def test_linear_component_is_the_tie_corrected_rank_sum_test() -> None:
    # V₁² on mid-rank scores is N/(N-1) times the squared z of the Mann-Whitney U test
    # with ties (mid-ranks of the cells), no continuity correction
    rng = np.random.default_rng(10)
    for k in (3, 6, 10):
        reference, current = _table(rng, k, 3_000, 700)
        test = calibrated_chi_square(reference, current, ordered=True)
        linear = next(part for part in test.parts if part.name == "linear")
        x, y = np.repeat(np.arange(k), reference), np.repeat(np.arange(k), current)
        u = stats.mannwhitneyu(y, x, use_continuity=False, method="asymptotic")
        z2 = stats.norm.isf(u.pvalue / 2) ** 2
        total = reference.sum() + current.sum()
        assert linear.statistic == pytest.approx(z2 * total / (total - 1), rel=1e-6)
        assert linear.p_value == pytest.approx(stats.chi2.sf(linear.statistic, 1), rel=1e-9)


def test_components_decompose_pearsons_statistic() -> None:
    # three cells carry two degrees of freedom: linear + quadratic is the whole X²
    rng = np.random.default_rng(11)
    reference, current = _table(rng, 3, 5_000, 900)
    test = calibrated_chi_square(reference, current, ordered=True)
    expected = stats.chi2_contingency(np.vstack([reference, current]), correction=False)
    parts = {part.name: part for part in test.parts}
    assert set(parts) == {"omnibus", "linear", "quadratic"}
    assert parts["linear"].statistic + parts["quadratic"].statistic == pytest.approx(
        expected.statistic, rel=1e-9
    )
    assert parts["omnibus"].p_value == pytest.approx(expected.pvalue, rel=1e-9)
    # the verdict's p-value is the Bonferroni combination over the split
    assert test.p_value == pytest.approx(
        min(1.0, min(part.p_value / part.weight for part in test.parts))
    )
    # the quadratic row is the second orthonormal polynomial in the mid-ranks
    share = (reference + current) / (reference.sum() + current.sum())
    g = contrasts(share)
    assert g @ np.diag(share) @ g.T == pytest.approx(np.eye(2), abs=1e-12)
    assert g @ share == pytest.approx(np.zeros(2), abs=1e-12)
    # categories (unordered) keep the omnibus at the whole level
    unordered = calibrated_chi_square(reference, current)
    assert [part.name for part in unordered.parts] == ["omnibus"]
    assert unordered.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_components_are_uniform_under_the_null_without_variation() -> None:
    rng = np.random.default_rng(12)
    reference = rng.multinomial(100_000, np.full(10, 0.1))
    found: dict[str, list[float]] = {"omnibus": [], "linear": [], "quadratic": []}
    for _ in range(2_000):
        current = rng.multinomial(500, reference / reference.sum())
        for part in calibrated_chi_square(reference, current, ordered=True).parts:
            found[part.name].append(part.p_value)
    for name, p_values in found.items():
        assert stats.kstest(p_values, "uniform").pvalue > 0.001, name
        assert 0.035 < np.mean(np.array(p_values) < 0.05) < 0.065, name


def test_component_variation_keeps_false_alarms_down_when_the_spread_moves() -> None:
    # a stream whose days differ in spread (the quadratic component) and level (linear)
    rng = np.random.default_rng(13)
    day = 400

    def days(count: int, spread: float = 1.0) -> np.ndarray:
        scale = spread * np.exp(rng.normal(0.0, 0.15, size=count))
        level = rng.normal(0.0, 0.1, size=count)
        return (rng.normal(size=(count, day)) * scale[:, None] + level[:, None]).ravel()

    calibrated = build_profile(days(400))
    plain = build_profile(days(400), calibrate=False)
    assert calibrated.variation is not None
    quadratic = calibrated.variation.component("quadratic")
    assert quadratic is not None and quadratic.at(day)[0] > 0.005
    windows = [days(1) for _ in range(100)]
    assert sum(compare(plain, w).drifted for w in windows) >= 20
    assert sum(compare(calibrated, w).drifted for w in windows) <= 3
    assert compare(calibrated, days(30, spread=1.5)).drifted


def test_ordered_components_catch_small_location_and_scale_shifts_more_often() -> None:
    rng = np.random.default_rng(14)
    profile = build_profile(rng.normal(size=200_000))
    assert isinstance(profile, NumericProfile) and profile.variation is not None
    omnibus_only = replace(profile, variation=replace(profile.variation, components=()))
    for mean, spread in ((0.05, 1.0), (0.0, 1.05)):
        windows = [rng.normal(mean, spread, 5_000) for _ in range(80)]
        ordered = sum(compare(profile, w, alpha=0.01 / 6).drifted for w in windows)
        plain = sum(compare(omnibus_only, w, alpha=0.01 / 6).drifted for w in windows)
        assert ordered >= plain + 12, (mean, spread, ordered, plain)


def test_profiles_without_component_tables_still_load_and_test() -> None:
    rng = np.random.default_rng(15)
    profile = build_profile(rng.normal(size=20_000))
    assert isinstance(profile, NumericProfile)
    stored = profile.to_dict()
    assert set(stored["variation"]["components"]) == {"linear", "quadratic"}
    again = profile_from_dict(json.loads(json.dumps(stored)))
    assert again.variation == profile.variation
    del stored["variation"]["components"]  # a profile stored before the components
    older = profile_from_dict(stored)
    assert older.variation is not None and older.variation.components == ()
    window = rng.normal(size=2_000)
    result = compare(older, window)
    test = calibrated_chi_square(
        profile.bin_counts,
        np.bincount(np.searchsorted(profile.bin_edges, window, "right"), minlength=10),
        older.variation,
        ordered=True,
    )
    assert [part.name for part in test.parts] == ["omnibus"]
    assert result.p_value == pytest.approx(test.p_value)


def test_counts_alone_give_the_profile_verdict() -> None:
    # a caller holding merged counts and the stored variation gets the same verdict
    rng = np.random.default_rng(16)
    profile = build_profile(rng.normal(size=50_000))
    assert isinstance(profile, NumericProfile)
    window = rng.normal(0.08, 1.0, size=3_000)
    counts = np.bincount(np.searchsorted(profile.bin_edges, window, "right"), minlength=10)
    halves = counts // 2, counts - counts // 2
    test = calibrated_chi_square(profile.bin_counts, halves[0] + halves[1], profile.variation)
    assert [part.name for part in test.parts] == ["omnibus", "linear", "quadratic"]
    assert compare(profile, window).p_value == pytest.approx(test.p_value)
