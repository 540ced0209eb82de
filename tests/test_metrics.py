"""Metric functions against scikit-learn on the same arrays."""

from __future__ import annotations

import doctest
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn import metrics as skm

from feedback_loop.stats import metrics as fm
from feedback_loop.stats.metrics import (
    CLASSIFICATION_KEYS,
    DELAY_KEYS,
    REGRESSION_KEYS,
    classification,
    classification_metrics,
    delay,
    delay_percentiles,
    regression,
    regression_metrics,
)

RTOL = 1e-10
ATOL = 1e-12
NAN = float("nan")

Expected = dict[str, float | None]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@contextmanager
def quiet() -> Iterator[None]:
    """scikit-learn warns on undefined metrics and unnormalised rows; the values still count."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def assert_metrics(actual: Expected, expected: Expected) -> None:
    assert set(actual) == set(expected)
    for key, want in expected.items():
        got = actual[key]
        if want is None or np.isnan(want):
            assert got is None, f"{key}: expected None, got {got}"
        else:
            assert got is not None, f"{key}: expected {want}, got None"
            assert isinstance(got, float), f"{key}: {type(got)}"
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=key)


# --- scikit-learn references -------------------------------------------------------------


def sk_binary(
    y_true: IntArray, y_pred: IntArray, k: int, positive: int, score: FloatArray | None
) -> Expected:
    out: Expected = dict.fromkeys(CLASSIFICATION_KEYS)
    if y_true.size == 0:
        return out
    t_bin, p_bin = (y_true == positive).astype(int), (y_pred == positive).astype(int)
    # With two classes scikit-learn takes the codes directly; with more, one-vs-rest.
    t, p, pos = (y_true, y_pred, positive) if k == 2 else (t_bin, p_bin, 1)
    with quiet():
        out["accuracy"] = skm.accuracy_score(y_true, y_pred)
        out["precision"] = skm.precision_score(t, p, pos_label=pos, zero_division=0)
        out["recall"] = skm.recall_score(t, p, pos_label=pos, zero_division=0)
        out["f1"] = skm.f1_score(t, p, pos_label=pos, zero_division=0)
        if score is not None:
            known = ~np.isnan(score)
            s, tk = score[known], t_bin[known]
            if s.size:
                out["log_loss"] = skm.log_loss(tk, s, labels=[0, 1])
                out["brier"] = skm.brier_score_loss(t[known], s, pos_label=pos)
            if np.unique(tk).size == 2:
                out["roc_auc"] = skm.roc_auc_score(tk, s)
    return out


def sk_multiclass(y_true: IntArray, y_pred: IntArray, k: int, proba: FloatArray | None) -> Expected:
    out: Expected = dict.fromkeys(CLASSIFICATION_KEYS)
    if y_true.size == 0:
        return out
    with quiet():
        out["accuracy"] = skm.accuracy_score(y_true, y_pred)
        for key, fn in (
            ("precision", skm.precision_score),
            ("recall", skm.recall_score),
            ("f1", skm.f1_score),
        ):
            out[key] = fn(y_true, y_pred, average="macro", zero_division=0)
        if proba is None or k < 2:
            return out
        known = ~np.isnan(proba).any(axis=1)
        t, p = y_true[known], proba[known]
        if t.size:
            out["log_loss"] = skm.log_loss(t, p, labels=list(range(k)))
            out["brier"] = skm.brier_score_loss(t, p, labels=list(range(k)))
        out["roc_auc"] = sk_ovr_auc(t, p, k)
    return out


def sk_ovr_auc(y_true: IntArray, proba: FloatArray, k: int) -> float | None:
    """OvR macro AUC over the classes present in y_true (undefined ones are skipped)."""
    if np.unique(y_true).size < 2:
        return None
    if k == 2:  # scikit-learn reads a two-class target as binary and wants a 1-D score
        return float(np.mean([skm.roc_auc_score(y_true == c, proba[:, c]) for c in (0, 1)]))
    per_class = skm.roc_auc_score(
        y_true, proba, multi_class="ovr", average=None, labels=list(range(k))
    )
    return float(np.nanmean(per_class))


def sk_regression(y_true: FloatArray, y_pred: FloatArray) -> Expected:
    out: Expected = dict.fromkeys(REGRESSION_KEYS)
    known = ~(np.isnan(y_true) | np.isnan(y_pred))
    t, p = y_true[known], y_pred[known]
    if t.size == 0:
        return out
    out["mae"] = skm.mean_absolute_error(t, p)
    out["rmse"] = skm.root_mean_squared_error(t, p)
    out["mape"] = skm.mean_absolute_percentage_error(t, p)
    if t.size >= 2:
        with quiet():
            out["r2"] = skm.r2_score(t, p)
    return out


# --- strategies ----------------------------------------------------------------------------

# Few distinct values force ties; -0.0 must tie with 0.0; the float range adds distinct ones.
TIED = st.sampled_from([0.0, -0.0, 0.1, 0.5, 0.9, 1.0, 5e-324])
PROBS = st.one_of(TIED, st.floats(0.0, 1.0))


@st.composite
def binary_cases(draw: st.DrawFn) -> tuple[IntArray, IntArray, int, int, FloatArray]:
    n = draw(st.integers(0, 150))
    k = draw(st.integers(2, 4))
    positive = draw(st.integers(0, k - 1))
    # Restricting the drawn codes gives one-class and imbalanced windows.
    codes = st.integers(0, k - 1)
    y_true = draw(
        arrays(np.int64, n, elements=st.sampled_from(sorted(draw(st.sets(codes, min_size=1)))))
    )
    y_pred = draw(arrays(np.int64, n, elements=codes))
    score = draw(arrays(np.float64, n, elements=st.one_of(PROBS, st.just(NAN))))
    return y_true, y_pred, k, positive, score


@st.composite
def multiclass_cases(draw: st.DrawFn) -> tuple[IntArray, IntArray, int, FloatArray]:
    n = draw(st.integers(0, 120))
    k = draw(st.integers(2, 6))
    codes = st.integers(0, k - 1)
    present = sorted(draw(st.sets(codes, min_size=1)))  # often leaves classes out of y_true
    y_true = draw(arrays(np.int64, n, elements=st.sampled_from(present)))
    y_pred = draw(arrays(np.int64, n, elements=codes))
    weights = draw(
        arrays(np.float64, (n, k), elements=st.sampled_from([0.0, 1.0, 2.0, 3.5]) | st.floats(0, 4))
    )
    totals = weights.sum(axis=1, keepdims=True)
    proba = np.where(totals > 0, weights / np.where(totals > 0, totals, 1.0), 1.0 / k)
    unknown = draw(
        arrays(np.bool_, n, elements=st.booleans() if draw(st.booleans()) else st.just(False))
    )
    proba[unknown, draw(st.integers(0, k - 1))] = NAN
    return y_true, y_pred, k, proba


# Magnitudes whose squares neither underflow nor overflow, as real targets have.
finite = st.floats(-1e6, 1e6).filter(lambda x: x == 0 or abs(x) > 1e-6)


@st.composite
def regression_cases(draw: st.DrawFn) -> tuple[FloatArray, FloatArray]:
    n = draw(st.integers(0, 100))
    # Zeros in y_true exercise MAPE's epsilon floor.
    y_true = draw(arrays(np.float64, n, elements=st.sampled_from([0.0, 1.0, -2.5]) | finite))
    y_pred = draw(arrays(np.float64, n, elements=st.sampled_from([0.0, 1.0]) | finite))
    return y_true, y_pred


# --- property tests ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(binary_cases())
def test_binary_matches_sklearn(case: tuple[IntArray, IntArray, int, int, FloatArray]) -> None:
    y_true, y_pred, k, positive, score = case
    actual = classification_metrics(y_true, y_pred, k, positive=positive, score=score)
    assert_metrics(actual, sk_binary(y_true, y_pred, k, positive, score))


@settings(max_examples=300, deadline=None)
@given(multiclass_cases())
def test_multiclass_matches_sklearn(case: tuple[IntArray, IntArray, int, FloatArray]) -> None:
    y_true, y_pred, k, proba = case
    actual = classification_metrics(y_true, y_pred, k, proba=proba)
    assert_metrics(actual, sk_multiclass(y_true, y_pred, k, proba))


@settings(max_examples=100, deadline=None)
@given(multiclass_cases())
def test_multiclass_without_proba(case: tuple[IntArray, IntArray, int, FloatArray]) -> None:
    y_true, y_pred, k, _ = case
    actual = classification_metrics(y_true, y_pred, k)
    assert_metrics(actual, sk_multiclass(y_true, y_pred, k, None))


@settings(max_examples=300, deadline=None)
@given(regression_cases())
def test_regression_matches_sklearn(case: tuple[FloatArray, FloatArray]) -> None:
    y_true, y_pred = case
    actual = regression_metrics(y_true, y_pred)
    expected = sk_regression(y_true, y_pred)
    if y_true.size >= 2 and y_true.min() == y_true.max():
        # Constant target: force_finite's answer, even where scikit-learn's float mean is off
        # by an ulp (see test_r2_constant_target_is_exact).
        expected["r2"] = 1.0 if np.array_equal(y_true, y_pred) else 0.0
    assert_metrics(actual, expected)


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 50), st.integers(-1000, 1000), st.booleans())
def test_r2_constant_target_agrees_with_sklearn(n: int, value: int, exact: bool) -> None:
    y_true = np.full(n, float(value))
    y_pred = y_true.copy() if exact else y_true + np.linspace(-1.0, 2.0, n)
    r2 = regression_metrics(y_true, y_pred)["r2"]
    assert r2 == (1.0 if exact else 0.0)
    assert r2 == skm.r2_score(y_true, y_pred)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, st.integers(0, 200), elements=st.floats(0, 1e6) | st.just(NAN)))
def test_delay_percentiles_match_numpy(delays: FloatArray) -> None:
    actual = delay_percentiles(delays)
    known = delays[~np.isnan(delays)]
    if known.size == 0:
        assert actual == dict.fromkeys(DELAY_KEYS)
        return
    p50, p95 = np.percentile(known, [50, 95], method="linear")
    assert_metrics(actual, {"label_delay_p50_s": p50, "label_delay_p95_s": p95})


# --- larger fixed cases ---------------------------------------------------------------------


@pytest.mark.parametrize("decimals", [None, 2, 1])
def test_binary_large_with_ties(decimals: int | None) -> None:
    rng = np.random.default_rng(7)
    n = 20_000
    y_true = (rng.random(n) < 0.2).astype(np.int64)
    score = np.clip(0.3 * y_true + 0.7 * rng.random(n), 0, 1)
    if decimals is not None:
        score = np.round(score, decimals)
    score[rng.random(n) < 0.05] = NAN
    y_pred = (np.nan_to_num(score) > 0.4).astype(np.int64)
    actual = classification_metrics(y_true, y_pred, 2, positive=1, score=score)
    assert_metrics(actual, sk_binary(y_true, y_pred, 2, 1, score))
    assert 0.6 < (actual["roc_auc"] or 0) < 1.0


@pytest.mark.parametrize("k", [2, 3, 5])
def test_multiclass_large_matches_sklearn_macro(k: int) -> None:
    rng = np.random.default_rng(k)
    n = 20_000
    y_true = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y_true] += 1.0
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y_pred = proba.argmax(axis=1)
    actual = classification_metrics(y_true, y_pred, k, proba=proba)
    assert_metrics(actual, sk_multiclass(y_true, y_pred, k, proba))
    assert_metrics(
        classification_metrics(y_true, y_pred, k, proba=np.asfortranarray(proba)), actual
    )
    if k > 2:  # all classes present: scikit-learn's own macro average, no nanmean needed
        expected = skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=list(range(k)))
        np.testing.assert_allclose(actual["roc_auc"] or 0, expected, rtol=RTOL)


def test_absent_class_auc_averages_present_classes_only() -> None:
    y_true = np.array([0, 0, 1, 1, 0, 1])
    proba = np.array([[7, 2, 1], [5, 1, 4], [2, 6, 2], [3, 3, 4], [4, 4, 2], [1, 8, 1]]) / 10
    with quiet():  # scikit-learn's macro with labels= is NaN because class 2 has no AUC
        assert np.isnan(skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=[0, 1, 2]))
    expected = np.mean([skm.roc_auc_score(y_true == c, proba[:, c]) for c in (0, 1)])
    actual = classification_metrics(y_true, y_true, 3, proba=proba)["roc_auc"]
    assert actual == pytest.approx(expected, rel=1e-12)


def test_unnormalised_rows_are_not_renormalised() -> None:
    y_true = np.array([0, 1, 2, 1])
    proba = np.array([[0.9, 0.9, 0.9], [0.1, 0.3, 0.1], [0.2, 0.2, 0.9], [0.0, 1.0, 1.0]])
    actual = classification_metrics(y_true, y_true, 3, proba=proba)
    with quiet():
        expected_ll = skm.log_loss(y_true, proba, labels=[0, 1, 2])
        expected_brier = skm.brier_score_loss(y_true, proba, labels=[0, 1, 2])
    np.testing.assert_allclose(actual["log_loss"] or 0, expected_ll, rtol=RTOL)
    np.testing.assert_allclose(actual["brier"] or 0, expected_brier, rtol=RTOL)
    renormalised = -np.mean(np.log((proba / proba.sum(axis=1, keepdims=True))[range(4), y_true]))
    assert abs((actual["log_loss"] or 0) - renormalised) > 0.1


def test_multiclass_brier_near_perfect_predictions() -> None:
    # The multiclass Brier score is assembled from sums of squares; near-perfect predictions
    # are where that could lose accuracy, so pin the absolute error there.
    rng = np.random.default_rng(11)
    y_true = rng.integers(0, 4, 5000)
    proba = np.full((5000, 4), 1e-9)
    proba[np.arange(5000), y_true] = 1 - 3e-9
    actual = classification_metrics(y_true, y_true, 4, proba=proba)["brier"]
    expected = skm.brier_score_loss(y_true, proba, labels=[0, 1, 2, 3])
    assert actual is not None
    assert abs(actual - expected) < 1e-15
    one_hot = np.eye(4)[y_true]
    assert classification_metrics(y_true, y_true, 4, proba=one_hot)["brier"] == 0.0


def test_many_classes_skip_the_dense_confusion_matrix() -> None:
    k = 3000
    assert k * k > classification._MAX_CONFUSION_CELLS
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 40, 500) * 70
    y_pred = np.where(rng.random(500) < 0.6, y_true, rng.integers(0, k, 500))
    assert_metrics(
        classification_metrics(y_true, y_pred, k), sk_multiclass(y_true, y_pred, k, None)
    )
    for positive in (0, int(y_true[0])):
        actual = classification_metrics(y_true, y_pred, k, positive=positive)
        assert_metrics(actual, sk_binary(y_true, y_pred, k, positive, None))


def test_memory_layout_does_not_change_results() -> None:
    rng = np.random.default_rng(5)
    y_true = rng.integers(0, 4, 1000)
    proba = rng.dirichlet(np.ones(4), 1000)
    proba[::17, 2] = NAN
    reference = classification_metrics(y_true, y_true, 4, proba=proba)
    assert reference["roc_auc"] is not None
    for variant in (np.asfortranarray(proba), np.repeat(proba, 2, axis=1)[:, ::2]):
        assert_metrics(classification_metrics(y_true, y_true, 4, proba=variant), reference)
    frozen = [a.copy() for a in (y_true, proba)]
    for a in frozen:
        a.flags.writeable = False  # storage hands over read-only buffers
    assert classification_metrics(frozen[0], frozen[0], 4, proba=frozen[1]) == reference
    binary = classification_metrics(y_true, y_true, 4, positive=2, score=proba[:, 2])
    strided = classification_metrics(y_true, y_true, 4, positive=2, score=proba[:, 2].copy())
    assert binary == strided
    assert binary["roc_auc"] is not None
    frozen_binary = classification_metrics(
        frozen[0], frozen[0], 4, positive=2, score=frozen[1][:, 2]
    )
    assert frozen_binary == binary


# --- degenerate inputs ------------------------------------------------------------------------


def test_empty_inputs_give_none_everywhere() -> None:
    none = np.array([], dtype=np.int64)
    assert classification_metrics(none, none, 2, positive=1, score=np.array([])) == dict.fromkeys(
        CLASSIFICATION_KEYS
    )
    assert classification_metrics(none, none, 3, proba=np.empty((0, 3))) == dict.fromkeys(
        CLASSIFICATION_KEYS
    )
    assert regression_metrics(np.array([]), np.array([])) == dict.fromkeys(REGRESSION_KEYS)
    assert delay_percentiles(np.array([])) == dict.fromkeys(DELAY_KEYS)


def test_one_class_window() -> None:
    y = np.ones(5, dtype=np.int64)
    score = np.array([0.9, 0.8, 0.3, 1.0, 0.0])
    actual = classification_metrics(y, y, 2, positive=1, score=score)
    assert actual["roc_auc"] is None
    assert actual["accuracy"] == actual["precision"] == actual["recall"] == 1.0
    assert_metrics(actual, sk_binary(y, y, 2, 1, score))
    # The negative class as positive: nothing predicted or true -> zero_division=0.
    as_negative = classification_metrics(y, y, 2, positive=0, score=1 - score)
    assert as_negative["precision"] == as_negative["recall"] == as_negative["f1"] == 0.0
    multi = classification_metrics(y, y, 3, proba=np.tile([0.1, 0.8, 0.1], (5, 1)))
    assert multi["roc_auc"] is None
    assert multi["log_loss"] == pytest.approx(-np.log(0.8), rel=1e-12)
    # A single declared class: counting metrics only, nothing to rank or score against.
    single = classification_metrics(y * 0, y * 0, 1, proba=np.ones((5, 1)))
    assert single["accuracy"] == single["f1"] == 1.0
    assert single["roc_auc"] is single["log_loss"] is single["brier"] is None


def test_unknown_probabilities_leave_counting_metrics_intact() -> None:
    y = np.array([0, 1, 1, 0])
    actual = classification_metrics(y, y, 2, positive=1, score=np.full(4, NAN))
    assert actual["accuracy"] == 1.0
    assert actual["roc_auc"] is actual["log_loss"] is actual["brier"] is None
    multi = classification_metrics(y, y, 2, proba=np.full((4, 2), NAN))
    assert multi["f1"] == 1.0
    assert multi["roc_auc"] is multi["log_loss"] is multi["brier"] is None


def test_extreme_probabilities_are_clipped_like_sklearn() -> None:
    y = np.array([0, 1, 0, 1])
    score = np.array([1.0, 0.0, 0.0, 1.0])
    actual = classification_metrics(y, y, 2, positive=1, score=score)
    expected = skm.log_loss(y, score, labels=[0, 1])
    assert actual["log_loss"] == pytest.approx(expected, rel=1e-12)
    assert actual["log_loss"] == pytest.approx(-np.log(np.finfo(float).eps) / 2, rel=1e-6)


def test_signed_zero_scores_tie() -> None:
    y = np.array([1, 0])
    actual = classification_metrics(y, y, 2, positive=1, score=np.array([-0.0, 0.0]))
    assert actual["roc_auc"] == 0.5 == skm.roc_auc_score(y, [-0.0, 0.0])


def test_regression_skips_nan_rows_and_handles_zero_targets() -> None:
    y_true = np.array([0.0, 2.0, NAN, 4.0])
    y_pred = np.array([1.0, 2.0, 3.0, NAN])
    actual = regression_metrics(y_true, y_pred)
    assert actual["mae"] == 0.5
    assert actual["mape"] == pytest.approx(0.5 / np.finfo(float).eps, rel=1e-12)
    assert_metrics(actual, sk_regression(y_true, y_pred))
    assert regression_metrics([3.0], [1.0])["r2"] is None


def test_regression_overflow_gives_none() -> None:
    actual = regression_metrics(np.array([1e200, -1e200]), np.zeros(2))
    assert actual["mae"] == 1e200
    assert actual["mape"] == 1.0
    assert actual["rmse"] is None
    assert actual["r2"] is None


def test_r2_constant_target_is_exact() -> None:
    y_true = np.full(3, 0.1)  # its float mean is 0.1 + 1 ulp
    assert y_true.mean() != 0.1
    actual = regression_metrics(y_true, y_true + 0.5)["r2"]
    assert actual == 0.0
    assert skm.r2_score(y_true, y_true + 0.5) < -1e30  # the deviation we accept
    assert regression_metrics(y_true, y_true)["r2"] == 1.0


def test_delay_percentiles_example() -> None:
    actual = delay_percentiles(np.array([5.0, NAN, 1.0, 3.0]))
    assert actual == {"label_delay_p50_s": 3.0, "label_delay_p95_s": 4.8}
    assert delay_percentiles(np.array([NAN])) == dict.fromkeys(DELAY_KEYS)


# --- invalid inputs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"y_pred": np.array([0, 1])}, "different lengths"),
        ({"y_true": np.array([[0, 1, 1]])}, "one-dimensional"),
        ({"y_true": np.array([0.0, 1.0, 1.0])}, "integer class codes"),
        ({"y_pred": np.array([0, 1, 2])}, r"outside \[0, 2\)"),
        ({"y_true": np.array([0, -1, 1])}, r"outside \[0, 2\)"),
        ({"n_classes": 0}, "at least 1"),
        ({"n_classes": 2.0}, "must be an int"),
        ({"positive": 2}, "positive must be"),
        ({"positive": True}, "positive must be"),
        ({"positive": 1.0}, "positive must be"),
        ({"score": np.array([0.1, 0.2])}, r"score must have shape \(3,\)"),
        ({"score": np.array([0.1, 1.5, 0.2])}, r"probabilities in \[0, 1\]"),
        ({"score": np.array([NAN, -0.1, 0.2])}, r"probabilities in \[0, 1\]"),
        ({"proba": np.full((3, 2), 0.5)}, "proba is for multiclass"),
        ({"positive": None, "score": None, "proba": np.full((3, 3), 0.5)}, r"shape \(3, 2\)"),
        ({"positive": None, "score": None, "proba": np.full((3, 2), 2.0)}, r"in \[0, 1\]"),
        ({"positive": None}, "score is for binary"),
    ],
)
def test_invalid_classification_inputs_raise(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "y_true": np.array([0, 1, 1]),
        "y_pred": np.array([0, 1, 0]),
        "n_classes": 2,
        "positive": 1,
        "score": np.array([0.1, 0.9, 0.4]),
    }
    args.update(kwargs)
    y_true, y_pred, n_classes = args.pop("y_true"), args.pop("y_pred"), args.pop("n_classes")
    with pytest.raises(ValueError, match=message):
        classification_metrics(y_true, y_pred, n_classes, **args)  # type: ignore[arg-type]


def test_invalid_regression_and_delay_inputs_raise() -> None:
    with pytest.raises(ValueError, match="different lengths"):
        regression_metrics(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="one-dimensional"):
        regression_metrics(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="one-dimensional"):
        delay_percentiles(np.zeros((2, 2)))


# --- documentation ---------------------------------------------------------------------------


def test_public_api_is_exported() -> None:
    assert fm.__all__ == sorted(fm.__all__)
    for name in ("classification_metrics", "regression_metrics", "delay_percentiles"):
        assert callable(getattr(fm, name))


@pytest.mark.parametrize("module", [classification, regression, delay])
def test_docstring_examples_run(module: object) -> None:
    result = doctest.testmod(module, raise_on_error=False)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0
