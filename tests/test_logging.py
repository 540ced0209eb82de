"""Logging predictions and outcomes, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from feedback_loop import DuplicatePredictionError, FeedbackLoop, ValidationError


def make_loop(db_url: str, clock, **kwargs) -> FeedbackLoop:
    return FeedbackLoop("model-a", tracking_db=db_url, clock=clock, **kwargs)


def test_id_keyword_names_the_prediction(db_url, clock) -> None:
    loop = make_loop(db_url, clock)
    result = loop.log_prediction(order_id="o-1", prediction=1)
    assert result.prediction_ids == ["o-1"]
    generated = loop.log_prediction(prediction=0)
    assert len(generated.prediction_ids[0]) == 32
    with pytest.raises(ValidationError, match="prediction_id"):
        loop.log_prediction(order_id="a", user_id="b", prediction=1)
    with pytest.raises(TypeError, match="colour"):
        loop.log_prediction(prediction=1, colour="red")
    assert loop.get_metrics()["predictions"] == 2


def test_identical_retry_is_accepted_and_different_content_refused(db_url, clock) -> None:
    loop = make_loop(db_url, clock)
    first = loop.log_prediction("p1", prediction=1, features={"x": 1.5})
    assert (first.inserted, first.retried) == (1, 0)
    clock.advance(timedelta(seconds=5))  # the default time moves; a retry is still identical
    again = loop.log_prediction("p1", prediction=1, features={"x": 1.5})
    assert (again.inserted, again.retried) == (0, 1)
    with pytest.raises(DuplicatePredictionError, match="p1"):
        loop.log_prediction("p1", prediction=0, features={"x": 1.5})
    assert loop.get_metrics()["predictions"] == 1


def test_bulk_is_all_or_nothing_and_names_row_and_field(db_url, clock) -> None:
    loop = make_loop(db_url, clock)
    rows = [{"prediction_id": f"p{i}", "prediction": 1, "latency_ms": 3.0} for i in range(10)]
    rows[7]["latency_ms"] = "slow"
    with pytest.raises(ValidationError) as info:
        loop.log_predictions(rows)
    assert info.value.row == 7
    assert info.value.field == "latency_ms"
    assert loop.get_metrics()["predictions"] == 0

    loop.log_predictions([{"prediction_id": "p3", "prediction": 0}])
    batch = [{"prediction_id": f"p{i}", "prediction": 1} for i in range(5)]
    with pytest.raises(DuplicatePredictionError):
        loop.log_predictions(batch)  # p3 differs: nothing of this batch is stored
    assert loop.get_metrics()["predictions"] == 1


def test_bulk_inputs_list_dataframe_arrow(db_url, clock) -> None:
    loop = make_loop(db_url, clock)
    frame = pd.DataFrame(
        {
            "prediction_id": ["a", "b", "c"],
            "prediction": [1, 0, 1],
            "actual": [1, 1, 0],
            "x": [0.1, 0.2, np.nan],
            "region": ["eu", "us", "eu"],
        }
    )
    assert loop.log_predictions(frame).inserted == 3
    arrow = pa.table({"prediction_id": ["d", "e"], "prediction": [1, 1], "x": [1.0, 2.0]})
    assert loop.log_predictions(arrow).inserted == 2
    dicts = [{"prediction_id": "f", "prediction": 0, "features": {"x": 3.0}, "tags": {"r": "eu"}}]
    assert loop.log_predictions(dicts).inserted == 1
    metrics = loop.get_metrics()
    assert metrics["predictions"] == 6
    assert metrics["labeled"] == 3
    assert metrics["accuracy"] == pytest.approx(1 / 3)


def test_in_batch_duplicates(db_url, clock) -> None:
    loop = make_loop(db_url, clock)
    same = [{"prediction_id": "a", "prediction": 1}, {"prediction_id": "a", "prediction": 1}]
    assert loop.log_predictions(same).inserted == 1
    clash = [{"prediction_id": "b", "prediction": 1}, {"prediction_id": "b", "prediction": 0}]
    with pytest.raises(ValidationError) as info:
        loop.log_predictions(clash)
    assert info.value.row == 1


def test_bad_inputs_name_the_field(db_url, clock) -> None:
    loop = make_loop(db_url, clock)
    with pytest.raises(ValidationError, match="timestamp"):
        loop.log_prediction(prediction=1, timestamp="not a time")
    with pytest.raises(ValidationError, match="prediction"):
        loop.log_prediction(prediction=None)
    with pytest.raises(ValidationError, match="features"):
        loop.log_prediction(prediction=1, features=[1, 2])
    with pytest.raises(ValidationError) as info:
        loop.log_predictions(
            [{"prediction": 1, "timestamp": "2024-01-01"}, {"prediction": 1, "timestamp": "x"}]
        )
    assert (info.value.row, info.value.field) == (1, "timestamp")
    with pytest.raises(ValidationError, match="source"):
        loop.log_outcome("p", 1, source="rumour")


def test_later_outcome_supersedes_and_history_is_kept(db_url, clock) -> None:
    loop = make_loop(db_url, clock)
    loop.log_prediction("p1", prediction=1)
    loop.log_outcome("p1", 0, timestamp=clock.now() + timedelta(hours=1))
    assert loop.get_metrics(window="all")["accuracy"] == 0.0
    loop.log_outcome("p1", 1, source="review", timestamp=clock.now() + timedelta(hours=2))
    assert loop.get_metrics(window="all")["accuracy"] == 1.0
    # an older outcome arriving late does not override the newer one
    loop.log_outcome("p1", 0, timestamp=clock.now() + timedelta(minutes=30))
    metrics = loop.get_metrics(window="all")
    assert metrics["accuracy"] == 1.0
    # label delay is measured to the first outcome
    assert metrics["label_delay_p50_s"] == pytest.approx(1800.0)
    from feedback_loop.store.engine import read_transaction
    from feedback_loop.store.outcomes import outcome_history

    with read_transaction(loop.engine) as conn:
        history = outcome_history(conn, loop.handle.model_state().id, "p1")
    assert [h["source"] for h in history] == ["natural", "natural", "review"]


def test_outcome_before_prediction_is_joined_later(db_url, clock) -> None:
    loop = make_loop(db_url, clock, task="binary")
    result = loop.log_outcomes(
        [{"prediction_id": "early", "actual": 1}, {"prediction_id": "x", "actual": 0}]
    )
    assert (result.matched, result.unmatched) == (0, 2)
    assert loop.unmatched_outcomes() == 2
    logged = loop.log_prediction("early", prediction=1)
    assert logged.joined == 1
    assert loop.unmatched_outcomes() == 1
    assert loop.get_metrics()["labeled"] == 1


def test_thumbs_feedback(db_url, clock) -> None:
    loop = make_loop(db_url, clock)
    loop.log_predictions([{"prediction_id": f"p{i}", "prediction": i % 2} for i in range(4)])
    loop.log_outcome("p0", feedback="up", source="feedback")
    loop.log_outcome("p1", feedback="down", source="feedback")
    loop.log_outcome("p2", feedback=True, source="feedback")
    metrics = loop.get_metrics()
    assert metrics["labeled"] == 3
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ValidationError, match="feedback"):
        loop.log_outcome("p3", feedback="meh", source="feedback")


def test_task_inference(db_url, clock) -> None:
    reg = FeedbackLoop("reg", tracking_db=db_url, clock=clock)
    reg.log_prediction(prediction=3.7, actual=4.0)
    assert reg.task == "regression"
    assert reg.get_metrics()["mae"] == pytest.approx(0.3)
    multi = FeedbackLoop("multi", tracking_db=db_url, clock=clock)
    multi.log_prediction(prediction="cat", actual="dog")
    assert multi.task == "multiclass"
    binary = FeedbackLoop("bin", tracking_db=db_url, clock=clock)
    binary.log_prediction(prediction=True, actual=True)
    assert binary.task == "binary"
    with pytest.raises(ValidationError, match="task"):
        FeedbackLoop("reg", tracking_db=db_url, task="binary").log_prediction(prediction=1)


def test_windows_versions_and_segments(db_url, clock) -> None:
    loop = make_loop(db_url, clock)
    start = clock.now()
    rows = []
    for day in range(14):
        for i in range(10):
            rows.append(
                {
                    "prediction_id": f"d{day}-{i}",
                    "timestamp": start - timedelta(days=day, hours=1),
                    "prediction": 1,
                    "actual": 1 if (day < 7 or i < 5) else 0,
                    "version": "2" if day < 3 else "1",
                    "tags": {"region": "eu" if i % 2 else "us"},
                }
            )
    loop.log_predictions(rows)
    week = loop.get_metrics(window="7d")
    assert week["predictions"] == 70
    assert week["accuracy"] == 1.0
    both = loop.get_metrics(window=timedelta(days=14))
    assert both["predictions"] == 140
    assert both["accuracy"] == pytest.approx(105 / 140)
    older = loop.get_metrics(window=(start - timedelta(days=14), start - timedelta(days=7)))
    assert older["predictions"] == 70
    assert loop.get_metrics(window="all", version="2")["predictions"] == 30
    eu = loop.get_metrics(window="all", segment={"region": "eu"})
    assert eu["predictions"] == 70
    with pytest.raises(ValidationError, match="window"):
        loop.get_metrics(window="fortnight")


def test_events_record_the_trail(db_url, clock) -> None:
    loop = make_loop(db_url, clock)
    loop.record_event("note", reason="hello", evidence={"n": 3})
    clock.advance(timedelta(minutes=1))
    loop.record_event("other", reason="later")
    events = loop.events()
    assert [e.kind for e in events] == ["other", "note"]
    assert events[1].evidence == {"n": 3}
    assert loop.events(kinds=["note"])[0].reason == "hello"
    assert events[0].time == datetime(2024, 10, 18, 12, 1, tzinfo=UTC)


def test_features_round_trip_exactly(db_url, clock) -> None:
    loop = make_loop(db_url, clock)
    frame = pd.DataFrame(
        {
            "prediction_id": ["a", "b"],
            "prediction": [1, 0],
            "x": [0.1 + 0.2, np.nan],
            "n": [3, 4],
            "city": ["Zürich", None],
            "flag": [True, False],
        }
    )
    loop.log_predictions(frame)
    stored = loop.get_prediction("a")
    assert stored is not None
    assert stored["features"] == {"city": "Zürich", "flag": True, "n": 3.0, "x": 0.1 + 0.2}
    assert loop.get_prediction("b")["features"]["x"] is None
    loop.log_prediction("c", prediction=1, features={"deep": {"k": [1, 2]}}, tags={"r": "eu"})
    stored = loop.get_prediction("c")
    assert stored["features"] == {"deep": {"k": [1, 2]}}
    assert stored["tags"] == {"r": "eu"}
    assert stored["actual"] is None
    loop.log_outcome("c", 1)
    assert loop.get_prediction("c")["actual"] == 1
    assert loop.get_prediction("missing") is None


def test_nul_characters_are_refused_with_the_field(db_url, clock) -> None:
    with pytest.raises(ValidationError, match="NUL") as caught:
        FeedbackLoop("bad\x00name", tracking_db=db_url, clock=clock)
    assert caught.value.field == "model_name"
    loop = make_loop(db_url, clock)
    with pytest.raises(ValidationError, match="NUL") as caught:
        loop.log_prediction("a\x00b", prediction=1)
    assert caught.value.field == "prediction_id"
    with pytest.raises(ValidationError, match="NUL") as caught:
        loop.log_predictions(
            [{"prediction_id": "ok", "prediction": 1}, {"prediction_id": "x\x00", "prediction": 0}]
        )
    assert (caught.value.field, caught.value.row) == ("prediction_id", 1)
    assert loop.get_metrics(window="all")["predictions"] == 0
