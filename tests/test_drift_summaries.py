"""Drift from hourly summaries: the same report as counting the window's rows, without reading
the rows of hours already counted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from feedback_loop import FeedbackLoop
from feedback_loop.monitor import drift_checks
from feedback_loop.monitor.references import stored_reference
from feedback_loop.monitor.window import window_features, window_filter

HOUR = timedelta(hours=1)


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    """Unsorted feature names, numbers with gaps, categories with some unseen by a reference."""
    cities = np.array(["rome", "oslo", "lima", "kyiv"])
    x = rng.normal(shift, 1.0, n)
    x[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "zeta": rng.exponential(1.0 + shift, n),
            "x": x,
            "city": np.where(
                rng.random(n) < 0.03, None, cities[rng.integers(0, 3 + (shift > 0), n)]
            ),
            "alpha": rng.integers(0, 5, n).astype(float),
        }
    )


def _rows(
    clock: Any,
    task: str,
    frame: pd.DataFrame,
    rng: np.random.Generator,
    prefix: str,
    *,
    spread: timedelta,
    version: Any = None,
) -> pd.DataFrame:
    """Predictions of ``frame`` at shuffled times over the ``spread`` before now."""
    n = len(frame)
    offsets = rng.permutation(n) * (spread / max(n, 1))
    score = 1 / (1 + np.exp(-np.nan_to_num(frame["x"].to_numpy())))
    if task == "binary":
        prediction: list[Any] = [{"label": int(s >= 0.5), "score": float(s)} for s in score]
        actual: list[Any] = [int(v) for v in rng.random(n) < score]
    elif task == "multiclass":
        classes = np.array(["a", "b", "c", "d"])
        picked = classes[np.minimum((score * 4).astype(int), 3)]
        prediction = picked.tolist()
        actual = classes[rng.integers(0, 4, n)].tolist()
    else:
        prediction = (score * 10).tolist()
        actual = (score * 10 + rng.normal(0, 1, n)).tolist()
    rows = frame.assign(
        prediction_id=[f"{prefix}{i}" for i in range(n)],
        timestamp=[clock.now() - spread + o for o in offsets],
        prediction=prediction,
        actual=[a if i % 3 else None for i, a in enumerate(actual)],
        tags=[{"shop": "s1" if i % 2 else "s2"} for i in range(n)],
    )
    if version is not None:
        rows["version"] = version
    return rows


def _loop(db_url: str, clock: Any, task: str, rng: np.random.Generator) -> FeedbackLoop:
    loop = FeedbackLoop(f"m-{task}", tracking_db=db_url, clock=clock, task=task)
    reference = _frame(rng, 3000)
    score = 1 / (1 + np.exp(-np.nan_to_num(reference["x"].to_numpy())))
    if task == "binary":
        predictions: Any = score
        actuals: Any = (rng.random(3000) < score).astype(int)
    elif task == "multiclass":
        classes = np.array(["a", "b", "c"])  # "d" never predicted in the reference
        predictions = classes[np.minimum((score * 3).astype(int), 2)]
        actuals = classes[rng.integers(0, 3, 3000)]
    else:
        predictions = score * 10
        actuals = score * 10 + rng.normal(0, 1, 3000)
    loop.set_reference(reference, predictions=predictions, actuals=actuals)
    return loop


def _rows_report(loop: FeedbackLoop, window: Any, **options: Any) -> dict[str, Any]:
    """The report counted from every row of the window."""
    handle = loop.handle
    state = handle.read_state()
    version = options.pop("version", None)
    stored = stored_reference(handle, options.pop("reference", "default"), version)
    flt = window_filter(handle, window, version)
    data = window_features(handle.engine, flt, regression=state.spec.task == "regression")
    report = drift_checks.check_drift(
        state,
        stored,
        data,
        flt,
        methods=options.get("methods"),
        share_threshold=0.5,
        correction=options.get("correction", "none"),
    )
    return report.to_dict()


def _same(loop: FeedbackLoop, window: Any = "1d", **options: Any) -> dict[str, Any]:
    """The summary path's report, checked equal to the rows' (twice: building, then built)."""
    expected = _rows_report(loop, window, **options)
    for _ in range(2):
        got = loop.check_drift(window=window, record=False, **options).to_dict()
        assert got == expected
    return got


def _summaries(loop: FeedbackLoop) -> int:
    with loop.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM drift_summaries")).scalar_one())


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_summaries_give_the_rows_report(db_url, clock, task) -> None:
    rng = np.random.default_rng(3)
    loop = _loop(db_url, clock, task, rng)
    loop.log_predictions(_rows(clock, task, _frame(rng, 900), rng, "a", spread=20 * HOUR))
    clock.advance(timedelta(minutes=17))  # windows end inside an hour
    report = _same(loop, "1d")
    assert report["n_current"] == 900 and _summaries(loop) > 0
    # drifted data, partly seen before
    loop.log_predictions(_rows(clock, task, _frame(rng, 700, 0.7), rng, "b", spread=30 * HOUR))
    clock.advance(timedelta(minutes=31))
    drifted = _same(loop, "2d")
    assert drifted["n_current"] == 1600
    assert {"x", "zeta"} & set(drifted["drifted_columns"])
    _same(loop, "1d", correction="benjamini_hochberg")
    _same(loop, "2d", methods={"x": "psi", "city": "jensen_shannon", "alpha": "psi"})
    _same(loop, "2d", methods={"city": "chi_square"})
    # segments read the rows; both agree
    _same(loop, "2d", methods={"x": "ks"})


def test_counts_agree_with_the_values_path(db_url, clock) -> None:
    """Counting first changes nothing that comparing the values found: same counts, same
    p-values (the order of unseen categories aside, which moves PSI by rounding only)."""
    rng = np.random.default_rng(4)
    loop = _loop(db_url, clock, "binary", rng)
    loop.log_predictions(_rows(clock, "binary", _frame(rng, 800, 0.3), rng, "a", spread=HOUR * 9))
    handle = loop.handle
    state = handle.read_state()
    stored = stored_reference(handle, "default", None)
    flt = window_filter(handle, "1d")
    data = window_features(handle.engine, flt, regression=False)
    options: dict[str, Any] = {"methods": None, "share_threshold": 0.5, "correction": "none"}
    counted = drift_checks.check_drift(state, stored, data, flt, **options).to_dict()
    valued = drift_checks._check_values(state, stored, data, flt, **options).to_dict()
    assert counted.keys() == valued.keys()
    for name, column in valued.pop("columns").items():
        mine = counted["columns"][name]
        for key, value in column.items():
            if isinstance(value, float):
                assert mine[key] == pytest.approx(value, rel=1e-12, abs=1e-15), (name, key)
            else:
                assert mine[key] == value, (name, key)
    counted.pop("columns")
    assert counted == valued
