"""The change detector over a model's served errors: where the error rose, if it did."""

from __future__ import annotations

import doctest

import numpy as np

from feedback_loop.stats.drift import changepoint
from feedback_loop.stats.drift.changepoint import error_increase


def test_an_abrupt_rise_is_found_near_where_it_happened() -> None:
    rng = np.random.default_rng(3)
    for at, before, after in ((700, 0.1, 0.3), (300, 0.2, 0.5), (1500, 0.12, 0.2)):
        n = at + 500
        errors = np.where(np.arange(n) < at, rng.random(n) < before, rng.random(n) < after)
        change = error_increase(errors.astype(float))
        assert change is not None and abs(change.index - at) < 120, (at, change)
        assert change.before < change.after


def test_no_change_and_a_fall_are_not_reported() -> None:
    rng = np.random.default_rng(4)
    quiet = [error_increase((rng.random(2000) < 0.2).astype(float)) for _ in range(50)]
    assert sum(c is not None for c in quiet) <= 1  # the maximum over splits, at z 4
    fall = np.r_[rng.random(800) < 0.4, rng.random(800) < 0.1].astype(float)
    assert error_increase(fall) is None  # a promotion that helped is not a change to chase


def test_short_or_constant_or_incomplete_errors_give_nothing() -> None:
    assert error_increase(np.zeros(10)) is None
    assert error_increase(np.zeros(500)) is None
    assert error_increase(np.r_[np.zeros(300), np.ones(300), np.nan]) is None


def test_regression_errors_work_the_same() -> None:
    rng = np.random.default_rng(5)
    errors = np.abs(np.r_[rng.normal(0, 1, 600), rng.normal(0, 2, 300)])
    change = error_increase(errors)
    assert change is not None and 500 < change.index < 700


def test_docstring_examples_run() -> None:
    result = doctest.testmod(changepoint)
    assert result.attempted > 0 and result.failed == 0
