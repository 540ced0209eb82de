"""Replay a stream through the loop in simulated time, and compare strategies.

The stream is served step by step (a day by default) by the current champion; labels arrive
``label_delay`` later. Five strategies see the same stream:

* ``never``: the first model serves forever;
* ``fixed``: every ``fixed_every`` (30 days), a model refitted on the last ``sliding_window``
  (28 days) of labeled rows replaces the champion, unconditionally;
* ``weekly``: the same every 7 days ("weekly sliding");
* ``daily``: the same every day ("daily sliding");
* ``loop``: the loop as a user gets it: its policy decides when to retrain, its gate whether to
  promote, and its watch rolls a regressing champion back, with its own defaults for whatever
  the :class:`ReplayConfig` leaves unset.

The scheduled strategies are what a team would do instead of the loop; they are replayed in
memory (they need no log, no gate and no registry), the loop through a :class:`FeedbackLoop` on
its own database. Every strategy is scored the same way, in memory, on the served rows whose
label arrived before the stream ended; and every change of champion is judged on the rows it
then served: was the new champion significantly worse than the one it replaced over the next
``judge_window`` (a paired test on the same rows)?

Binary, multiclass and regression targets are replayed (accuracy, or the mean absolute error
for regression). A stream without a clock gets one: ``rows_per_day`` evenly spaced rows a day.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats
from threadpoolctl import threadpool_limits

from feedback_loop.core.clock import ManualClock
from feedback_loop.core.limits import MAX_REASON_LENGTH
from feedback_loop.deploy.gate import GateConfig
from feedback_loop.deploy.promotion import CHAMPION
from feedback_loop.errors import ValidationError
from feedback_loop.loop import FeedbackLoop
from feedback_loop.retrain.dataset import DatasetSpec
from feedback_loop.retrain.policy import Evidence, Policy

StrategyName = Literal["never", "fixed", "weekly", "daily", "loop"]
STRATEGIES: tuple[StrategyName, ...] = ("never", "fixed", "weekly", "daily", "loop")
TaskName = Literal["binary", "multiclass", "regression"]
SYNTHETIC_START = pd.Timestamp("2024-01-01", tz="UTC")


@dataclass
class ReplayConfig:
    """How a stream is replayed. ``dataset``, ``gate``, ``policy`` and ``policy_window`` left
    at None are the loop's own defaults (what a user gets without configuring them)."""

    features: list[str]
    label: str = "target"
    timestamp: str = "timestamp"
    initial_rows: int = 4_000
    label_delay: timedelta = timedelta(days=1)
    step: timedelta = timedelta(days=1)
    rows_per_day: float | None = None  # a stream without a clock: evenly spaced rows a day
    task: TaskName | None = None  # None: inferred from the target
    fixed_every: timedelta = timedelta(days=30)
    weekly_every: timedelta = timedelta(days=7)
    daily_every: timedelta = timedelta(days=1)
    sliding_window: timedelta = timedelta(days=28)  # what the scheduled strategies refit on
    dataset: DatasetSpec | None = None
    gate: GateConfig | None = None
    policy: Policy | None = None
    policy_window: str | None = None
    watch_min_samples: int = 200
    drift_window: str | None = "1d"  # a drift check each step, for the progress callback only
    judge_window: timedelta = timedelta(days=28)
    judge_alpha: float = 0.05


@dataclass
class ChampionChange:
    """One change of champion, judged on the rows served after it (within ``judge_window``):
    ``old_score`` and ``new_score`` are both models' accuracy (or MAE) on those same rows, and
    ``p_value`` the one-sided exact binomial test on discordant rows that the new one is worse
    (old right and new wrong against the reverse; for regression, which error is larger)."""

    time: pd.Timestamp
    row: int  # the first served row the new champion predicted
    kind: str  # "schedule", "promoted" or "rollback"
    old: int
    new: int
    rows: int
    old_score: float | None
    new_score: float | None
    p_value: float | None
    worse: bool

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["time"] = self.time.isoformat()
        return out


@dataclass
class LoopRetrain:
    """One retraining the loop's policy started in a replay, and why: the rules that fired,
    the reason it recorded, how it ended (``promoted``, ``rejected`` or ``failed``), and the
    cooldown state it was started in (time and labels since the previous trigger, how that one
    ended, rejections in a row), so a replay's retrains can be explained rule by rule."""

    time: pd.Timestamp
    rules: tuple[str, ...]
    reason: str
    outcome: str
    since_last: timedelta | None
    labels_since_last: int | None
    last_outcome: str | None
    rejections_in_a_row: int
    chosen: str = ""  # the candidate the gate judged: its name, window share and rows

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["time"] = self.time.isoformat()
        out["since_last"] = None if self.since_last is None else self.since_last.total_seconds()
        out["rules"] = list(self.rules)
        return out


@dataclass
class ReplayResult:
    strategy: str
    accuracy: float  # the primary score: accuracy, or the MAE of a regression
    labeled: int
    retrains: int
    promotions: int
    rejections: int
    rollbacks: int
    monthly: pd.DataFrame  # month -> accuracy (or mae), labeled
    database: str | None  # the loop's database (None for the strategies replayed in memory)
    metric: str = "accuracy"
    failures: int = 0  # retrains that failed (too few rows, a trainer error)
    changes: list[ChampionChange] = field(default_factory=list)
    retrain_log: list[LoopRetrain] = field(default_factory=list)  # the loop's, in order

    @property
    def worse_changes(self) -> int:
        """Changes of champion significantly worse than the champion they replaced."""
        return sum(c.worse for c in self.changes)

    def summary(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "metric": self.metric,
            "accuracy": self.accuracy,
            "labeled": self.labeled,
            "retrains": self.retrains,
            "promotions": self.promotions,
            "rejections": self.rejections,
            "rollbacks": self.rollbacks,
            "failures": self.failures,
            "changes": len(self.changes),
            "worse_changes": self.worse_changes,
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
    """Replay ``stream`` (time-ordered; ``config.timestamp`` or ``config.rows_per_day``,
    features, label) with a strategy.

    Native thread pools are limited to one thread: a step's batch is a few dozen rows, where
    starting OpenMP threads per tree costs far more than the work (and busy-waiting threads
    starve everything else on a small machine).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}")
    with threadpool_limits(limits=1):
        prepared = _Prepared.of(stream, config)
        if strategy == "loop":
            return _replay_loop(prepared, make_model, config, database, model_name, on_tick)
        return _replay_scheduled(prepared, make_model, strategy, config, on_tick)


def infer_task(target: pd.Series) -> TaskName:
    """Regression for non-whole numbers, binary for two labels, multiclass otherwise."""
    values = target.dropna()
    if pd.api.types.is_float_dtype(values) and not np.all(np.mod(values.to_numpy(), 1) == 0):
        return "regression"
    return "binary" if values.nunique() <= 2 else "multiclass"


def in_fitted_order(model: Any, rows: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The columns ``model`` was fitted on, in its order (``feature_names_in_``), else
    ``features``: a model retrained from the log learns the log's column order, which need not
    be the stream's, and scikit-learn refuses names in another order."""
    names = getattr(model, "feature_names_in_", None)
    return rows[list(names) if names is not None else features]


@dataclass
class _Prepared:
    """A stream cut into the first model's rows and the served rows, on a clock, in steps."""

    task: TaskName
    initial: pd.DataFrame
    served: pd.DataFrame
    times: pd.Series  # every row's time (initial and served), UTC
    served_ns: np.ndarray  # served rows' times, int64 ns
    starts: np.ndarray  # first served row of each step
    ends: np.ndarray
    known_ns: np.ndarray  # per step: labels of rows up to this time have arrived
    y: np.ndarray  # served labels
    scored: int  # served rows labeled before the stream ended (the scored ones)

    @classmethod
    def of(cls, stream: pd.DataFrame, config: ReplayConfig) -> _Prepared:
        if config.rows_per_day is not None:
            offsets = np.round(np.arange(len(stream)) * 86_400e9 / config.rows_per_day)
            times = pd.Series(SYNTHETIC_START + pd.to_timedelta(offsets.astype("int64")))
        elif config.timestamp in stream.columns:
            times = pd.Series(pd.to_datetime(stream[config.timestamp], utc=True).to_numpy())
        else:
            raise ValueError(
                f"the stream has no {config.timestamp!r} column: give rows_per_day for one"
            )
        times = pd.Series(pd.DatetimeIndex(times).tz_localize(None).tz_localize("UTC"))
        if not times.is_monotonic_increasing:
            raise ValueError("the stream must be in time order")
        if not 0 < config.initial_rows < len(stream):
            raise ValueError("initial_rows must leave rows to serve")
        if config.step <= timedelta(0):
            raise ValueError("step must be positive")
        data = stream.reset_index(drop=True)
        n0 = config.initial_rows
        served = data.iloc[n0:].reset_index(drop=True)
        ns = times.to_numpy(dtype="datetime64[ns]").astype(np.int64)
        served_ns = ns[n0:]
        step_ns = int(config.step.total_seconds() * 1e9)
        index = (served_ns - served_ns[0]) // step_ns
        bounds = np.flatnonzero(np.diff(index)) + 1
        starts = np.concatenate([[0], bounds]).astype(np.int64)
        ends = np.concatenate([bounds, [len(served)]]).astype(np.int64)
        delay_ns = int(config.label_delay.total_seconds() * 1e9)
        known_ns = served_ns[ends - 1] - delay_ns
        scored = int(np.searchsorted(served_ns, served_ns[-1] - delay_ns, side="right"))
        return cls(
            task=config.task or infer_task(data[config.label]),
            initial=data.iloc[:n0],
            served=served,
            times=times,
            served_ns=served_ns,
            starts=starts,
            ends=ends,
            known_ns=known_ns,
            y=served[config.label].to_numpy(),
            scored=scored,
        )

    @property
    def regression(self) -> bool:
        return self.task == "regression"

    @property
    def metric(self) -> str:
        return "mae" if self.regression else "accuracy"

    def step_time(self, step: int) -> pd.Timestamp:
        return pd.Timestamp(int(self.served_ns[self.ends[step] - 1]), tz="UTC")

    def losses(self, predicted: np.ndarray, rows: slice) -> np.ndarray:
        """Per row: 1/0 wrong/right, or the absolute error of a regression."""
        truth = self.y[rows]
        if self.regression:
            return np.abs(predicted.astype(np.float64) - truth.astype(np.float64))
        return (predicted != truth).astype(np.float64)

    def score(self, losses: np.ndarray) -> float:
        """Accuracy (or MAE) of per-row ``losses``."""
        if not len(losses):
            return float("nan")
        mean = float(np.mean(losses))
        return mean if self.regression else 1.0 - mean


class _Scorer:
    """Predictions made so far, the running score, monthly scores and champion changes."""

    def __init__(self, data: _Prepared, config: ReplayConfig) -> None:
        self.data = data
        self.config = config
        kind = np.float64 if data.regression else object
        self.predicted = np.empty(len(data.served), dtype=kind)
        self.changes: list[ChampionChange] = []

    def serve(self, model: Any, step: int) -> np.ndarray:
        start, end = int(self.data.starts[step]), int(self.data.ends[step])
        rows = self.data.served.iloc[start:end]
        out = np.asarray(model.predict(in_fitted_order(model, rows, self.config.features)))
        self.predicted[start:end] = out
        return out

    def recent(self, step: int, span: timedelta = timedelta(days=7)) -> float | None:
        """The score over the labels that arrived in the last ``span``."""
        known = self.data.known_ns[step]
        upto = int(np.searchsorted(self.data.served_ns, known, side="right"))
        since = int(
            np.searchsorted(self.data.served_ns, known - int(span.total_seconds() * 1e9), "right")
        )
        if upto <= since:
            return None
        rows = slice(since, upto)
        return self.data.score(self.data.losses(self.predicted[rows], rows))

    def judge(self, step: int, kind: str, old: tuple[int, Any], new: tuple[int, Any]) -> None:
        """Record a change of champion at the end of ``step`` and judge it on the rows the new
        champion serves within ``judge_window`` (both models predict the same rows)."""
        data = self.data
        first = int(data.ends[step])
        horizon = data.served_ns[data.ends[step] - 1] + int(
            self.config.judge_window.total_seconds() * 1e9
        )
        last = min(int(np.searchsorted(data.served_ns, horizon, side="right")), data.scored)
        change = ChampionChange(
            data.step_time(step), first, kind, old[0], new[0], 0, None, None, None, False
        )
        if last > first:
            rows = slice(first, last)
            frame = data.served.iloc[rows]
            feats = self.config.features
            old_loss = data.losses(
                np.asarray(old[1].predict(in_fitted_order(old[1], frame, feats))), rows
            )
            new_loss = data.losses(
                np.asarray(new[1].predict(in_fitted_order(new[1], frame, feats))), rows
            )
            p = paired_worse_p(old_loss, new_loss)
            change.rows = last - first
            change.old_score = data.score(old_loss)
            change.new_score = data.score(new_loss)
            change.p_value = p
            change.worse = p < self.config.judge_alpha
        self.changes.append(change)

    def result(
        self,
        strategy: str,
        counts: dict[str, int],
        database: str | None,
        retrain_log: list[LoopRetrain] | None = None,
    ) -> ReplayResult:
        data = self.data
        rows = slice(0, data.scored)
        losses = data.losses(self.predicted[rows], rows)
        months = pd.DatetimeIndex(pd.to_datetime(data.served_ns[rows], utc=True)).strftime("%Y-%m")
        frame = pd.DataFrame({"month": months, "loss": losses})
        monthly = frame.groupby("month", sort=True)["loss"].agg(["mean", "size"]).reset_index()
        value = monthly["mean"] if data.regression else 1.0 - monthly["mean"]
        monthly = pd.DataFrame(
            {"month": monthly["month"], data.metric: value, "labeled": monthly["size"]}
        )
        if data.metric != "accuracy":  # the demo's tables read "accuracy"
            monthly["accuracy"] = value
        return ReplayResult(
            strategy=strategy,
            accuracy=data.score(losses),
            labeled=len(losses),
            monthly=monthly,
            database=database,
            metric=data.metric,
            changes=self.changes,
            retrain_log=retrain_log or [],
            **counts,
        )


def paired_worse_p(old_loss: np.ndarray, new_loss: np.ndarray) -> float:
    """One-sided exact binomial (sign) test on the rows where the two models differ: the
    p-value of "the new model loses on more of them than it wins". For 0/1 losses this is the
    exact McNemar test."""
    new_worse = int(np.sum(new_loss > old_loss))
    new_better = int(np.sum(new_loss < old_loss))
    if new_worse + new_better == 0:
        return 1.0
    return float(stats.binomtest(new_worse, new_worse + new_better, 0.5, "greater").pvalue)


def _fit(make_model: Callable[[], Any], rows: pd.DataFrame, config: ReplayConfig) -> Any:
    return make_model().fit(rows[config.features], rows[config.label])


def _trainable(rows: pd.DataFrame, config: ReplayConfig, task: TaskName) -> bool:
    """Enough rows to fit on (and two classes, for a classifier)."""
    if len(rows) < 50:
        return False
    return task == "regression" or rows[config.label].nunique() >= 2


def _replay_scheduled(
    data: _Prepared,
    make_model: Callable[[], Any],
    strategy: StrategyName,
    config: ReplayConfig,
    on_tick: Tick | None,
) -> ReplayResult:
    """never / fixed / weekly / daily: refit on the last ``sliding_window`` of labeled rows
    every so often and promote unconditionally, in memory."""
    every = {
        "fixed": config.fixed_every,
        "weekly": config.weekly_every,
        "daily": config.daily_every,
    }.get(strategy)
    scorer = _Scorer(data, config)
    history = pd.concat([data.initial, data.served], ignore_index=True)
    history_ns = data.times.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    window_ns = int(config.sliding_window.total_seconds() * 1e9)
    champion = (1, _fit(make_model, data.initial, config))
    counts = {"retrains": 0, "promotions": 0, "rejections": 0, "rollbacks": 0, "failures": 0}
    last_refit = data.step_time(0) - config.step  # the first model was fitted just before
    for step in range(len(data.starts)):
        scorer.serve(champion[1], step)
        now = data.step_time(step)
        action = None
        if every is not None and now - last_refit >= every:
            last_refit = now
            known = data.known_ns[step]
            lo = int(np.searchsorted(history_ns, known - window_ns, side="left"))
            hi = int(np.searchsorted(history_ns, known, side="right"))
            rows = history.iloc[lo:hi]
            counts["retrains"] += 1
            if _trainable(rows, config, data.task):
                new = (champion[0] + 1, _fit(make_model, rows, config))
                counts["promotions"] += 1
                scorer.judge(step, "schedule", champion, new)
                champion = new
                action = f"{strategy} refit"
            else:
                counts["failures"] += 1
                action = "refit skipped: too few rows"
        if on_tick is not None:
            on_tick(_tick(strategy, now, scorer.recent(step), champion[0], action, counts))
    return scorer.result(strategy, counts, None)


def _tick(
    strategy: str,
    now: pd.Timestamp,
    recent: float | None,
    champion: int,
    action: str | None,
    counts: dict[str, int],
    drift: float | None = None,
) -> dict[str, Any]:
    return {
        "accuracy_7d": recent,
        "drift": drift,
        "now": now,
        "strategy": strategy,
        "champion": champion,
        "action": action,
        **counts,
    }


def _prediction_column(model: Any, rows: pd.DataFrame, config: ReplayConfig, task: TaskName) -> Any:
    """What the served model logs: label and score (binary), label and confidence
    (multiclass), the value (regression)."""
    X = in_fitted_order(model, rows, config.features)
    if task == "regression":
        return np.asarray(model.predict(X), dtype=np.float64)
    if not hasattr(model, "predict_proba"):
        return np.asarray(model.predict(X))
    proba = np.asarray(model.predict_proba(X))
    classes = np.asarray(model.classes_)
    best = proba.argmax(axis=1)
    labels = [c.item() if isinstance(c, np.generic) else c for c in classes[best]]
    if task == "binary":
        score = proba[:, -1] if len(classes) == 2 else np.zeros(len(rows))
        return pd.Series(
            [{"label": lab, "score": float(s)} for lab, s in zip(labels, score, strict=True)],
            dtype=object,
        ).to_numpy()
    confidence = proba[np.arange(len(rows)), best]
    return pd.Series(
        [{"label": lab, "confidence": float(c)} for lab, c in zip(labels, confidence, strict=True)],
        dtype=object,
    ).to_numpy()


def _reference_predictions(model: Any, X: pd.DataFrame, task: TaskName) -> np.ndarray:
    if task == "binary" and hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(X))[:, -1]
    return np.asarray(model.predict(X))


def _holdout_score(
    make_model: Callable[[], Any], initial: pd.DataFrame, config: ReplayConfig, task: TaskName
) -> tuple[str, float]:
    """The first model's baseline, measured on the newest fifth of its data, held out."""
    cut = int(len(initial) * 0.8)
    fit, held = initial.iloc[:cut], initial.iloc[cut:]
    probe = _fit(make_model, fit, config)
    predicted = np.asarray(probe.predict(held[config.features]))
    truth = held[config.label].to_numpy()
    if task == "regression":
        return "mae", float(np.mean(np.abs(predicted - truth)))
    return "accuracy", float(np.mean(predicted == truth))


def _replay_loop(
    data: _Prepared,
    make_model: Callable[[], Any],
    config: ReplayConfig,
    database: str | None,
    model_name: str,
    on_tick: Tick | None,
) -> ReplayResult:
    folder = tempfile.mkdtemp(prefix="feedback-loop-replay-loop-")
    url = database or f"sqlite:///{os.path.join(folder, 'replay.db')}"
    clock = ManualClock(data.times.iloc[config.initial_rows - 1].to_pydatetime())
    options: dict[str, Any] = {}
    if config.policy_window is not None:
        options["window"] = config.policy_window
    labels = pd.unique(data.initial[config.label])
    if data.task == "binary" and len(labels) == 2 and 1 not in set(labels.tolist()):
        options["positive_label"] = sorted(labels.tolist())[-1]
    loop = FeedbackLoop(
        model_name,
        tracking_db=url,
        clock=clock,
        task=data.task,
        artifact_root=os.path.join(folder, "artifacts"),
        **options,
    )
    loop.set_trainer(make_model(), dataset=config.dataset, gate=config.gate)
    if config.policy is not None:
        loop.set_policy(config.policy)
    metric, baseline = _holdout_score(make_model, data.initial, config, data.task)
    first = _fit(make_model, data.initial, config)
    X0 = data.initial[config.features]
    loop.register_model(
        first,
        features=X0,
        predictions=_reference_predictions(first, X0, data.task),
        actuals=data.initial[config.label].to_numpy(),
        alias=CHAMPION,
        metrics={f"holdout_{metric}": baseline},
    )
    champion: tuple[int, Any] = (1, first)
    scorer = _Scorer(data, config)
    served, served_ns = data.served, data.served_ns
    delay = pd.Timedelta(config.label_delay)
    labeled_upto = 0
    counts = {"retrains": 0, "promotions": 0, "rejections": 0, "rollbacks": 0, "failures": 0}
    drift_state: float | None = None
    log: list[LoopRetrain] = []
    for step in range(len(data.starts)):
        start, end = int(data.starts[step]), int(data.ends[step])
        now = data.step_time(step)
        clock.set(now.to_pydatetime())
        rows = served.iloc[start:end]
        scorer.serve(champion[1], step)
        loop.log_predictions(
            rows[config.features].assign(
                prediction_id=[f"p{i}" for i in range(start, end)],
                timestamp=pd.to_datetime(served_ns[start:end], utc=True),
                prediction=_prediction_column(champion[1], rows, config, data.task),
                version=str(champion[0]),
            )
        )
        due = int(np.searchsorted(served_ns, data.known_ns[step], side="right"))
        if due > labeled_upto:
            loop.log_outcomes(
                pd.DataFrame(
                    {
                        "prediction_id": [f"p{i}" for i in range(labeled_upto, due)],
                        "actual": data.y[labeled_upto:due],
                        "timestamp": pd.to_datetime(served_ns[labeled_upto:due], utc=True) + delay,
                    }
                )
            )
            labeled_upto = due
        if config.drift_window is not None:
            drift_state = _drift_share(loop, config.drift_window)
        action = _loop_step(loop, config, counts, log)
        current = loop.aliases()[CHAMPION]
        if current != champion[0]:
            new = (current, loop.load_model(current))
            scorer.judge(step, "rollback" if action == "rollback" else "promoted", champion, new)
            champion = new
        if on_tick is not None:
            recent = scorer.recent(step)
            on_tick(_tick("loop", now, recent, champion[0], action, counts, drift_state))
    return scorer.result("loop", counts, url, log)


def _drift_share(loop: FeedbackLoop, window: str) -> float | None:
    """Monitoring for the display: the share of features drifted against the reference."""
    try:
        report = loop.check_drift(window=window)
    except (ValidationError, ValueError):
        return None
    return None if report.dataset is None else report.dataset.share


def _loop_step(
    loop: FeedbackLoop, config: ReplayConfig, counts: dict[str, int], log: list[LoopRetrain]
) -> str | None:
    """What the loop does each step, through its public face: the watch (rollback), then its
    policy (``should_retrain``), then a retraining with its trainer, dataset and gate; each
    retraining is explained in ``log``."""
    verdict = loop.watch_champion(min_samples=config.watch_min_samples)
    if verdict is not None and verdict.ready and verdict.regressed:
        counts["rollbacks"] += 1
        return "rollback"
    decision = loop.should_retrain(config.policy_window, actor="policy")
    if not decision:
        return None
    evidence = loop.policy_evidence(config.policy_window)  # the state it fired in
    outcome = loop.trigger_retraining(
        str(decision.reason)[:MAX_REASON_LENGTH] or "policy", actor="policy"
    )
    counts["retrains"] += 1
    if getattr(outcome, "promoted", False):
        action, ended = "promoted", "promoted"
    elif getattr(outcome, "candidate", None) is not None and not getattr(outcome, "failed", None):
        action, ended = "rejected", "rejected"
    else:
        action, ended = "retrain failed", "failed"
    counts[{"promoted": "promotions", "rejected": "rejections"}.get(ended, "failures")] += 1
    results = getattr(decision, "results", [])
    last = evidence.last_triggered_at
    log.append(
        LoopRetrain(
            time=pd.Timestamp(evidence.now),
            rules=tuple(r.rule for r in results if r.fired) or ("policy",),
            reason=str(decision.reason),
            outcome=ended,
            since_last=None if last is None else evidence.now - last,
            labels_since_last=evidence.new_labels_since_trigger,
            last_outcome=evidence.last_outcome,
            rejections_in_a_row=evidence.rejections_in_a_row,
            chosen=_chosen(getattr(outcome, "gate", None)),
        )
    )
    return action


def _chosen(gate: dict[str, Any] | None) -> str:
    """The candidate a retraining's gate judged, as ``name@share (rows)``."""
    if not gate or not gate.get("chosen"):
        return ""
    chosen = gate["chosen"]
    rows = next(
        (
            c["rows"]
            for c in gate.get("candidates", [])
            if c["name"] == chosen["name"] and c["window_share"] == chosen["window_share"]
        ),
        None,
    )
    return f"{chosen['name']}@{chosen['window_share']:.2f}" + (
        "" if rows is None else f" ({rows:,} rows)"
    )


__all__ = [
    "STRATEGIES",
    "ChampionChange",
    "Evidence",
    "LoopRetrain",
    "ReplayConfig",
    "ReplayResult",
    "in_fitted_order",
    "infer_task",
    "paired_worse_p",
    "replay",
]
