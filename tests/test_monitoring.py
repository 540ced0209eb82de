"""Drift checks, label-free estimates and segments, read from the log."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from feedback_loop import FeedbackLoop, ValidationError


def _features(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "a": rng.normal(shift, 1.0, n),
            "b": rng.normal(0.0, 1.0, n),
            "c": rng.exponential(1.0, n) * (1 + shift),
            "d": rng.uniform(0, 1, n),
            "city": rng.choice(
                ["rome", "oslo", "lima"], n, p=[0.5, 0.3, 0.2] if not shift else [0.2, 0.3, 0.5]
            ),
        }
    )


def _log(loop: FeedbackLoop, clock, frame: pd.DataFrame, rng, prefix: str) -> np.ndarray:
    n = len(frame)
    score = 1 / (1 + np.exp(-frame["a"].to_numpy()))
    actual = (rng.random(n) < score).astype(int)
    rows = frame.assign(
        prediction_id=[f"{prefix}{i}" for i in range(n)],
        timestamp=[clock.now() - timedelta(minutes=n - i) for i in range(n)],
        prediction=[{"label": int(s >= 0.5), "score": float(s)} for s in score],
        actual=actual,
        region=np.where(np.arange(n) % 4 == 0, "north", "south"),
    )
    rows["tags"] = [{"region": r} for r in rows.pop("region")]
    features = rows[["a", "b", "c", "d", "city"]].to_dict("records")
    rows = rows.drop(columns=["a", "b", "c", "d", "city"]).assign(features=features)
    loop.log_predictions(rows)
    return actual


def test_drift_found_in_shifted_columns_only(db_url, clock) -> None:
    rng = np.random.default_rng(0)
    loop = FeedbackLoop("m", tracking_db=db_url, clock=clock, task="binary")
    reference = _features(rng, 3000)
    ref_score = 1 / (1 + np.exp(-reference["a"].to_numpy()))
    loop.set_reference(
        reference, predictions=ref_score, actuals=(rng.random(3000) < ref_score).astype(int)
    )
    _log(loop, clock, _features(rng, 800), rng, "same")
    # 5 features at alpha 0.05: corrected for multiple testing, no feature is flagged
    calm = loop.check_drift(window="1d", correction="bonferroni")
    assert not calm.drifted
    assert [c for c in calm.drifted_columns if not c.startswith("__")] == []
    before = len(loop.events(kinds=["drift_detected"]))

    clock.advance(timedelta(days=2))
    _log(loop, clock, _features(rng, 800, shift=1.0), rng, "shifted")
    report = loop.check_drift(window="1d")
    assert {"a", "c", "city", "__prediction__"} <= set(report.drifted_columns)
    assert "b" not in report.drifted_columns and "d" not in report.drifted_columns
    assert report.drifted  # 3 of 5 features
    assert report.columns["a"].method == "calibrated"
    # the family-wise 1% is split over every column checked (five features, prediction, label)
    assert report.columns["a"].threshold == pytest.approx(0.01 / len(report.columns))
    frame = report.to_frame()
    assert bool(frame.loc["a", "drifted"]) is True
    events = loop.events(kinds=["drift_detected"])
    assert len(events) == before + 1
    assert set(events[0].evidence["columns"]) == set(report.drifted_columns)


def test_reference_from_a_logged_window(db_url, clock) -> None:
    rng = np.random.default_rng(1)
    loop = FeedbackLoop("w", tracking_db=db_url, clock=clock, task="binary")
    _log(loop, clock, _features(rng, 600), rng, "ref")
    info = loop.set_reference(window="1d")
    assert info["rows"] == 600
    clock.advance(timedelta(days=1))
    _log(loop, clock, _features(rng, 600, shift=1.0), rng, "cur")
    assert "a" in loop.check_drift(window="12h").drifted_columns
    with pytest.raises(ValidationError, match="reference"):
        loop.check_drift(reference="nope")


def test_label_free_estimate_tracks_realised_accuracy(db_url, clock) -> None:
    rng = np.random.default_rng(2)
    loop = FeedbackLoop("e", tracking_db=db_url, clock=clock, task="binary", retrain_threshold=0.9)
    reference = _features(rng, 4000)
    ref_score = 1 / (1 + np.exp(-reference["a"].to_numpy()))
    loop.set_reference(
        reference, predictions=ref_score, actuals=(rng.random(4000) < ref_score).astype(int)
    )
    shifted = _features(rng, 3000, shift=0.1)
    shifted["a"] = shifted["a"] * 0.3  # scores crowd around 0.5: accuracy drops
    actual = _log(loop, clock, shifted, rng, "x")
    estimate = loop.estimate_performance(window="3d")
    score = 1 / (1 + np.exp(-shifted["a"].to_numpy()))
    realised = skm.accuracy_score(actual, (score >= 0.5).astype(int))
    assert estimate["n"] == 3000 and estimate["calibrated"]
    assert estimate["accuracy"] == pytest.approx(realised, abs=0.04)
    assert loop.events(kinds=["estimate_breach"])  # well under 0.9


def test_segments_worst_first(db_url, clock) -> None:
    loop = FeedbackLoop("s", tracking_db=db_url, clock=clock, retrain_threshold=0.8)
    rows = []
    for i in range(400):
        region = ["eu", "us", "apac", "tiny"][i % 4] if i < 396 else "tiny"
        wrong = (region == "us" and i % 8 == 1) or region == "tiny"
        rows.append(
            {
                "prediction_id": f"p{i}",
                "prediction": 1,
                "actual": 0 if wrong else 1,
                "tags": {"region": region},
                "features": {"plan": "pro" if i % 2 else "free"},
            }
        )
    loop.log_predictions(rows)
    found = loop.segments(window="1d", by=["region"], min_support=50)
    assert [r["segment"]["region"] for r in found][:2] == ["tiny", "us"]
    assert found[1]["accuracy"] == pytest.approx(49 / 99)  # i = 1, 9, ..., 393 wrong
    assert sorted(r["segment"]["region"] for r in found[2:]) == ["apac", "eu"]
    assert found[0]["accuracy"] == 0.0 and found[0]["n"] == 99 + 4
    by_two = loop.segments(window="1d", by=["region", "plan"], min_support=40)
    assert all(r["n"] >= 40 for r in by_two)
    assert loop.events(kinds=["weak_segments"])[0].evidence["metric"] == "accuracy"
    with pytest.raises(ValidationError, match="by"):
        loop.segments(window="1d", by=["colour"])


@pytest.mark.parametrize("detector", ["adwin", "ddm", "hddm_a", "page_hinkley"])
def test_concept_drift_found_after_the_change(db_url, clock, detector) -> None:
    rng = np.random.default_rng(3)
    n, change = 3000, 2000
    wrong = np.concatenate([rng.random(change) < 0.1, rng.random(n - change) < 0.45])
    start = clock.now() - timedelta(days=2)
    loop = FeedbackLoop("c", tracking_db=db_url, clock=clock)
    loop.log_predictions(
        [
            {
                "prediction_id": f"k{i}",
                "prediction": 1,
                "actual": 0 if w else 1,
                "timestamp": start + timedelta(seconds=30 * i),
            }
            for i, w in enumerate(wrong)
        ]
    )
    result = loop.detect_concept_drift(window="7d", detector=detector)
    changes = [pd.Timestamp(t) for t in result["change_points"]]
    at_change = pd.Timestamp(start + timedelta(seconds=30 * change))
    assert changes, result
    first_after = min(c for c in changes if c >= at_change)
    assert first_after - at_change <= pd.Timedelta(seconds=30 * 400)
    assert loop.events(kinds=["concept_drift"])
