"""Multivariate drift: domain classifier and PCA reconstruction error."""

from __future__ import annotations

import doctest
import json
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest
from scipy.stats import ks_2samp
from threadpoolctl import threadpool_limits

from feedback_loop.stats.drift import multivariate
from feedback_loop.stats.drift.multivariate import (
    PCAReconstructionDrift,
    domain_classifier_drift,
)

Array = npt.NDArray[np.float64]
NAMES = [f"f{j}" for j in range(10)]


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """Gradient boosting's OpenMP threads crawl when parallel test workers share the cores."""
    with threadpool_limits(limits=1):
        yield


def correlated(n: int, rng: np.random.Generator, rho: float = 0.9) -> Array:
    """Ten standard-normal features; f0 and f1 have correlation ``rho``, the rest independent."""
    x = rng.normal(size=(n, 10))
    x[:, 1] = rho * x[:, 0] + np.sqrt(1 - rho**2) * x[:, 1]
    return x


def test_docstring_examples_run() -> None:
    assert doctest.testmod(multivariate).failed == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_domain_classifier_quiet_without_drift(seed: int) -> None:
    rng = np.random.default_rng(seed)
    res = domain_classifier_drift(correlated(2_000, rng), correlated(1_500, rng), random_state=seed)
    assert abs(res.statistic - 0.5) < 0.04
    assert not res.drifted
    assert max(score for _, score in res.feature_importance) < 0.05


def test_domain_classifier_finds_and_ranks_a_mean_shift() -> None:
    rng = np.random.default_rng(3)
    ref, cur = correlated(2_000, rng), correlated(2_000, rng)
    cur[:, 6] += 0.5
    res = domain_classifier_drift(ref, cur, feature_names=NAMES)
    assert res.drifted
    assert res.statistic > 0.58
    assert res.feature_importance[0][0] == "f6"
    assert res.feature_importance[0][1] > 3 * res.feature_importance[1][1]
    payload = json.loads(json.dumps(res.to_dict()))
    assert next(iter(payload["feature_importance"])) == "f6"
    assert payload["p_value"] is None and payload["method"] == "domain_classifier"


def test_domain_classifier_subsamples_and_handles_missing_values() -> None:
    rng = np.random.default_rng(4)
    ref, cur = rng.normal(size=(3_000, 4)), rng.normal(size=(1_000, 4))
    ref[rng.random(ref.shape[0]) < 0.05, 2] = np.nan
    cur[rng.random(cur.shape[0]) < 0.40, 2] = np.nan  # only the missingness rate changes
    res = domain_classifier_drift(ref, cur, max_rows=800)
    assert (res.n_reference, res.n_current) == (800, 800)
    assert res.drifted
    assert res.feature_importance[0][0] == "x2"


def test_pca_quiet_without_drift_across_seeds_and_window_sizes() -> None:
    for seed in range(4):
        rng = np.random.default_rng(seed)
        det = PCAReconstructionDrift(random_state=seed).fit(correlated(4_000, rng))
        for m in (100, 1_000, 5_000):
            res = det.score(correlated(m, rng))
            assert not res.drifted, (seed, m)
            assert res.lower_threshold < res.statistic < res.threshold


def test_pca_catches_correlation_flip_that_marginal_tests_miss() -> None:
    rng = np.random.default_rng(8)
    ref = correlated(4_000, rng, rho=0.9)
    cur = correlated(1_000, rng, rho=-0.9)  # every marginal is still N(0, 1)

    for j in range(10):  # univariate tests see nothing (Bonferroni over 10 features)
        assert ks_2samp(ref[:, j], cur[:, j]).pvalue > 0.05 / 10
    marginal = domain_classifier_drift(ref, cur).feature_importance
    assert max(score for _, score in marginal) < 0.05

    det = PCAReconstructionDrift().fit(ref)
    assert det.n_components == 9  # the small-variance direction f0 - f1 is dropped
    res = det.score(cur)
    assert res.drifted
    assert res.statistic > 5 * res.threshold
    assert json.loads(json.dumps(res.to_dict()))["drifted"] is True


def test_pca_flags_rows_that_fit_too_well() -> None:
    rng = np.random.default_rng(9)
    det = PCAReconstructionDrift().fit(correlated(4_000, rng))
    cur = correlated(1_000, rng)
    cur[:, 1] = cur[:, 0]  # collapses onto the principal subspace: the error falls
    res = det.score(cur)
    assert res.drifted
    assert res.statistic < res.lower_threshold


def test_pca_band_narrows_with_window_size() -> None:
    rng = np.random.default_rng(1)
    det = PCAReconstructionDrift().fit(correlated(3_000, rng))
    small, large = det.score(correlated(100, rng)), det.score(correlated(10_000, rng))
    assert small.threshold - small.reference_error == pytest.approx(
        10 * (large.threshold - large.reference_error)
    )


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: domain_classifier_drift(np.zeros((50, 3)), np.zeros((50, 4))), "current"),
        (lambda: domain_classifier_drift(np.zeros(50), np.zeros((50, 1))), "reference"),
        (lambda: domain_classifier_drift(np.zeros((50, 2)), np.zeros((3, 2))), "current"),
        (lambda: domain_classifier_drift(np.zeros((50, 2)), np.zeros((50, 2)), cv=1), "cv"),
        (
            lambda: domain_classifier_drift(np.zeros((9, 2)), np.zeros((9, 2)), threshold_auc=0.4),
            "threshold_auc",
        ),
        (
            lambda: domain_classifier_drift(
                np.zeros((9, 2)), np.zeros((9, 2)), feature_names=["a"]
            ),
            "feature_names",
        ),
        (lambda: PCAReconstructionDrift().fit(np.full((20, 3), np.nan)), "reference"),
        (lambda: PCAReconstructionDrift().fit(np.zeros((20, 1))), "reference"),
        (lambda: PCAReconstructionDrift(explained_variance=1.5), "explained_variance"),
        (
            lambda: PCAReconstructionDrift().fit(np.eye(20, 3)).score(np.zeros((5, 4))),
            "current",
        ),
    ],
)
def test_validation_errors_name_the_argument(call: object, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        call()  # type: ignore[operator]


def test_scoring_before_fit_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="fit"):
        PCAReconstructionDrift().score(np.zeros((5, 3)))
