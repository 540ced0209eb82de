"""A window read back as columns: every storage of a feature (packed under several schemas, JSON),
missing values, categories, tags, versions and label codes come back as they were logged."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from feedback_loop import FeedbackLoop, ManualClock
from feedback_loop.monitor.window import keys_of_codes, read_window, window_filter, window_scores


def _values(column: pd.Series) -> list[object]:
    """A column's values with every kind of missing value as None."""
    return [None if pd.isna(v) else v for v in column]


def _logged(db_url: str, clock: ManualClock) -> FeedbackLoop:
    loop = FeedbackLoop("reads", tracking_db=db_url, clock=clock, task="binary")
    first = pd.DataFrame(
        {
            "prediction_id": [f"a{i}" for i in range(6)],
            "prediction": [0.1, 0.9, 0.35, 0.8, 0.5, 0.05],
            "actual": [0, 1, 1, 1, 0, 0],
            "x": [1.5, np.nan, -2.0, 1e300, 0.0, -0.25],
            "colour": ["red", "blue", "red", "green", "blue", "red"],
            "version": ["1"] * 6,
            "tags": [{"region": "eu"}, {"region": "us"}] * 3,
        }
    )
    loop.log_predictions(first)
    second = pd.DataFrame(  # other columns: a second packed schema
        {
            "prediction_id": [f"b{i}" for i in range(4)],
            "prediction": [0.6, 0.4, 0.7, 0.2],
            "x": [10.0, 11.0, np.nan, 13.0],
            "y": [100.0, 200.0, 300.0, 400.0],
            "colour": ["blue", "violet", "red", "violet"],
            "version": ["2"] * 4,
        }
    )
    loop.log_predictions(second)
    for i in range(3):  # a text-valued feature sends the row to the JSON storage
        loop.log_prediction(
            prediction_id=f"j{i}",
            prediction=0.3 + 0.1 * i,
            actual=i % 2,
            features={"x": 20.0 + i, "plan": f"p{i % 2}", "colour": "red"},
            tags={"region": "eu", "tier": str(i)},
            version="2",
        )
    loop.log_prediction(prediction_id="bare", prediction=0.55, version="2")  # no features
    clock.advance(timedelta(minutes=1))
    return loop


def test_a_window_reads_back_every_storage_as_one_frame(db_url: str, clock: ManualClock) -> None:
    loop = _logged(db_url, clock)
    data = read_window(loop.handle, "7d")
    frame = data.features
    assert len(frame) == 14
    x = frame["x"].to_numpy(dtype=float)
    expected_x = [
        1.5,
        np.nan,
        -2.0,
        1e300,
        0.0,
        -0.25,
        10.0,
        11.0,
        np.nan,
        13.0,
        20,
        21,
        22,
        np.nan,
    ]
    np.testing.assert_array_equal(x, np.array(expected_x, dtype=float))
    y = frame["y"].to_numpy(dtype=float)
    np.testing.assert_array_equal(y[6:10], [100.0, 200.0, 300.0, 400.0])
    assert np.isnan(y[:6]).all() and np.isnan(y[10:]).all()
    assert _values(frame["colour"]) == [
        *["red", "blue", "red", "green", "blue", "red"],
        *["blue", "violet", "red", "violet"],
        *["red", "red", "red"],
        None,
    ]
    assert list(frame["plan"])[10:13] == ["p0", "p1", "p0"]
    assert frame["plan"].iloc[:10].isna().all()
    assert _values(data.tags["region"]) == [*["eu", "us"] * 3, *[None] * 4, "eu", "eu", "eu", None]
    assert _values(data.tags["tier"])[10:13] == ["0", "1", "2"]
    np.testing.assert_allclose(data.score[:6], [0.1, 0.9, 0.35, 0.8, 0.5, 0.05])
    assert data.labeled.tolist() == [True] * 6 + [False] * 4 + [True] * 3 + [False]


def test_a_version_reads_only_its_rows(db_url: str, clock: ManualClock) -> None:
    loop = _logged(db_url, clock)
    second = read_window(loop.handle, "7d", version="2")
    assert len(second.features) == 8
    np.testing.assert_array_equal(
        second.features["x"].to_numpy(dtype=float),
        np.array([10.0, 11.0, np.nan, 13.0, 20.0, 21.0, 22.0, np.nan]),
    )
    assert "y" in second.features and "plan" in second.features
    first = read_window(loop.handle, "7d", version="1")
    assert len(first.features) == 6
    assert "plan" not in first.features and "y" not in first.features


def test_scores_alone_match_the_whole_read(db_url: str, clock: ManualClock) -> None:
    loop = _logged(db_url, clock)
    whole = read_window(loop.handle, "7d").score
    alone = window_scores(loop.engine, window_filter(loop.handle, "7d"))
    np.testing.assert_array_equal(np.sort(alone), np.sort(whole))  # NaNs sort last in both
    assert len(alone) == 14


def test_label_codes_map_back_to_keys_and_unknown_codes_to_none(
    db_url: str, clock: ManualClock
) -> None:
    loop = _logged(db_url, clock)
    state = loop.handle.read_state()
    data = read_window(loop.handle, "7d")
    keys = keys_of_codes(state, data.actual_code)
    lookup = {code: key for key, code in state.codes.items()}
    assert keys.tolist() == [lookup.get(int(c)) for c in data.actual_code]
    assert keys[6] is None  # unlabeled
    codes = np.array([-2, -1, *sorted(lookup), max(lookup) + 1, 10**9])
    assert keys_of_codes(state, codes).tolist() == [lookup.get(int(c)) for c in codes]
    assert keys_of_codes(state, np.empty(0, np.int64)).tolist() == []
