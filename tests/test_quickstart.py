"""The seed's quick start, run as written (only the database URL differs)."""

from __future__ import annotations

import textwrap

from feedback_loop import FeedbackLoop

QUICK_START = textwrap.dedent(
    """
    from feedback_loop import FeedbackLoop

    # Initialize feedback loop
    feedback = FeedbackLoop(
        model_name='nba-game-predictor',
        tracking_db=TRACKING_DB,
        retrain_threshold=0.95  # Trigger when accuracy < 95%
    )

    # Log prediction and actual outcome
    feedback.log_prediction(
        game_id='2024-10-18-LAL-BOS',
        prediction={'winner': 'LAL', 'confidence': 0.78},
        actual={'winner': 'BOS'}  # Logged after game
    )

    # Check if retraining needed
    if feedback.should_retrain():
        print("Model performance degraded - triggering retrain")
        feedback.trigger_retraining()

    # Get performance metrics
    metrics = feedback.get_metrics(window='7d')
    print(f"7-day accuracy: {metrics['accuracy']:.2%}")
    """
)


def test_quick_start_runs_as_written(db_url: str, capsys) -> None:
    exec(QUICK_START, {"TRACKING_DB": db_url})
    out = capsys.readouterr().out
    assert "7-day accuracy: 0.00%" in out
    # one labeled prediction is far below the minimum sample: no retrain on three samples
    assert "triggering retrain" not in out
    loop = FeedbackLoop("nba-game-predictor", tracking_db=db_url)
    metrics = loop.get_metrics(window="7d")
    assert metrics["predictions"] == 1
    assert metrics["labeled"] == 1
    assert loop.task == "multiclass"


def test_quick_start_retrains_when_accuracy_falls(db_url: str) -> None:
    loop = FeedbackLoop("nba", tracking_db=db_url, retrain_threshold=0.95, min_labeled=10)
    rows = [
        {
            "game_id": f"g{i}",
            "prediction": {"winner": "LAL", "confidence": 0.7},
            "actual": {"winner": "LAL" if i % 2 else "BOS"},
        }
        for i in range(20)
    ]
    loop.log_predictions(rows)
    decision = loop.should_retrain()
    assert decision
    assert decision.value == 0.5
    assert decision.labeled == 20
    event = loop.trigger_retraining()
    assert event.kind == "retrain_requested"
    kinds = [e.kind for e in loop.events()]
    assert kinds[:2] == ["retrain_requested", "retrain_due"]
