"""should_retrain, trigger_retraining and the events they leave."""

from __future__ import annotations

import pytest

from feedback_loop import FeedbackLoop, UnknownModelError, ValidationError


def _log(loop: FeedbackLoop, n: int, correct: int) -> None:
    loop.log_predictions(
        [
            {"prediction_id": f"p{i}", "prediction": 1, "actual": 1 if i < correct else 0}
            for i in range(n)
        ]
    )


def test_three_samples_never_trigger(db_url, clock) -> None:
    loop = FeedbackLoop("m", tracking_db=db_url, clock=clock, retrain_threshold=0.95)
    _log(loop, 3, correct=0)
    decision = loop.should_retrain()
    assert not decision
    assert decision.labeled == 3 and decision.min_labeled == 100
    assert "need 100" in decision.reason
    assert loop.events(kinds=["retrain_due"]) == []


def test_breach_fires_with_its_numbers_and_event(db_url, clock) -> None:
    loop = FeedbackLoop("m", tracking_db=db_url, clock=clock, retrain_threshold=0.9, min_labeled=50)
    _log(loop, 100, correct=80)
    decision = loop.should_retrain()
    assert decision and decision.value == pytest.approx(0.8) and decision.threshold == 0.9
    event = loop.events(kinds=["retrain_due"])[0]
    assert event.evidence["value"] == pytest.approx(0.8)
    assert "0.8 < threshold 0.9" in event.reason
    healthy = FeedbackLoop(
        "ok", tracking_db=db_url, clock=clock, retrain_threshold=0.7, min_labeled=50
    )
    _log(healthy, 100, correct=80)
    assert not healthy.should_retrain()


def test_error_metrics_breach_upwards(db_url, clock) -> None:
    loop = FeedbackLoop(
        "reg",
        tracking_db=db_url,
        clock=clock,
        retrain_threshold=0.5,
        primary_metric="mae",
        min_labeled=10,
    )
    loop.log_predictions(
        [{"prediction_id": f"r{i}", "prediction": 1.5, "actual": 2.5} for i in range(20)]
    )
    decision = loop.should_retrain()
    assert decision and decision.metric == "mae" and decision.value == pytest.approx(1.0)


def test_trigger_without_trainer_queues_a_job(db_url, clock) -> None:
    loop = FeedbackLoop("m", tracking_db=db_url, clock=clock, task="binary")
    with pytest.raises(UnknownModelError):  # nothing logged yet: a typo, not a job
        loop.trigger_retraining("drifted", actor="alice")
    loop.log_prediction(prediction_id="p0", prediction=1)
    event = loop.trigger_retraining("drifted", actor="alice")
    assert event.kind == "retrain_requested" and event.actor == "alice"
    assert event.evidence["job"] is not None
    again = loop.trigger_retraining("again")
    assert again.evidence["job"] is None  # one queued job per model at a time


def test_trigger_with_a_trainer_runs_it_on_the_log(db_url, clock, tmp_path) -> None:
    loop = FeedbackLoop(
        "m", tracking_db=db_url, clock=clock, task="binary", artifact_root=str(tmp_path)
    )
    seen = []

    def train(dataset):
        seen.append(len(dataset))
        raise RuntimeError("out of memory")

    loop.set_trainer(train)
    loop.log_prediction(prediction_id="first", prediction=1, features={"x": 0.0})
    outcome = loop.trigger_retraining()
    assert outcome.candidate is None and "need 100" in outcome.reason  # nothing labeled yet
    loop.log_predictions(
        [
            {"prediction_id": f"p{i}", "prediction": i % 2, "actual": i % 2, "x": float(i)}
            for i in range(300)
        ]
    )
    outcome = loop.trigger_retraining()
    assert seen == [225]  # 75 % of the 300 labeled rows; the newest 25 % are held out
    assert "out of memory" in outcome.reason
    assert "out of memory" in loop.events(kinds=["retrain_failed"])[0].reason
    with pytest.raises(ValidationError, match="trainer"):
        loop.set_trainer(42)
