"""The default loop, replayed: nothing configured beyond the stream's columns, the first
model's rows and the label delay."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from feedback_loop import FeedbackLoop
from feedback_loop.backtest import ReplayConfig, replay


def _flipping_stream(days: int = 70, per_day: int = 60, flip_day: int = 35) -> pd.DataFrame:
    """An abrupt change: the label's relation to ``a`` reverses on ``flip_day``."""
    rng = np.random.default_rng(11)
    n = days * per_day
    x = rng.normal(size=(n, 2))
    sign = np.where(np.arange(n) < flip_day * per_day, 1.0, -1.0)
    target = (sign * x[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(int)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    times = start + pd.to_timedelta(np.arange(n) * (86_400 / per_day), unit="s")
    return pd.DataFrame({"timestamp": times, "b": x[:, 1], "a": x[:, 0], "target": target})


def test_the_default_loop_recovers_from_an_abrupt_change_with_few_retrains(
    tmp_path: Path,
) -> None:
    stream = _flipping_stream()
    config = ReplayConfig(features=["b", "a"], initial_rows=600, label_delay=timedelta(days=1))
    url = f"sqlite:///{tmp_path / 'loop.db'}"
    result = replay(stream, LogisticRegression, "loop", config, database=url)
    never = replay(stream, LogisticRegression, "never", config)
    # after the flip the never-retrained model is wrong ~90 % of the time; the loop is not
    assert result.accuracy > never.accuracy + 0.25, (result.summary(), never.summary())
    assert result.promotions >= 1 and result.rollbacks == 0
    assert result.retrains <= 5  # a weekly refit would have retrained 9 times
    loop = FeedbackLoop("replay", tracking_db=url)
    promoted = loop.events(kinds=["promoted"], limit=None)
    first = min(e.time for e in promoted)
    flip = stream.timestamp.iloc[35 * 60].to_pydatetime()
    assert first - flip < timedelta(days=7)  # acted within days of the change, not weeks
    assert all(e.evidence["gate"]["refit"]["done"] for e in promoted)
