"""Windowed metrics read back from the log agree with scikit-learn on the same rows."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from feedback_loop import FeedbackLoop


def _stream(clock, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    score = rng.random(n)
    actual = (rng.random(n) < score * 0.8 + 0.1).astype(int)
    # spread over three days, not aligned to hours, in time order
    offsets = np.sort(rng.random(n))[::-1] * 3 * 86400
    return pd.DataFrame(
        {
            "prediction_id": [f"p{i}" for i in range(n)],
            "timestamp": [clock.now() - timedelta(seconds=float(s)) for s in offsets],
            "prediction": [{"label": int(s >= 0.5), "score": float(s)} for s in score],
            "actual": actual,
            "score": score,
        }
    )


def test_binary_metrics_match_sklearn(db_url, clock) -> None:
    data = _stream(clock, 3000, seed=1)
    loop = FeedbackLoop("bin", tracking_db=db_url, clock=clock, task="binary")
    loop.log_predictions(data[["prediction_id", "timestamp", "prediction"]])
    loop.log_outcomes(data[["prediction_id", "actual"]])
    window = data[data.timestamp >= clock.now() - timedelta(days=2)]
    got = loop.get_metrics(window="2d")
    y, s = window.actual.to_numpy(), window.score.to_numpy()
    pred = (s >= 0.5).astype(int)
    assert got["predictions"] == len(window)
    assert got["labeled"] == len(window)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, s))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, s))
    assert got["brier"] == pytest.approx(skm.brier_score_loss(y, s))


def test_blocks_follow_relabeling_and_new_rows(db_url, clock) -> None:
    data = _stream(clock, 500, seed=2)
    loop = FeedbackLoop("relabel", tracking_db=db_url, clock=clock, task="binary")
    loop.log_predictions(data[["prediction_id", "timestamp", "prediction"]])
    loop.log_outcomes(data[["prediction_id", "actual"]])
    before = loop.get_metrics(window="3d")  # builds the blocks
    flipped = data.iloc[:100].assign(actual=1 - data.actual.iloc[:100])
    clock.advance(timedelta(seconds=1))
    loop.log_outcomes(flipped[["prediction_id", "actual"]])
    after = loop.get_metrics(window="3d")
    y = np.concatenate([flipped.actual.to_numpy(), data.actual.iloc[100:].to_numpy()])
    pred = (data.score.to_numpy() >= 0.5).astype(int)
    assert after["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert after["accuracy"] != before["accuracy"]
    # an older prediction logged late lands in an already-built block
    loop.log_prediction(
        "late",
        prediction={"label": 1, "score": 0.9},
        actual=0,
        timestamp=clock.now() - timedelta(days=1, minutes=7),
    )
    assert loop.get_metrics(window="3d")["predictions"] == before["predictions"] + 1


def test_regression_metrics_match_sklearn(db_url, clock) -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(10, 2, 800)
    pred = y + rng.normal(0, 1, 800)
    loop = FeedbackLoop("reg", tracking_db=db_url, clock=clock, task="regression")
    loop.log_predictions(
        pd.DataFrame(
            {
                "prediction_id": [f"r{i}" for i in range(800)],
                "timestamp": [clock.now() - timedelta(minutes=3 * i) for i in range(800)],
                "prediction": pred,
                "actual": y,
            }
        )
    )
    got = loop.get_metrics(window="7d")
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert got["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, pred))
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred))


def test_multiclass_macro_metrics_match_sklearn(db_url, clock) -> None:
    rng = np.random.default_rng(4)
    classes = np.array(["cat", "dog", "eel"])
    y = classes[rng.integers(0, 3, 600)]
    pred = np.where(rng.random(600) < 0.7, y, classes[rng.integers(0, 3, 600)])
    loop = FeedbackLoop("multi", tracking_db=db_url, clock=clock)
    loop.log_predictions(
        [
            {
                "prediction_id": f"m{i}",
                "prediction": p,
                "actual": t,
                "timestamp": clock.now() - timedelta(minutes=i),
            }
            for i, (p, t) in enumerate(zip(pred, y, strict=True))
        ]
    )
    got = loop.get_metrics(window="1d")
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred, average="macro"))


def test_label_delay_percentiles(db_url, clock) -> None:
    loop = FeedbackLoop("delay", tracking_db=db_url, clock=clock, task="binary")
    start = clock.now() - timedelta(days=2)
    delays = np.arange(1, 101) * 600.0
    loop.log_predictions(
        [{"prediction_id": f"d{i}", "prediction": 1, "timestamp": start} for i in range(100)]
    )
    loop.log_outcomes(
        [
            {"prediction_id": f"d{i}", "actual": 1, "timestamp": start + timedelta(seconds=d)}
            for i, d in enumerate(delays)
        ]
    )
    got = loop.get_metrics(window="7d")
    assert got["label_delay_p50_s"] == pytest.approx(np.percentile(delays, 50))
    assert got["label_delay_p95_s"] == pytest.approx(np.percentile(delays, 95))
    assert got["label_coverage"] == 1.0


def test_multiclass_probability_metrics_match_sklearn(db_url, clock) -> None:
    rng = np.random.default_rng(5)
    classes = ["a", "b", "c"]
    raw = rng.dirichlet([2, 2, 2], 300)
    y = np.array([rng.choice(3, p=p) for p in raw])
    rows = [
        {
            "prediction_id": f"q{i}",
            "prediction": {"probabilities": dict(zip(classes, map(float, p), strict=True))},
            "actual": classes[t],
            "timestamp": clock.now() - timedelta(minutes=i),
        }
        for i, (p, t) in enumerate(zip(raw, y, strict=True))
    ]
    loop = FeedbackLoop("proba", tracking_db=db_url, clock=clock)
    loop.log_predictions(rows)
    got = loop.get_metrics(window="1d")
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, raw.argmax(axis=1)))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, raw, labels=[0, 1, 2]))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, raw, multi_class="ovr"))
