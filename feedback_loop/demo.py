"""The demo: replay the Elec2 electricity stream through the prediction log.

A model is trained on the first weeks of the stream and then serves the rest, day by day, in
simulated time: each day's predictions are logged as they are made, and each label arrives one day
later. At the end of every simulated month the demo reads the windowed metrics back from the log.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from sklearn.ensemble import HistGradientBoostingClassifier

from feedback_loop.clock import ManualClock
from feedback_loop.datasets import ELEC2_FEATURES, load_elec2
from feedback_loop.loop import FeedbackLoop

TRAIN_FRACTION = 0.1
LABEL_DELAY = timedelta(days=1)
ROWS_PER_DAY = 48


def _train(frame: pd.DataFrame) -> HistGradientBoostingClassifier:
    model = HistGradientBoostingClassifier(max_iter=200, random_state=0)
    model.fit(frame[ELEC2_FEATURES].to_numpy(), frame["target"].to_numpy())
    return model


def replay(
    loop: FeedbackLoop,
    clock: ManualClock,
    stream: pd.DataFrame,
    model: Any,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Serve ``stream`` day by day; returns the metrics read at the end of each month."""
    proba = model.predict_proba(stream[ELEC2_FEATURES].to_numpy())[:, 1]
    served = pd.DataFrame(
        {
            "prediction_id": [f"elec2-{i}" for i in stream.index],
            "timestamp": stream["timestamp"],
            "prediction": [{"label": int(p >= 0.5), "score": float(p)} for p in proba],
            "version": "1",
            "features": stream[ELEC2_FEATURES].to_dict("records"),
        }
    )
    actuals = pd.DataFrame(
        {
            "prediction_id": served["prediction_id"],
            "actual": stream["target"].astype(int).to_numpy(),
            "timestamp": stream["timestamp"] + LABEL_DELAY,
        }
    )
    days = (stream["timestamp"] - stream["timestamp"].iloc[0]).dt.days.to_numpy()
    bounds = np.flatnonzero(np.diff(days)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(stream)]])
    monthly: list[dict[str, Any]] = []
    task = progress.add_task("replaying", total=len(starts)) if progress else None
    month = stream["timestamp"].iloc[0].month
    for day, (start, end) in enumerate(zip(starts, ends, strict=True)):
        clock.set(stream["timestamp"].iloc[end - 1].to_pydatetime())
        loop.log_predictions(served.iloc[start:end])
        if day >= 1:  # yesterday's labels arrive today
            prev_start, prev_end = starts[day - 1], ends[day - 1]
            loop.log_outcomes(actuals.iloc[prev_start:prev_end])
        now = clock.now()
        if now.month != month or end == len(stream):
            metrics = loop.get_metrics(window="30d")
            metrics["month"] = (now - timedelta(days=1)).strftime("%Y-%m")
            monthly.append(metrics)
            month = now.month
        if progress is not None and task is not None:
            progress.update(task, advance=1, description=f"replaying {now:%Y-%m-%d}")
    return monthly


def run_demo(db: str | None = None, *, console: Console | None = None) -> list[dict[str, Any]]:
    console = console or Console()
    if db is None:
        folder = tempfile.mkdtemp(prefix="feedback-loop-demo-")
        db = f"sqlite:///{os.path.join(folder, 'demo.db')}"
    started = time.perf_counter()
    data = load_elec2()
    split = int(len(data) * TRAIN_FRACTION)
    model = _train(data.iloc[:split])
    stream = data.iloc[split:]
    clock = ManualClock(stream["timestamp"].iloc[0].to_pydatetime())
    loop = FeedbackLoop(
        "elec2", tracking_db=db, task="binary", clock=clock, retrain_threshold=0.7, window="30d"
    )
    console.print(
        f"[bold]Elec2[/]: trained on {split:,} rows, replaying {len(stream):,} rows "
        f"with labels one day late into {db}"
    )
    with Progress(TextColumn("{task.description}"), BarColumn(), console=console) as progress:
        monthly = replay(loop, clock, stream, model, progress)
    table = Table(title="Never-retrained model: 30-day windows read from the log")
    for column in (
        "month",
        "predictions",
        "labeled",
        "coverage",
        "accuracy",
        "f1",
        "roc_auc",
        "label delay p50",
    ):
        table.add_column(column, justify="right")
    for m in monthly:
        table.add_row(
            m["month"],
            f"{m['predictions']:,}",
            f"{m['labeled']:,}",
            f"{m['label_coverage']:.1%}",
            f"{m['accuracy']:.3f}",
            f"{m['f1']:.3f}",
            f"{m['roc_auc']:.3f}",
            f"{m['label_delay_p50_s'] / 3600:.0f} h",
        )
    console.print(table)
    overall = loop.get_metrics(window="all")
    decision = loop.should_retrain()
    console.print(
        f"overall accuracy {overall['accuracy']:.3f} on {overall['labeled']:,} labeled "
        f"predictions; should_retrain: {bool(decision)} ({decision.reason})"
    )
    console.print(f"done in {time.perf_counter() - started:.1f} s; database: {db}")
    return monthly
