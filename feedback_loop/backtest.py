"""Replay a stream through the loop in simulated time, and compare strategies.

The stream is served day by day by the current champion; labels arrive ``label_delay`` later.
Three strategies see the same stream:

* ``never``: the first model serves forever;
* ``fixed``: a new model, trained on the recent window, replaces the champion on a fixed
  schedule, unconditionally;
* ``loop``: a policy decides when to retrain, the gate decides whether to promote, and the watch
  rolls a regressing champion back.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from feedback_loop.clock import ManualClock
from feedback_loop.errors import ValidationError
from feedback_loop.lifecycle import CHAMPION, promote_version, retrain, watch_champion
from feedback_loop.loop import FeedbackLoop
from feedback_loop.policy import Evidence, Policy, default_policy
from feedback_loop.training.dataset import DatasetSpec
from feedback_loop.training.gating import GateConfig
from feedback_loop.training.trainers import EstimatorTrainer

StrategyName = Literal["never", "fixed", "loop"]


@dataclass
class ReplayConfig:
    features: list[str]
    label: str = "target"
    timestamp: str = "timestamp"
    initial_rows: int = 4_000
    label_delay: timedelta = timedelta(days=1)
    step: timedelta = timedelta(days=1)
    fixed_every: timedelta = timedelta(days=30)
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    gate: GateConfig = field(default_factory=GateConfig)
    policy: Policy | None = None  # None: the default policy (feedback_loop.policy.defaults)
    policy_window: str = "7d"
    watch_min_samples: int = 200
    drift_window: str | None = "1d"  # daily drift check in the loop strategy (None: off)


@dataclass
class ReplayResult:
    strategy: str
    accuracy: float
    labeled: int
    retrains: int
    promotions: int
    rejections: int
    rollbacks: int
    monthly: pd.DataFrame  # month -> accuracy
    database: str

    def summary(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "accuracy": self.accuracy,
            "labeled": self.labeled,
            "retrains": self.retrains,
            "promotions": self.promotions,
            "rejections": self.rejections,
            "rollbacks": self.rollbacks,
        }


Tick = Callable[[dict[str, Any]], None]


def replay(
    stream: pd.DataFrame,
    make_model: Callable[[], Any],
    strategy: StrategyName,
    config: ReplayConfig,
    *,
    database: str | None = None,
    model_name: str = "replay",
    on_tick: Tick | None = None,
) -> ReplayResult:
    """Replay ``stream`` (time-ordered; ``config.timestamp``, features, label) with a strategy.

    Native thread pools are limited to one thread: a day's batch is a few dozen rows, where
    starting OpenMP threads per tree costs far more than the work (and busy-waiting threads
    starve everything else on a small machine).
    """
    if strategy not in ("never", "fixed", "loop"):
        raise ValueError("strategy must be never, fixed or loop")
    with threadpool_limits(limits=1):
        return _replay(stream, make_model, strategy, config, database, model_name, on_tick)


def _replay(
    stream: pd.DataFrame,
    make_model: Callable[[], Any],
    strategy: StrategyName,
    config: ReplayConfig,
    database: str | None,
    model_name: str,
    on_tick: Tick | None,
) -> ReplayResult:
    folder = tempfile.mkdtemp(prefix=f"feedback-loop-replay-{strategy}-")
    url = database or f"sqlite:///{os.path.join(folder, 'replay.db')}"
    times = pd.to_datetime(stream[config.timestamp], utc=True)
    initial = stream.iloc[: config.initial_rows]
    served = stream.iloc[config.initial_rows :].reset_index(drop=True)
    served_times = times.iloc[config.initial_rows :].reset_index(drop=True)
    clock = ManualClock(times.iloc[config.initial_rows - 1].to_pydatetime())
    loop = FeedbackLoop(
        model_name,
        tracking_db=url,
        clock=clock,
        task="binary",
        artifact_root=os.path.join(folder, "artifacts"),
        window=config.policy_window,
    )
    trainer = EstimatorTrainer(make_model())
    # the first model's baseline is measured on the newest fifth of its data, held out
    cut = int(len(initial) * 0.8)
    probe = make_model().fit(initial[config.features].iloc[:cut], initial[config.label].iloc[:cut])
    baseline = float(
        probe.score(initial[config.features].iloc[cut:], initial[config.label].iloc[cut:])
    )
    first = make_model().fit(initial[config.features], initial[config.label])
    loop.register_model(
        first,
        features=initial[config.features],
        predictions=first.predict_proba(initial[config.features])[:, 1],
        actuals=initial[config.label].to_numpy(),
        alias=CHAMPION,
        metrics={"holdout_accuracy": baseline},
    )
    champion_version = 1
    champion = first
    served_ns = served_times.to_numpy(dtype="datetime64[ns]")
    day = (served_times - served_times.iloc[0]).dt.floor("D")
    days = day.dt.days.to_numpy()
    bounds = np.flatnonzero(np.diff(days)) + 1
    starts, ends = np.concatenate([[0], bounds]), np.concatenate([bounds, [len(served)]])
    labeled_upto = 0
    last_fixed = served_times.iloc[0]
    counts = {"retrains": 0, "promotions": 0, "rejections": 0, "rollbacks": 0}
    drift_state: float | None = None
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        now = served_times.iloc[end - 1]
        clock.set(now.to_pydatetime())
        rows = served.iloc[start:end]
        score = champion.predict_proba(_inputs(champion, rows, config.features))[:, 1]
        loop.log_predictions(
            rows[config.features].assign(
                prediction_id=[f"p{i}" for i in range(start, end)],
                timestamp=served_times.iloc[start:end].to_numpy(),
                prediction=pd.Series(
                    [{"label": int(s >= 0.5), "score": float(s)} for s in score], dtype=object
                ).to_numpy(),
                version=str(champion_version),
            )
        )
        known_until = np.datetime64((now - config.label_delay).tz_convert(None), "ns")
        due = int(np.searchsorted(served_ns, known_until, side="right"))
        if due > labeled_upto:
            loop.log_outcomes(
                pd.DataFrame(
                    {
                        "prediction_id": [f"p{i}" for i in range(labeled_upto, due)],
                        "actual": served[config.label].iloc[labeled_upto:due].to_numpy(),
                        "timestamp": (
                            served_times.iloc[labeled_upto:due] + config.label_delay
                        ).to_numpy(),
                    }
                )
            )
            labeled_upto = due
        action = None
        if strategy == "fixed" and now - last_fixed >= config.fixed_every:
            last_fixed = now
            outcome = retrain(
                loop,
                trainer,
                spec=config.dataset,
                gate=config.gate,
                reason="fixed schedule",
                actor="schedule",
                promote=False,
            )
            counts["retrains"] += 1
            if outcome.candidate is not None:
                promote_version(  # the schedule promotes whatever the gate said of it
                    loop,
                    outcome.candidate,
                    actor="schedule",
                    reason="fixed schedule (no gate)",
                    force=True,
                )
                counts["promotions"] += 1
            action = "fixed retrain"
        elif strategy == "loop":
            drift: tuple[float, tuple[str, ...]] | None = None
            if config.drift_window is not None:
                drift = _drift_check(loop, config.drift_window)
                drift_state = None if drift is None else drift[0]
            action = _loop_step(loop, trainer, config, counts, drift)
        current = loop.aliases()[CHAMPION]
        if current != champion_version:
            champion_version = current
            champion = loop.load_model(current)
        if on_tick is not None:
            recent = loop.get_metrics(window="7d")
            on_tick(
                {
                    "accuracy_7d": recent.get("accuracy"),
                    "drift": drift_state,
                    "now": now,
                    "strategy": strategy,
                    "champion": champion_version,
                    "action": action,
                    **counts,
                }
            )
    total = loop.get_metrics(
        window=(served_times.iloc[0], served_times.iloc[-1] + pd.Timedelta(seconds=1))
    )
    return ReplayResult(
        strategy=strategy,
        accuracy=float(total["accuracy"] or 0.0),
        labeled=int(total["labeled"]),
        monthly=_monthly(loop, served_times),
        database=url,
        **counts,
    )


def _drift_check(loop: FeedbackLoop, window: str) -> tuple[float, tuple[str, ...]] | None:
    """Daily monitoring: the share of features drifted against the champion's reference, and
    which (the policy's drift evidence)."""
    try:
        report = loop.check_drift(window=window)
    except (ValidationError, ValueError):
        return None
    if report.dataset is None:
        return None
    drifted = tuple(c for c in report.drifted_columns if not c.startswith("__"))
    return report.dataset.share, drifted


def _loop_step(
    loop: FeedbackLoop,
    trainer: Any,
    config: ReplayConfig,
    counts: dict[str, int],
    drift: tuple[float, tuple[str, ...]] | None = None,
) -> str | None:
    """One day of the loop: the watch, then the policy over the evidence (with the day's
    drift check), then a retraining when it is due."""
    verdict = watch_champion(loop, min_samples=config.watch_min_samples)
    if verdict is not None and verdict.ready and verdict.regressed:
        counts["rollbacks"] += 1
        return "rollback"
    policy = config.policy or default_policy()
    evidence = loop.policy_evidence(window=config.policy_window)
    if drift is not None:
        evidence = dataclasses.replace(evidence, drift_share=drift[0], drifted_features=drift[1])
    decision = policy.evaluate(evidence)
    if not decision:
        return None
    loop.record_event("retrain_due", reason=decision.reason, evidence=decision.to_dict())
    outcome = retrain(
        loop, trainer, spec=config.dataset, gate=config.gate, reason=decision.reason, actor="policy"
    )
    counts["retrains"] += 1
    if outcome.promoted:
        counts["promotions"] += 1
        return "promoted"
    if outcome.candidate is not None:
        counts["rejections"] += 1
        return "rejected"
    return "retrain failed"


def _monthly(loop: FeedbackLoop, times: pd.Series) -> pd.DataFrame:
    months = pd.date_range(
        times.iloc[0].floor("D").replace(day=1), times.iloc[-1], freq="MS", tz="UTC"
    )
    rows = []
    for start in months:
        end = start + pd.offsets.MonthBegin(1)
        m = loop.get_metrics(window=(start.to_pydatetime(), end.to_pydatetime()))
        if m["labeled"]:
            rows.append(
                {
                    "month": start.strftime("%Y-%m"),
                    "accuracy": m["accuracy"],
                    "labeled": m["labeled"],
                }
            )
    return pd.DataFrame(rows)


__all__ = ["Evidence", "ReplayConfig", "ReplayResult", "replay"]


def _inputs(model: Any, rows: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The columns a model was fitted on, in its order: a retrained model learns the logged
    features, whose order is the log's, not the stream's."""
    names = getattr(model, "feature_names_in_", None)
    return rows[list(names) if names is not None else features]
