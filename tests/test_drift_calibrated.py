"""The calibrated drift verdict: SciPy agreement, false alarms, detection, natural variation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from feedback_loop.stats.drift.calibrated import (
    Variation,
    calibrated_chi_square,
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
