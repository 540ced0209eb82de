"""Replays as the demo runs them: the fixed schedule promotes every candidate, even one the gate
rejected (that is the strategy the loop is compared with), and the loop gates its own."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from feedback_loop import FeedbackLoop
from feedback_loop.backtest import ReplayConfig, replay
from feedback_loop.deploy.gate import GateConfig
from feedback_loop.retrain.dataset import DatasetSpec


def _stream(days: int = 40, per_day: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = days * per_day
    x = rng.normal(size=(n, 2))
    target = (x[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    times = start + pd.to_timedelta(np.arange(n) * (86_400 / per_day), unit="s")
    return pd.DataFrame({"timestamp": times, "b": x[:, 1], "a": x[:, 0], "target": target})


def test_the_fixed_schedule_promotes_candidates_the_gate_rejected(tmp_path: Path) -> None:
    config = ReplayConfig(
        features=["b", "a"],
        initial_rows=600,
        fixed_every=timedelta(days=7),
        dataset=DatasetSpec(window=timedelta(days=14), holdout=0.25, min_rows=100),
        gate=GateConfig(min_improvement=0.5, bootstrap_resamples=200),  # rejects every one
    )
    url = f"sqlite:///{tmp_path / 'replay.db'}"
    result = replay(_stream(), LogisticRegression, "fixed", config, database=url)

    assert result.retrains >= 3 and result.promotions == result.retrains
    loop = FeedbackLoop("replay", tracking_db=url)
    rejected = loop.events(kinds=["gate_rejected"], limit=None)
    promoted = loop.events(kinds=["promoted"], limit=None)
    assert len(rejected) == result.retrains
    assert {e.version for e in rejected} <= {e.version for e in promoted}
    assert all(
        "forced" in e.evidence for e in promoted if e.version in {r.version for r in rejected}
    )
    assert loop.aliases()["champion"] == result.retrains + 1
