"""Closing the loop on generated streams: retrain, gate, promote, reject, watch, roll back."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from feedback_loop import FeedbackLoop
from feedback_loop.deploy.candidates import RetrainOutcome
from feedback_loop.deploy.gate import GateConfig
from feedback_loop.retrain.dataset import DatasetSpec


def _batch(rng, n: int, flipped: bool) -> pd.DataFrame:
    X = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    signal = X.x1 + 0.5 * X.x2
    y = ((-signal if flipped else signal) + rng.normal(0, 0.3, n) > 0).astype(int)
    return X.assign(y=y)


def _serve(loop: FeedbackLoop, clock, model, data: pd.DataFrame, prefix: str) -> None:
    """Serve ``data`` with ``model`` over the last hours, labels a minute later."""
    version = str(loop.aliases().get("champion"))
    score = model.predict_proba(data[["x1", "x2"]])[:, 1]
    start = clock.now()
    stamps = [start + timedelta(seconds=10 * i) for i in range(len(data))]
    loop.log_predictions(
        data[["x1", "x2"]].assign(
            prediction_id=[f"{prefix}{i}" for i in range(len(data))],
            timestamp=stamps,
            prediction=[{"label": int(s >= 0.5), "score": float(s)} for s in score],
            version=version,
        )
    )
    clock.advance(timedelta(seconds=10 * len(data) + 60))
    loop.log_outcomes(
        pd.DataFrame(
            {
                "prediction_id": [f"{prefix}{i}" for i in range(len(data))],
                "actual": data.y.to_numpy(),
            }
        )
    )


@pytest.fixture
def loop(db_url, clock, tmp_path) -> FeedbackLoop:
    loop = FeedbackLoop(
        "life",
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


def _champion(loop: FeedbackLoop, rng) -> LogisticRegression:
    train = _batch(rng, 2000, flipped=False)
    model = LogisticRegression().fit(train[["x1", "x2"]], train.y)
    loop.register_model(
        model,
        features=train[["x1", "x2"]],
        predictions=model.predict_proba(train[["x1", "x2"]])[:, 1],
        actuals=train.y.to_numpy(),
        alias="champion",
        metrics={"holdout_accuracy": 0.9},
    )
    return model


def test_drift_retrain_gate_promote_recover(loop, clock) -> None:
    rng = np.random.default_rng(0)
    champion = _champion(loop, rng)
    _serve(loop, clock, champion, _batch(rng, 800, flipped=True), "a")
    degraded = loop.get_metrics(window="1h")["accuracy"]
    assert degraded < 0.3
    outcome = loop.trigger_retraining("concept flipped")
    assert isinstance(outcome, RetrainOutcome)
    assert outcome.promoted, outcome.gate
    assert loop.aliases()["champion"] == outcome.candidate == 2
    assert loop.events(kinds=["gate_passed"]) and loop.events(kinds=["promoted"])
    _serve(loop, clock, loop.load_model("champion"), _batch(rng, 800, flipped=True), "b")
    assert loop.get_metrics(window="2h", version="2")["accuracy"] > 0.85


def test_worse_candidate_is_rejected_with_the_failing_check(loop, clock) -> None:
    rng = np.random.default_rng(1)
    champion = _champion(loop, rng)
    _serve(loop, clock, champion, _batch(rng, 800, flipped=False), "a")
    loop.set_trainer(DummyClassifier(strategy="most_frequent"))
    outcome = loop.trigger_retraining("try a worse model")
    assert isinstance(outcome, RetrainOutcome)
    assert not outcome.promoted and outcome.candidate == 2
    assert loop.aliases()["champion"] == 1 and loop.aliases()["challenger"] == 2
    event = loop.events(kinds=["gate_rejected"])[0]
    failed = [c["name"] for c in event.evidence["checks"] if not c["passed"]]
    assert "improvement" in failed
    assert "improvement" in event.reason


def test_no_drift_no_promotion_without_significance(loop, clock) -> None:
    rng = np.random.default_rng(2)
    champion = _champion(loop, rng)
    _serve(loop, clock, champion, _batch(rng, 1000, flipped=False), "a")
    outcome = loop.trigger_retraining("scheduled check")
    assert isinstance(outcome, RetrainOutcome)
    assert not outcome.promoted
    assert loop.aliases()["champion"] == 1


def test_planted_regression_is_rolled_back(loop, clock) -> None:
    rng = np.random.default_rng(3)
    champion = _champion(loop, rng)
    _serve(loop, clock, champion, _batch(rng, 600, flipped=False), "a")
    bad_data = _batch(rng, 600, flipped=True)
    bad = LogisticRegression().fit(bad_data[["x1", "x2"]], bad_data.y)
    version = loop.register_model(bad)
    loop.promote(version, reason="planted regression")
    assert loop.watch_champion(min_samples=200).ready is False  # nothing labeled yet
    _serve(loop, clock, bad, _batch(rng, 600, flipped=False), "b")
    verdict = loop.watch_champion(min_samples=200)
    assert verdict is not None and verdict.regressed
    assert loop.aliases()["champion"] == 1
    event = loop.events(kinds=["rolled_back"])[0]
    assert event.evidence["from"] == version and event.evidence["to"] == 1


def test_policy_drives_should_retrain_with_an_event(loop, clock) -> None:
    from datetime import timedelta as td

    from feedback_loop.retrain.policy import AnyOf, PerformanceThreshold, Policy, Scheduled

    rng = np.random.default_rng(4)
    champion = _champion(loop, rng)  # holdout accuracy 0.9 is its baseline
    loop.set_policy(
        Policy(
            AnyOf(
                [PerformanceThreshold(max_drop=0.05, min_labeled=200), Scheduled(every=td(days=30))]
            ),
            cooldown=td(hours=6),
        )
    )
    _serve(loop, clock, champion, _batch(rng, 400, flipped=False), "a")
    assert not loop.should_retrain(window="1d")  # healthy, trained just now
    _serve(loop, clock, champion, _batch(rng, 400, flipped=True), "b")
    decision = loop.should_retrain(window="2h")
    assert decision and "baseline 0.90" in decision.reason
    assert loop.events(kinds=["retrain_due"])[0].evidence["fired"] is True
    loop.trigger_retraining(decision.reason)
    assert not loop.should_retrain(window="2h")  # the cooldown holds it back


def test_the_promoted_candidate_is_refit_on_its_whole_window(loop, clock) -> None:
    rng = np.random.default_rng(5)
    champion = _champion(loop, rng)
    _serve(loop, clock, champion, _batch(rng, 800, flipped=True), "a")
    outcome = loop.trigger_retraining("concept flipped")
    assert isinstance(outcome, RetrainOutcome) and outcome.promoted and outcome.gate
    gate = outcome.gate
    assert gate["refit"]["done"] and outcome.holdout_rows == 240  # 30 % of 800
    chosen = gate["chosen"]["window_share"]
    fitted = {c["window_share"] for c in gate["candidates"]}
    assert fitted == {1.0, 0.5, 0.25} and chosen in fitted  # 560 training rows: all three
    # the model in production learned the holdout too: its rows end where the log ends
    expected = round(560 * chosen) + 240
    assert outcome.train_rows == expected
    record = {v.version: v for v in loop.versions()}[outcome.candidate]
    assert record.train_rows == expected and record.info["refit_on_holdout"] is True
    improvement = next(c for c in gate["checks"] if c["name"] == "improvement")
    assert improvement["detail"]["candidates_tried"] == 3
    assert improvement["detail"]["alpha_corrected"] == pytest.approx(0.05 / 3)


def test_a_rejected_candidate_is_registered_as_judged_not_refit(loop, clock) -> None:
    rng = np.random.default_rng(6)
    champion = _champion(loop, rng)
    _serve(loop, clock, champion, _batch(rng, 800, flipped=False), "a")
    outcome = loop.trigger_retraining("scheduled check")
    assert isinstance(outcome, RetrainOutcome) and not outcome.promoted and outcome.gate
    assert outcome.gate["refit"]["done"] is False
    assert outcome.train_rows <= 560  # the judged twin, fitted without the 240 held out


def test_the_watch_compares_both_champions_on_the_same_rows(loop, clock) -> None:
    """A promotion just before the data turns to noise: both champions are equally lost on
    the rows since, so there is nothing to roll back (the unpaired watch compared the new
    champion's noise with the old one's good days and rolled back)."""
    rng = np.random.default_rng(8)
    champion = _champion(loop, rng)
    _serve(loop, clock, champion, _batch(rng, 600, flipped=False), "a")
    data = _batch(rng, 2000, flipped=False)
    twin = LogisticRegression(C=0.5).fit(data[["x1", "x2"]], data.y)
    loop.promote(loop.register_model(twin), reason="a retrained twin")
    noise = _batch(rng, 600, flipped=False)
    noise["y"] = rng.integers(0, 2, len(noise))
    _serve(loop, clock, twin, noise, "b")
    verdict = loop.watch_champion(min_samples=200)
    assert verdict is not None and verdict.ready and not verdict.regressed, verdict
    assert verdict.n_new == verdict.n_previous  # paired: the same rows
    assert verdict.new_error > 0.4 and verdict.previous_error > 0.4
    assert loop.aliases()["champion"] == 2 and loop.events(kinds=["watch_passed"])
    assert "same" in verdict.reason


def test_a_sliding_window_reaches_back_to_min_rows_and_stops_at_max_rows() -> None:
    from feedback_loop.retrain.dataset import assemble

    day = 86_400_000_000
    ts = np.arange(300, dtype=np.int64) * day  # one row a day
    X = pd.DataFrame({"x": np.arange(300.0)})
    y = np.arange(300) % 2
    now = int(ts[-1])
    spec = DatasetSpec(window=timedelta(days=28), min_rows=100)
    data = assemble(X, y, ts, spec, now)
    assert len(data) == 100 and data.X.x.iloc[-1] == 299.0  # not 29 rows: the newest 100
    capped = assemble(X, y, ts, DatasetSpec(window=None, max_rows=50, min_rows=10), now)
    assert len(capped) == 50 and capped.X.x.iloc[0] == 250.0
    train, holdout = data.split(0.25, max_rows=10)
    assert len(holdout) == 10 and len(train) == 90


def test_a_trainer_proposes_several_models_and_the_gate_counts_them(loop, clock) -> None:
    from feedback_loop.retrain.trainers import EstimatorTrainer

    rng = np.random.default_rng(9)
    champion = _champion(loop, rng)
    _serve(loop, clock, champion, _batch(rng, 800, flipped=True), "a")
    loop.set_trainer(EstimatorTrainer(LogisticRegression(), param_grid=[{"C": 0.01}]))
    outcome = loop.trigger_retraining("concept flipped")
    assert isinstance(outcome, RetrainOutcome) and outcome.gate and outcome.promoted
    names = {c["name"] for c in outcome.gate["candidates"]}
    assert names == {"model", "C=0.01"} and len(outcome.gate["candidates"]) == 6
    improvement = next(c for c in outcome.gate["checks"] if c["name"] == "improvement")
    assert improvement["detail"]["candidates_tried"] == 6
    record = {v.version: v for v in loop.versions()}[outcome.candidate]
    assert record.info["candidate"] == outcome.gate["chosen"]["name"]
