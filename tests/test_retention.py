"""Retention: raw rows past a model's horizon are dropped, the summaries behind metrics and
drift over those hours are kept, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import inspect, text
from typer.testing import CliRunner

from feedback_loop import FeedbackLoop
from feedback_loop.cli import app
from feedback_loop.errors import ValidationError
from feedback_loop.loop import dispose_engines
from feedback_loop.monitor import drift_checks
from feedback_loop.monitor.references import stored_reference
from feedback_loop.monitor.window import window_features, window_filter
from feedback_loop.project import load_worker
from feedback_loop.store.engine import make_engine
from feedback_loop.store.migrate import head_revision

DAYS = 10


def _count(loop: FeedbackLoop, table: str) -> int:
    with loop.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def _log(loop: FeedbackLoop, clock: Any, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` predictions over the last ``DAYS`` days, with features, tags and two versions; two
    in three labeled."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    score = 1 / (1 + np.exp(-x))
    rows = pd.DataFrame(
        {
            "zeta": rng.exponential(1.0, n),
            "x": x,
            "city": rng.choice(["rome", "oslo", "lima"], n),
            "prediction_id": [f"p{seed}-{i}" for i in range(n)],
            "timestamp": [
                clock.now() - timedelta(seconds=float(s)) for s in rng.uniform(0, DAYS * 86400, n)
            ],
            "prediction": [{"label": int(s >= 0.5), "score": float(s)} for s in score],
            "version": ["v1" if i % 4 else "v2" for i in range(n)],
            "tags": [{"shop": f"s{i % 2}"} for i in range(n)],
        }
    )
    loop.log_predictions(rows)
    labeled = rows.iloc[[i for i in range(n) if i % 3]]
    loop.log_outcomes(
        pd.DataFrame(
            {
                "prediction_id": labeled["prediction_id"],
                "actual": (rng.random(len(labeled)) < score[labeled.index]).astype(int),
            }
        )
    )
    return rows


def _loop(db_url: str, clock: Any, **options: Any) -> FeedbackLoop:
    loop = FeedbackLoop("m", tracking_db=db_url, clock=clock, task="binary", **options)
    return loop


def _with_reference(loop: FeedbackLoop) -> None:
    rng = np.random.default_rng(9)
    reference = pd.DataFrame(
        {
            "zeta": rng.exponential(1.0, 2000),
            "x": rng.normal(0, 1, 2000),
            "city": rng.choice(["rome", "oslo"], 2000),
        }
    )
    score = 1 / (1 + np.exp(-reference["x"].to_numpy()))
    loop.set_reference(reference, predictions=score, actuals=(score > 0.5).astype(int))


def _hour(t: Any) -> Any:
    return t.replace(minute=0, second=0, microsecond=0)


def _rows_report(loop: FeedbackLoop, window: Any) -> dict[str, Any]:
    """The drift report counted from every row of the window (no summary read or written)."""
    handle = loop.handle
    state = handle.read_state()
    flt = window_filter(handle, window)
    data = window_features(handle.engine, flt, regression=False)
    stored = stored_reference(handle, "default", None)
    report = drift_checks.check_drift(
        state, stored, data, flt, methods=None, share_threshold=0.5, correction="none"
    )
    return report.to_dict()


def test_old_rows_go_and_metrics_and_drift_over_them_stay(db_url, clock) -> None:
    loop = _loop(db_url, clock)
    _with_reference(loop)
    rows = _log(loop, clock, 1500)
    old = (_hour(clock.now() - timedelta(days=DAYS)), _hour(clock.now() - timedelta(days=6)))
    expected = loop.get_metrics(window=old)
    expected_v2 = loop.get_metrics(window=old, version="v2")
    expected_drift = _rows_report(loop, old)  # no drift summary of the old hours exists yet
    recent = loop.get_metrics(window="3d")
    # the same outcomes again, later: the old hours' metric blocks are dirty when retention runs
    again = loop.get_prediction  # (a read: what each of the oldest got)
    oldest = rows.sort_values("timestamp").head(60)
    resent = [(pid, again(pid)) for pid in oldest["prediction_id"]]
    loop.log_outcomes(
        pd.DataFrame(
            [
                {"prediction_id": pid, "actual": got["actual"]}
                for pid, got in resent
                if got["actual"] is not None
            ]
        )
    )
    with loop.engine.connect() as conn:
        dirty = conn.execute(text("SELECT count(*) FROM metric_blocks WHERE data IS NULL"))
        assert dirty.scalar_one() > 0
    horizon = _hour(clock.now() - timedelta(days=5))
    dropped = rows[rows["timestamp"] < horizon]
    kept = rows[rows["timestamp"] >= horizon]
    outcomes = _count(loop, "outcomes")

    result = FeedbackLoop("m", tracking_db=db_url, clock=clock, retention="5d").apply_retention()

    assert result.horizon == horizon and result.retention == timedelta(days=5)
    assert result.predictions_dropped == len(dropped) > 0 and result.hours_kept == 0
    assert _count(loop, "predictions") == len(kept)
    assert _count(loop, "prediction_payloads") == len(kept)
    assert _count(loop, "outcomes") == outcomes - result.outcomes_dropped
    assert result.outcomes_dropped > 0
    assert loop.get_prediction(dropped["prediction_id"].iloc[0]) is None
    assert loop.get_prediction(kept["prediction_id"].iloc[0]) is not None
    # the summaries answer for the dropped hours: counted before the drop, never recounted
    _same_metrics(loop.get_metrics(window=old), expected)
    _same_metrics(loop.get_metrics(window=old, version="v2"), expected_v2)
    assert expected["predictions"] > 0 and expected["labeled"] > 0
    assert loop.check_drift(window=old, record=False).to_dict() == expected_drift
    assert expected_drift["n_current"] == expected["predictions"]
    _same_metrics(loop.get_metrics(window="3d"), recent)
    # a second pass has nothing left to drop
    second = loop.apply_retention()
    assert (second.predictions_dropped, second.outcomes_dropped) == (0, 0)


def test_a_late_row_is_counted_on_top_of_the_kept_counts(db_url, clock) -> None:
    loop = _loop(db_url, clock, retention="5d")
    _with_reference(loop)
    rows = _log(loop, clock, 600, seed=1)
    old = (_hour(clock.now() - timedelta(days=DAYS)), _hour(clock.now() - timedelta(days=6)))
    before = loop.get_metrics(window=old)
    drift = loop.check_drift(window=old, record=False).to_dict()
    assert before["predictions"] > 0
    loop.apply_retention()
    first = rows[rows["timestamp"] < old[1]].sort_values("timestamp").iloc[0]
    late = first["timestamp"] + timedelta(seconds=1)
    assert late < old[1] and _hour(late) == _hour(first["timestamp"])
    loop.log_outcome(first["prediction_id"], 0)  # an outcome for a dropped prediction
    _same_metrics(loop.get_metrics(window=old), before)  # changes nothing
    # a late row of the same hour and version adds to the kept counts, never replaces them
    loop.log_prediction("late", prediction=1, actual=0, timestamp=late, version=first["version"])
    after = loop.get_metrics(window=old)
    assert (after["predictions"], after["labeled"]) == (
        before["predictions"] + 1,
        before["labeled"] + 1,
    )
    assert after["accuracy"] == pytest.approx(
        before["accuracy"] * before["labeled"] / (before["labeled"] + 1)
    )
    assert loop.check_drift(window=old, record=False).n_current == drift["n_current"] + 1
    # and so does a late row of a version the hour never had
    loop.log_prediction("later", prediction=1, actual=1, timestamp=late, version="v9")
    latest = loop.get_metrics(window=old)
    assert (latest["predictions"], latest["labeled"]) == (
        before["predictions"] + 2,
        before["labeled"] + 2,
    )
    assert loop.check_drift(window=old, record=False).n_current == drift["n_current"] + 2


def test_the_stored_retention_applies_to_later_loops(db_url, clock) -> None:
    first = _loop(db_url, clock, retention="8d")
    rows = _log(first, clock, 400, seed=2)
    done = first.apply_retention()
    horizon = _hour(clock.now() - timedelta(days=8))
    assert done.predictions_dropped == int((rows["timestamp"] < horizon).sum()) > 0
    clock.advance(timedelta(days=2))
    later = _loop(db_url, clock)  # no retention given: the stored one
    result = later.apply_retention()
    assert result.retention == timedelta(days=8)
    assert result.predictions_dropped == int(
        ((rows["timestamp"] >= horizon) & (rows["timestamp"] < horizon + timedelta(days=2))).sum()
    )
    assert _count(later, "predictions") == int((rows["timestamp"] >= result.horizon).sum())


def test_without_retention_nothing_is_dropped(db_url, clock) -> None:
    loop = _loop(db_url, clock)
    _log(loop, clock, 200, seed=3)
    result = loop.apply_retention()
    assert (result.retention, result.horizon, result.predictions_dropped) == (None, None, 0)
    assert _count(loop, "predictions") == 200


def test_outcomes_that_never_met_a_prediction_go_past_the_horizon(db_url, clock) -> None:
    loop = _loop(db_url, clock, retention="2d")
    _log(loop, clock, 100, seed=4)
    loop.log_outcome("orphan-old", 1, timestamp=clock.now() - timedelta(days=3))
    loop.log_outcome("orphan-new", 1, timestamp=clock.now() - timedelta(days=1))
    loop.apply_retention()
    with loop.engine.connect() as conn:
        left = set(conn.execute(text("SELECT prediction_id FROM outcomes")).scalars())
        alive = set(conn.execute(text("SELECT prediction_id FROM predictions")).scalars())
    assert "orphan-new" in left and "orphan-old" not in left
    assert left - {"orphan-new"} <= alive  # no outcome of a dropped prediction is left


def test_a_retention_must_be_a_duration(tmp_path) -> None:
    for bad in ("90", "ninety days", "-1d", timedelta(0)):
        with pytest.raises(ValidationError) as caught:
            FeedbackLoop("m", tracking_db=f"sqlite:///{tmp_path / 'x.db'}", retention=bad)
        assert caught.value.field == "retention"


def test_db_prune_applies_retention_from_the_command_line(db_url, clock) -> None:
    now_loop = FeedbackLoop("cli-m", tracking_db=db_url, task="binary")
    rows = _log(now_loop, now_loop.clock, 300, seed=5)
    runner = CliRunner()
    refused = runner.invoke(app, ["db", "prune", "--db", db_url, "--retention", "3d"])
    assert refused.exit_code == 1 and "--model" in refused.output
    bad = runner.invoke(app, ["db", "prune", "--db", db_url, "-m", "cli-m", "--retention", "x"])
    assert bad.exit_code == 1 and "retention" in bad.output
    assert _count(now_loop, "predictions") == 300
    first = runner.invoke(
        app, ["db", "prune", "--db", db_url, "-m", "cli-m", "--retention", "3d", "--json"]
    )
    assert first.exit_code == 0, first.output
    cutoff = now_loop.clock.now() - timedelta(days=3)
    expected_left = int((rows["timestamp"] >= _hour(cutoff)).sum())
    assert _count(now_loop, "predictions") == expected_left
    # all models, with their stored retention
    listed = runner.invoke(app, ["db", "prune", "--db", db_url])
    assert listed.exit_code == 0 and "cli-m" in listed.output


def test_the_project_file_declares_retention_for_the_worker(db_url, clock, tmp_path) -> None:
    loop = _loop(db_url, clock)
    rows = _log(loop, clock, 300, seed=6)
    project = tmp_path / "feedback_loop.toml"
    project.write_text(
        '[models.m]\ntask = "binary"\nretention = "4d"\n'
        '[models.m.trainer]\nestimator = "sklearn.linear_model.LogisticRegression"\n'
    )
    worker = load_worker(Path(project), db_url)
    worker.models["m"].loop.clock = clock
    worker.models["m"].loop.handle.clock = clock
    (result,) = worker.apply_retention()
    horizon = _hour(clock.now() - timedelta(days=4))
    assert result.predictions_dropped == int((rows["timestamp"] < horizon).sum()) > 0
    project.write_text('[models.m]\nretention = "soon"\n[models.m.trainer]\ncommand = "x"\n')
    with pytest.raises(ValidationError) as caught:
        load_worker(Path(project), db_url)
    assert caught.value.field == "models.m.retention"


def _downgrade(url: str, revision: str) -> None:
    from feedback_loop.store.engine import make_engine
    from feedback_loop.store.migrate import downgrade

    engine = make_engine(url)
    downgrade(engine, revision)
    engine.dispose()


def test_a_database_at_0010_upgrades_without_losing_a_row(db_url, clock) -> None:
    loop = _loop(db_url, clock)
    _with_reference(loop)
    _log(loop, clock, 400, seed=8)
    tables = ("models", "predictions", "prediction_payloads", "outcomes", "metric_blocks")
    counts = {table: _count(loop, table) for table in tables}
    metrics = loop.get_metrics(window="all")
    drift = loop.check_drift(window="3d", record=False).to_dict()
    dispose_engines()
    _downgrade(db_url, "0010")  # the schema as 0010 left it, rows and all
    with make_engine(db_url).connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("models")}
    assert "retention_us" not in columns and "pruned_before" not in columns
    result = CliRunner().invoke(app, ["db", "upgrade", "--db", db_url])
    assert result.exit_code == 0, result.output
    assert "0011" in result.output and head_revision() == "0011"
    upgraded = _loop(db_url, clock, retention="4d")
    assert {table: _count(upgraded, table) for table in tables} == counts
    assert upgraded.get_metrics(window="all") == metrics
    assert upgraded.check_drift(window="3d", record=False).to_dict() == drift
    assert upgraded.apply_retention().predictions_dropped > 0


def _same_metrics(got: dict, expected: dict) -> None:
    """Equal metrics; floats to the last bits (a block's rows may be summed in another order
    when counted at ingest than when recounted)."""
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-12), key
        else:
            assert got[key] == value, key
