"""should_retrain, trigger_retraining and the events they leave."""

from __future__ import annotations

import pytest

from feedback_loop import FeedbackLoop, ValidationError


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


def test_trigger_runs_the_trainer_and_records_outcome(db_url, clock) -> None:
    loop = FeedbackLoop("m", tracking_db=db_url, clock=clock)
    calls = []
    loop.set_trainer(calls.append)
    event = loop.trigger_retraining("drifted", actor="alice")
    assert event.kind == "retrain_requested" and event.actor == "alice"
    assert calls == [{"model": "m", "reason": "drifted", "event_id": event.id}]
    assert [e.kind for e in loop.events()][:2] == ["retrain_completed", "retrain_requested"]

    def broken(request):
        raise RuntimeError("out of memory")

    loop.set_trainer(broken)
    with pytest.raises(RuntimeError):
        loop.trigger_retraining()
    failed = loop.events(kinds=["retrain_failed"])[0]
    assert "out of memory" in failed.reason
    with pytest.raises(ValidationError, match="trainer"):
        loop.set_trainer("not callable")  # type: ignore[arg-type]
