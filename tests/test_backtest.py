"""Replays: the scheduled strategies refit and promote unconditionally, the loop gates its own,
and binary, multiclass and regression streams replay with features in any order, on a clock or
on ``rows_per_day``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from feedback_loop import FeedbackLoop
from feedback_loop.backtest import ReplayConfig, infer_task, paired_worse_p, replay
from feedback_loop.deploy.gate import GateConfig
from feedback_loop.retrain.dataset import DatasetSpec
from feedback_loop.retrain.policy import Policy, Scheduled


def _stream(days: int = 40, per_day: int = 60, flip_at: int | None = None) -> pd.DataFrame:
    """Two features named out of sorted order; the concept flips at row ``flip_at``."""
    rng = np.random.default_rng(7)
    n = days * per_day
    x = rng.normal(size=(n, 2))
    target = (x[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int)
    if flip_at is not None:
        target[flip_at:] = 1 - target[flip_at:]
    start = pd.Timestamp("2024-01-01", tz="UTC")
    times = start + pd.to_timedelta(np.arange(n) * (86_400 / per_day), unit="s")
    return pd.DataFrame({"timestamp": times, "b": x[:, 1], "a": x[:, 0], "target": target})


def _every_week() -> Policy:
    return Policy(Scheduled(every=timedelta(days=7)))


def _spec() -> DatasetSpec:
    return DatasetSpec(window=timedelta(days=14), holdout=0.25, min_rows=100)


@pytest.mark.parametrize(("strategy", "refits"), [("fixed", 1), ("weekly", 4), ("daily", 30)])
def test_scheduled_strategies_refit_on_schedule_and_promote_every_refit(
    strategy: Any, refits: int
) -> None:
    config = ReplayConfig(features=["b", "a"], initial_rows=600)
    result = replay(_stream(), LogisticRegression, strategy, config)
    # 30 served days; a refit whenever a period has passed since the last model (the first
    # was fitted the day before the first served day)
    assert result.retrains == refits
    assert result.promotions == refits == len(result.changes)
    assert result.rejections == result.rollbacks == 0 and result.database is None
    assert result.labeled == 30 * 60 - 60  # the last day's labels had not arrived
    assert all(c.rows > 0 and c.p_value is not None for c in result.changes[:-2])


def test_a_sliding_refit_recovers_from_a_flip_the_first_model_never_sees() -> None:
    config = ReplayConfig(features=["b", "a"], initial_rows=600, sliding_window=timedelta(days=7))
    stream = _stream(flip_at=14 * 60)
    never = replay(stream, LogisticRegression, "never", config)
    daily = replay(stream, LogisticRegression, "daily", config)
    assert never.accuracy < 0.4 and daily.accuracy > 0.7
    assert never.monthly["labeled"].sum() == never.labeled


def test_the_loop_promotes_with_unsorted_feature_names_and_judges_the_change(
    tmp_path: Path,
) -> None:
    config = ReplayConfig(
        features=["b", "a"],
        initial_rows=600,
        dataset=_spec(),
        gate=GateConfig(bootstrap_resamples=200),
        policy=_every_week(),
    )
    url = f"sqlite:///{tmp_path / 'replay.db'}"
    result = replay(_stream(flip_at=20 * 60), LogisticRegression, "loop", config, database=url)
    assert result.promotions >= 1
    assert result.retrains == result.promotions + result.rejections + result.failures
    promoted = [c for c in result.changes if c.kind == "promoted"]
    assert promoted and promoted[0].new_score is not None
    assert not any(c.worse for c in promoted)
    loop = FeedbackLoop("replay", tracking_db=url)
    assert len(loop.events(kinds=["promoted"], limit=None)) == result.promotions
    assert list(loop.load_model().feature_names_in_) in (["a", "b"], ["b", "a"])


def test_the_loop_runs_with_only_features_rows_and_delay_given() -> None:
    config = ReplayConfig(features=["b", "a"], initial_rows=600, label_delay=timedelta(days=1))
    result = replay(_stream(days=20), LogisticRegression, "loop", config)
    assert result.labeled == 10 * 60 - 60 and 0.6 < result.accuracy <= 1.0


def test_multiclass_replays_under_the_loop_and_a_schedule() -> None:
    rng = np.random.default_rng(3)
    n = 2_400
    x = rng.normal(size=(n, 3))
    target = np.digitize(x[:, 2] + 0.3 * rng.normal(size=n), [-0.6, 0.6])  # 3 classes
    stream = pd.DataFrame({"z": x[:, 2], "y": x[:, 1], "x": x[:, 0], "target": target})
    config = ReplayConfig(
        features=["z", "y", "x"],
        initial_rows=600,
        rows_per_day=60,
        dataset=_spec(),
        gate=GateConfig(min_improvement=-1.0, bootstrap_resamples=200),
        policy=_every_week(),
    )
    assert infer_task(stream["target"]) == "multiclass"
    loop = replay(stream, LogisticRegression, "loop", config)
    weekly = replay(stream, LogisticRegression, "weekly", config)
    assert loop.metric == "accuracy" and loop.accuracy > 0.7 and weekly.accuracy > 0.7
    assert loop.retrains >= 3 and loop.failures == 0


def test_regression_replays_with_an_error_metric_on_rows_per_day() -> None:
    rng = np.random.default_rng(5)
    n = 2_400
    x = rng.normal(size=(n, 2))
    slope = np.where(np.arange(n) < 1_500, 2.0, -2.0)  # the relation turns at row 1,500
    stream = pd.DataFrame({"q": x[:, 1], "p": x[:, 0], "target": slope * x[:, 0] + x[:, 1]})
    config = ReplayConfig(
        features=["q", "p"],
        initial_rows=600,
        rows_per_day=60,
        dataset=_spec(),
        policy=_every_week(),
    )
    assert infer_task(stream["target"]) == "regression"
    never = replay(stream, LinearRegression, "never", config)
    loop = replay(stream, LinearRegression, "loop", config)
    weekly = replay(stream, LinearRegression, "weekly", config)
    assert never.metric == loop.metric == "mae"
    assert weekly.accuracy < never.accuracy and loop.accuracy < never.accuracy
    assert loop.promotions >= 1 and never.monthly["mae"].notna().all()


def test_step_sets_how_often_the_stream_is_served() -> None:
    ticks: list[dict[str, Any]] = []
    stream = _stream(days=20).drop(columns="timestamp")
    config = ReplayConfig(
        features=["b", "a"], initial_rows=600, rows_per_day=60, step=timedelta(days=2)
    )
    replay(stream, LogisticRegression, "never", config, on_tick=ticks.append)
    assert len(ticks) == 5  # 10 served days in steps of two
    assert ticks[1]["now"] - ticks[0]["now"] == timedelta(days=2)
    with pytest.raises(ValueError, match="rows_per_day"):
        replay(stream, LogisticRegression, "never", ReplayConfig(["b", "a"], initial_rows=600))


def test_paired_worse_counts_only_discordant_rows() -> None:
    old = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1], dtype=float)
    new = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], dtype=float)  # worse on 8 rows, never better
    assert paired_worse_p(old, new) == pytest.approx(0.5**8)
    assert paired_worse_p(new, old) == 1.0
    assert paired_worse_p(old, old) == 1.0
