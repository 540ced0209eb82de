"""The default policy's retrain budget, through the loop: after a promotion, no retraining for
14 days however many labels arrive (the cost of the loop must not grow with its traffic)."""

from __future__ import annotations

import itertools
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from feedback_loop import FeedbackLoop
from feedback_loop.backtest import ReplayConfig, replay
from feedback_loop.deploy.candidates import RetrainOutcome
from feedback_loop.deploy.gate import GateConfig
from feedback_loop.retrain.dataset import DatasetSpec
from feedback_loop.retrain.policy import PolicyDecision


def _batch(rng: np.random.Generator, n: int, flipped: bool) -> pd.DataFrame:
    X = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    signal = X.x1 + 0.5 * X.x2
    y = ((-signal if flipped else signal) + rng.normal(0, 0.3, n) > 0).astype(int)
    return X.assign(y=y)


def _serve(loop: FeedbackLoop, clock, model, data: pd.DataFrame, prefix: str) -> None:
    """Serve ``data`` with the champion, a row every 10 seconds, labels a minute later."""
    version = str(loop.aliases().get("champion"))
    score = model.predict_proba(data[["x1", "x2"]])[:, 1]
    start = clock.now()
    loop.log_predictions(
        data[["x1", "x2"]].assign(
            prediction_id=[f"{prefix}{i}" for i in range(len(data))],
            timestamp=[start + timedelta(seconds=10 * i) for i in range(len(data))],
            prediction=[{"label": int(s >= 0.5), "score": float(s)} for s in score],
            version=version,
        )
    )
    clock.advance(timedelta(seconds=10 * len(data) + 60))
    loop.log_outcomes(
        pd.DataFrame(
            {"prediction_id": [f"{prefix}{i}" for i in range(len(data))], "actual": data.y}
        )
    )


@pytest.fixture
def loop(db_url, clock, tmp_path) -> FeedbackLoop:
    """A loop with no policy of its own: ``should_retrain`` uses the default policy."""
    loop = FeedbackLoop(
        "budget",
        tracking_db=db_url,
        clock=clock,
        task="binary",
        artifact_root=str(tmp_path / "artifacts"),
    )
    loop.set_trainer(
        LogisticRegression(),
        dataset=DatasetSpec(window=timedelta(hours=3), holdout=0.3),
        gate=GateConfig(),
    )
    return loop


def test_labels_do_not_end_the_default_cooldown_after_a_promotion(loop, clock) -> None:
    rng = np.random.default_rng(7)
    train = _batch(rng, 2000, flipped=False)
    first = LogisticRegression().fit(train[["x1", "x2"]], train.y)
    loop.register_model(
        first,
        features=train[["x1", "x2"]],
        predictions=first.predict_proba(train[["x1", "x2"]])[:, 1],
        actuals=train.y.to_numpy(),
        alias="champion",
        metrics={"holdout_accuracy": 0.9},
    )
    _serve(loop, clock, first, _batch(rng, 800, flipped=True), "a")
    triggered = clock.now()
    outcome = loop.trigger_retraining("concept flipped", actor="policy")
    assert isinstance(outcome, RetrainOutcome) and outcome.promoted, outcome.gate
    # 12 days later the concept flips back, and 5,200 labeled rows arrive within a day: the
    # rules fire, and the labels alone would once have ended the cooldown
    clock.advance(timedelta(days=12))
    _serve(loop, clock, loop.load_model("champion"), _batch(rng, 5200, flipped=False), "b")
    evidence = loop.policy_evidence()
    assert evidence.last_outcome == "promoted" and evidence.new_labels_since_trigger >= 5000
    held = loop.should_retrain()
    assert isinstance(held, PolicyDecision)
    assert not held and held.cooled_down
    assert held.blocked_until is not None
    assert abs(held.blocked_until - (triggered + timedelta(days=14))) < timedelta(minutes=1)
    assert "cooldown 2w blocks retraining" in held.reason and "would fire" in held.reason
    clock.set(triggered + timedelta(days=14, minutes=1))
    due = loop.should_retrain()
    assert due and not due.cooled_down


def test_a_replay_explains_each_of_the_loops_retrainings() -> None:
    rng = np.random.default_rng(11)
    per_day, days, flip = 60, 50, 25
    n = per_day * days
    x = rng.normal(size=(n, 2))
    sign = np.where(np.arange(n) < flip * per_day, 1.0, -1.0)
    stream = pd.DataFrame(
        {
            "timestamp": pd.Timestamp("2024-01-01", tz="UTC")
            + pd.to_timedelta(np.arange(n) * (86_400 / per_day), unit="s"),
            "a": x[:, 0],
            "b": x[:, 1],
            "target": (sign * x[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(int),
        }
    )
    config = ReplayConfig(features=["a", "b"], initial_rows=600, label_delay=timedelta(days=1))
    result = replay(stream, LogisticRegression, "loop", config)
    log = result.retrain_log
    assert len(log) == result.retrains >= 1
    outcomes = [entry.outcome for entry in log]
    assert outcomes.count("promoted") == result.promotions
    assert outcomes.count("rejected") == result.rejections
    assert log[0].since_last is None and log[0].last_outcome is None
    assert all(entry.rules and entry.reason for entry in log)
    assert log[0].time >= stream.timestamp.iloc[flip * per_day]  # nothing to do before the flip
    for before, entry in itertools.pairwise(log):
        assert entry.since_last == entry.time - before.time
        assert entry.last_outcome == before.outcome
    assert result.summary()["retrains"] == len(log)
    assert log[0].to_dict()["since_last"] is None
