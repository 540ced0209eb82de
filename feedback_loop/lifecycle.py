"""Closing the loop: retrain a candidate, gate it against the champion, promote or reject,
watch the new champion and roll back when it regresses. Every step writes an event."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from feedback_loop.drift.changepoint import ChangePoint, error_increase
from feedback_loop.errors import FeedbackLoopError, RejectedVersionError, ValidationError
from feedback_loop.input_limits import MAX_REASON_LENGTH, check_actor, check_reason
from feedback_loop.registry import service as registry_service
from feedback_loop.registry.service import Guard
from feedback_loop.store.engine import write_transaction
from feedback_loop.store.events import Event, write_event
from feedback_loop.store.jobs import LeaseLostError
from feedback_loop.store.reader import Rows, WindowFilter, read_rows
from feedback_loop.timeutil import from_us, to_us
from feedback_loop.training.dataset import Dataset, DatasetSpec, assemble
from feedback_loop.training.gating import GateConfig, run_gate
from feedback_loop.training.scoring import Scored, score_model
from feedback_loop.training.trainers import Trainer, variants
from feedback_loop.training.watchdog import WatchVerdict, compare_live, compare_paired

if TYPE_CHECKING:
    from feedback_loop.loop import FeedbackLoop

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass
class RetrainOutcome:
    """What one retraining did: the candidate version, the gate's decision, the promotion.
    ``failed`` names the stage that failed (then ``promoted`` is false)."""

    candidate: int | None
    champion_before: int | None
    promoted: bool
    reason: str
    gate: dict[str, Any] | None = None
    train_rows: int = 0
    holdout_rows: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    failed: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def labeled_dataset(loop: FeedbackLoop, spec: DatasetSpec) -> tuple[Dataset, list[str]]:
    """Labeled predictions with the features logged at prediction time (and their tags, for
    the gate's segment checks: they follow every row selection and the holdout split).

    A sliding window reads its span of time; when that holds fewer than ``spec.min_rows``
    labeled rows (a few rows a day), the whole history is read and the window reaches back to
    ``min_rows`` rows instead of failing."""
    now = loop._now_us()
    start = 0
    if spec.strategy == "sliding_window" and spec.window is not None:
        start = max(now - int(spec.window.total_seconds() * 1e6), 0)
    rows = labeled_rows(loop, WindowFilter(loop._read_state().id, start, now + 1))
    if start > 0 and len(rows[1]) < spec.min_rows:
        rows = labeled_rows(loop, WindowFilter(loop._read_state().id, 0, now + 1))
    features, y, ts, tags, served = rows
    dataset = assemble(features, y, ts, spec, now, tags=tags, served_error=served)
    return dataset, [str(c) for c in features.columns]


def labeled_rows(
    loop: FeedbackLoop, flt: WindowFilter
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, pd.DataFrame | None, np.ndarray]:
    """The labeled rows of a window: logged features, labels (as the user gave them), event
    times (µs), tags, and the served prediction's error (1/0, or the absolute error; NaN
    where the prediction has no label or value to compare)."""
    from feedback_loop import watch

    state = loop._read_state()
    regression = state.spec.task == "regression"
    data = watch.window_features(loop.engine, flt, regression=regression)
    keep = data.labeled & (data.actual_code != -1)
    if regression:
        y = data.actual_value[keep]
    else:
        values = {code: key for key, code in state.codes.items()}
        y = np.array([json.loads(values[int(c)]) for c in data.actual_code[keep]], dtype=object)
        kinds = {type(v) for v in y}
        if len(kinds) == 1:  # one label type (a multiclass target too): sklearn needs a dtype
            y = y.astype(kinds.pop())
    if regression:
        served = np.abs(data.pred_value[keep] - data.actual_value[keep]).astype(np.float64)
    else:
        pred = data.pred_code[keep]
        served = np.where(pred < 0, np.nan, (pred != data.actual_code[keep]).astype(np.float64))
    features = data.features.loc[keep].reset_index(drop=True)
    tags = data.tags.loc[keep].reset_index(drop=True) if len(data.tags.columns) else None
    return features, y, data.ts[keep], tags, served


@dataclass
class _Progress:
    """Where a retraining is, for the ``retrain_failed`` event if a step raises."""

    stage: str = "dataset"
    candidate: int | None = None


def retrain(
    loop: FeedbackLoop,
    trainer: Trainer,
    *,
    spec: DatasetSpec,
    gate: GateConfig,
    reason: str,
    actor: str,
    promote: bool = True,
    guard: Guard | None = None,
) -> RetrainOutcome:
    """Train, register, gate and (if it passes) promote a candidate.

    Whatever step fails, the retraining ends with a ``retrain_failed`` event naming the stage,
    and no alias points at a candidate the gate has not judged: ``challenger`` is moved to the
    candidate together with the gate's verdict. ``guard`` runs inside every write's
    transaction (a worker's lease check); when it refuses (:class:`LeaseLostError`), nothing
    more is written and the error propagates."""
    loop._model_state()  # a retraining writes (its events): the model row may be made here
    champion = loop.aliases().get(CHAMPION)
    _write_event(
        loop,
        guard,
        "retrain_started",
        reason=reason,
        actor=actor,
        evidence={"strategy": spec.strategy, "champion": champion},
    )
    progress = _Progress()
    try:
        return _retrain_steps(
            loop, trainer, progress, spec, gate, reason, actor, promote, guard, champion
        )
    except LeaseLostError:
        raise
    except Exception as exc:  # any failure is recorded, and the loop goes on
        # bounded like every reason (a command's output can be long)
        failure = f"{progress.stage} failed: {type(exc).__name__}: {exc}"[:MAX_REASON_LENGTH]
        _write_event(
            loop,
            guard,
            "retrain_failed",
            reason=failure,
            actor=actor,
            version=None if progress.candidate is None else str(progress.candidate),
            evidence={"stage": progress.stage, "candidate": progress.candidate},
        )
        return RetrainOutcome(progress.candidate, champion, False, failure, failed=progress.stage)


def _retrain_steps(
    loop: FeedbackLoop,
    trainer: Trainer,
    progress: _Progress,
    spec: DatasetSpec,
    gate: GateConfig,
    reason: str,
    actor: str,
    promote: bool,
    guard: Guard | None,
    champion: int | None,
) -> RetrainOutcome:
    """Fit every candidate (each proposed model on each recent training window) without the
    holdout, keep the best on the holdout, gate it against the champion at the significance
    level divided by the number tried, and, when it passes, fit the winner again on its whole
    window (holdout included) before registering it: production gets the model that has
    learned the newest rows, the gate's verdict is about its holdout-fitted twin."""
    state = loop._model_state()
    dataset, columns = labeled_dataset(loop, spec)
    train, holdout, change = _split(dataset, spec)
    shares = list(spec.recent_shares)
    if change is not None:  # a candidate of the rows since the change alone
        shares.append((len(dataset) - change.index - len(holdout)) / len(train))
    progress.stage = "train"
    task = state.spec.task or "binary"
    positive = state.spec.positive
    timed = gate.latency_budget_ms is not None
    proposals = variants(trainer)
    fitted: list[tuple[str, float, Trainer, Any, Scored]] = []
    for share in shares:
        part = train.newest(share)
        if share < 1.0 and len(part) < spec.min_rows:
            continue  # too few rows to be a candidate of its own
        for name, member in proposals:
            model = member.train(part)
            scores = score_model(model, holdout.X, holdout.y, task=task, positive=positive)
            fitted.append((name, share, member, model, scores))
    progress.stage = "score"
    name, share, member, model, candidate_scores = min(fitted, key=lambda f: _loss(f[4], task))
    if timed:
        candidate_scores = score_model(
            model, holdout.X, holdout.y, task=task, positive=positive, measure_latency=True
        )
    champion_scores = None
    if champion is not None:
        champion_model = loop.load_model(champion)
        champion_scores = score_model(
            champion_model, holdout.X, holdout.y, task=task, positive=positive
        )
    progress.stage = "gate"
    decision = run_gate(
        champion_scores,
        candidate_scores,
        holdout,
        gate,
        task=task,
        positive=positive,
        tried=len(fitted),
    )
    decision["candidates"] = [
        {"name": f[0], "window_share": f[1], "rows": len(train.newest(f[1])), **_summary(f[4])}
        for f in fitted
    ]
    decision["chosen"] = {"name": name, "window_share": share}
    decision["change"] = None if change is None else change.to_dict()
    trained_on = train.newest(share)
    refit = bool(decision["passed"] and spec.refit)
    if refit:
        progress.stage = "train"
        keep = len(trained_on) + len(holdout)  # the same training rows, and the holdout
        trained_on = dataset.take(np.arange(len(dataset) - keep, len(dataset)))
        model = member.train(trained_on)
    decision["refit"] = {"done": refit, "rows": len(trained_on)}
    train_pred = _train_predictions(model, trained_on.X, task, positive)
    progress.stage = "register"
    version = loop._register(
        model,
        features=trained_on.X,
        predictions=train_pred,
        actuals=trained_on.y,
        train_start=int(trained_on.ts[0]) / 1e6 if len(trained_on) else None,
        train_end=int(trained_on.ts[-1]) / 1e6 if len(trained_on) else None,
        train_rows=len(trained_on),
        metrics={f"holdout_{k}": v for k, v in candidate_scores.metrics.items()},
        info={
            "features": columns,
            "strategy": spec.strategy,
            "reason": reason,
            "candidate": name,
            "window_share": share,
            "refit_on_holdout": refit,
        },
        actor=actor,
        guard=guard,
    )
    progress.candidate = version
    progress.stage = "gate"
    _record_verdict(loop, guard, version, champion, decision, actor)
    promoted = False
    if decision["passed"] and promote:
        progress.stage = "promote"
        promote_version(
            loop,
            version,
            actor=actor,
            reason=f"gate passed ({reason})",
            evidence={"promised": candidate_scores.metrics, "gate": decision},
            guard=guard,
        )
        promoted = True
    return RetrainOutcome(
        candidate=version,
        champion_before=champion,
        promoted=promoted,
        reason=_verdict(decision),
        gate=decision,
        train_rows=len(trained_on),
        holdout_rows=len(holdout),
        metrics=candidate_scores.metrics,
    )


def _split(dataset: Dataset, spec: DatasetSpec) -> tuple[Dataset, Dataset, ChangePoint | None]:
    """Training rows and holdout. When the served predictions' error rose significantly
    within the window and enough rows followed, the holdout is at most the newer half of the
    rows since the change, and the change is returned (its older half becomes a candidate's
    training rows): right after an abrupt change a candidate can then learn the new data
    and be judged on it, instead of every new row sitting in the holdout."""
    train, holdout = dataset.split(spec.holdout, spec.holdout_max_rows)
    if dataset.served_error is None or not len(train):
        return train, holdout, None
    change = error_increase(dataset.served_error, min_segment=max(spec.min_rows // 2, 10))
    if change is None:
        return train, holdout, None
    since = len(dataset) - change.index
    size = min(len(holdout), since // 2)
    if since - size < spec.min_rows:
        return train, holdout, None  # too few rows since the change to learn it yet
    cut = len(dataset) - size
    order = np.arange(len(dataset))
    return dataset.take(order[:cut]), dataset.take(order[cut:]), change


def _loss(scores: Scored, task: str) -> float:
    """What the best candidate minimises on validation: error rate, or MAE."""
    return float(np.mean(scores.errors)) if len(scores.errors) else float("inf")


def _summary(scores: Scored) -> dict[str, Any]:
    key = "mae" if "mae" in scores.metrics else "accuracy"
    return {key: scores.metrics.get(key)}


def _verdict(decision: dict[str, Any]) -> str:
    failed = [c["name"] for c in decision["checks"] if not c["passed"]]
    return "passed every check" if decision["passed"] else f"failed {', '.join(failed)}"


def _record_verdict(
    loop: FeedbackLoop,
    guard: Guard | None,
    version: int,
    champion: int | None,
    decision: dict[str, Any],
    actor: str,
) -> None:
    """The gate's verdict event and ``challenger`` moved to the judged candidate, together."""
    state = loop._model_state()
    now = loop._now_us()
    with write_transaction(loop.engine) as conn:
        if guard is not None:
            guard(conn)
        write_event(
            conn,
            ts_us=now,
            kind="gate_passed" if decision["passed"] else "gate_rejected",
            model_id=state.id,
            version=str(version),
            actor=actor,
            reason=f"candidate {version} vs champion {champion}: {_verdict(decision)}",
            evidence=decision,
        )
        registry_service.move_in(
            conn, state.id, CHALLENGER, version, now, actor, f"gated candidate {version}"
        )


def _write_event(
    loop: FeedbackLoop,
    guard: Guard | None,
    kind: str,
    *,
    reason: str,
    actor: str,
    version: str | None = None,
    evidence: dict[str, Any] | None = None,
) -> None:
    """``loop.record_event`` with ``guard`` run inside the same transaction."""
    loop._write_event(
        kind, reason=reason, actor=actor, version=version, evidence=evidence, guard=guard
    )


def _train_predictions(model: Any, X: pd.DataFrame, task: str, positive: Any) -> np.ndarray | None:
    try:
        if task == "binary" and hasattr(model, "predict_proba"):
            classes = list(model.classes_)
            if positive in classes:
                return np.asarray(model.predict_proba(X))[:, classes.index(positive)]
        return np.asarray(model.predict(X))
    except Exception:  # a reference without predictions is still useful
        return None


def gate_verdict(loop: FeedbackLoop, version: int) -> Event | None:
    """The gate's newest verdict on ``version`` (a ``gate_passed`` or ``gate_rejected``
    event), or None for a version that was never gated (registered by hand)."""
    for event in loop.events(kinds=["gate_passed", "gate_rejected"], limit=None):
        if event.version == str(version):
            return event  # newest first
    return None


def rejection(loop: FeedbackLoop, version: int) -> str | None:
    """Why the gate rejected ``version`` (its newest verdict), or None when it did not."""
    verdict = gate_verdict(loop, version)
    return verdict.reason if verdict is not None and verdict.kind == "gate_rejected" else None


def check_user_reason(reason: object) -> str:
    """A reason a user gives for a champion move: the audit trail's rule, and not the prefix
    that marks the moves :func:`rollback` makes (which :func:`champion_stack` replays)."""
    text = check_reason(reason)
    if text.startswith(ROLLBACK_PREFIX):
        raise ValidationError(
            f"must not start with {ROLLBACK_PREFIX!r} (it marks rollbacks): use rollback",
            field="reason",
        )
    return text


def promote_version(
    loop: FeedbackLoop,
    version: int,
    *,
    actor: str,
    reason: str,
    evidence: dict[str, Any] | None = None,
    force: bool = False,
    guard: Guard | None = None,
) -> int | None:
    """Move ``champion`` to ``version``; the previous champion stays registered.

    A version the gate rejected is only promoted with ``force``, and the override is kept in
    the ``promoted`` event's evidence (``forced`` and the gate's verdict)."""
    extra = dict(evidence or {})
    verdict = gate_verdict(loop, version)
    if verdict is not None and verdict.kind == "gate_rejected":
        if not force:
            raise RejectedVersionError(version, verdict.reason)
        extra["forced"] = {"gate_rejected": verdict.reason, "event": verdict.id}
    return _move_champion(
        loop,
        version,
        actor=actor,
        reason=reason,
        guard=guard,
        event=lambda previous: (
            "promoted",
            f"version {version} promoted over {previous}: {reason}",
            {"previous": previous, **extra},
        ),
    )


def _move_champion(
    loop: FeedbackLoop,
    version: int,
    *,
    actor: str,
    reason: str,
    guard: Guard | None,
    event: Callable[[int | None], tuple[str, str, dict[str, Any]]],
) -> int | None:
    """Move ``champion`` and write the event saying why, in one transaction: a champion never
    moves without its ``promoted`` or ``rolled_back`` event. Returns the previous champion."""
    check_actor(actor)  # a worker's or the watch's name, stored with the move and the event
    state = loop._model_state()
    now = loop._now_us()
    with write_transaction(loop.engine) as conn:
        if guard is not None:
            guard(conn)
        try:
            previous = registry_service.move_in(
                conn, state.id, CHAMPION, version, now, actor, reason
            )
        except FeedbackLoopError as exc:  # an unknown version
            raise ValidationError(str(exc), field="version") from exc
        kind, why, evidence = event(previous)
        write_event(
            conn,
            ts_us=now,
            kind=kind,
            model_id=state.id,
            version=str(version),
            actor=actor,
            reason=why,
            evidence=evidence,
        )
    return previous


ROLLBACK_PREFIX = "rollback: "


def champion_stack(moves: list[dict[str, Any]]) -> list[int]:
    """The champions in force, oldest first, replayed from the champion's alias history.

    Every move to a new version pushes it (a move to the current champion changes nothing);
    a rollback (a move whose reason starts with ``rollback: ``, written only by
    :func:`rollback`) pops back to the version it restored; removing the alias empties the
    stack. The top is the champion; the one below it is where a rollback goes, so successive
    rollbacks walk the history backwards instead of bouncing between two versions."""
    stack: list[int] = []
    for move in moves:
        version = move["version"]
        if version is None:
            stack = []
        elif str(move["reason"]).startswith(ROLLBACK_PREFIX):
            while stack and stack[-1] != version:
                stack.pop()
            if not stack:  # a history this rule did not write: start again from here
                stack = [version]
        elif not stack or stack[-1] != version:
            stack.append(version)
    return stack


def rollback_target(loop: FeedbackLoop) -> tuple[int, int]:
    """The champion and the version a rollback would put back (see :func:`champion_stack`);
    a ``ValidationError`` when there is none."""
    current = loop.aliases().get(CHAMPION)
    stack = champion_stack(loop.alias_history(CHAMPION))
    if current is None or len(stack) < 2 or stack[-1] != current:
        raise ValidationError(
            "the champion has no previous version to roll back to", field="champion"
        )
    return current, stack[-2]


def rollback(
    loop: FeedbackLoop, *, actor: str, reason: str, evidence: dict[str, Any] | None = None
) -> int:
    """Move ``champion`` back to the champion before the current one (see
    :func:`champion_stack`): a second rollback goes one step further back."""
    current, previous = rollback_target(loop)
    _move_champion(
        loop,
        previous,
        actor=actor,
        reason=f"{ROLLBACK_PREFIX}{reason}",
        guard=None,
        event=lambda _: (
            "rolled_back",
            f"champion {current} rolled back to {previous}: {reason}",
            {"from": current, "to": previous, **(evidence or {})},
        ),
    )
    return previous


def watch_champion(
    loop: FeedbackLoop,
    *,
    min_samples: int = 200,
    margin: float = 0.0,
    alpha: float = 0.01,
    auto_rollback: bool = True,
    actor: str = "watch",
) -> WatchVerdict | None:
    """Score the newest champion and the one it replaced on the same labeled rows since the
    promotion (paired: the same period, so a drift at the promotion is no evidence against
    the new model); roll back when the new one is significantly worse. The verdict comes once
    ``min_samples`` rows are labeled, on up to five times as many. Once a promotion has been
    judged (``watch_passed`` or ``rolled_back``), it is not watched again. When the previous
    version cannot be scored (its artifact is gone, its features are not logged), its live
    errors before the promotion stand in, as an unpaired comparison."""
    moves = [m for m in loop.alias_history(CHAMPION) if m["version"] is not None]
    if not moves or moves[-1]["previous_version"] is None:
        return None
    last = moves[-1]
    new, previous, since = last["version"], last["previous_version"], last["time"]
    judged = loop.events(kinds=["watch_passed", "rolled_back"], since=since, limit=1)
    if judged:
        return None
    state = loop._read_state()
    regression = state.spec.task == "regression"
    since_us = to_us(since)
    verdict = _paired_verdict(loop, new, previous, since_us, regression, min_samples, margin, alpha)
    if verdict is None:
        verdict = _unpaired_verdict(
            loop, new, previous, since_us, regression, min_samples, margin, alpha
        )
    if verdict.ready and verdict.regressed and auto_rollback:
        rollback(loop, actor=actor, reason=verdict.reason, evidence=verdict.to_dict())
    elif verdict.ready and not verdict.regressed:
        loop.record_event(
            "watch_passed",
            reason=verdict.reason,
            version=str(new),
            actor=actor,
            evidence=verdict.to_dict(),
        )
    return verdict


def _paired_verdict(
    loop: FeedbackLoop,
    new: int,
    previous: int,
    since_us: int,
    regression: bool,
    min_samples: int,
    margin: float,
    alpha: float,
) -> WatchVerdict | None:
    state = loop._read_state()
    flt = WindowFilter(state.id, since_us, loop._now_us() + 1)
    features, y, ts, _tags, _served = labeled_rows(loop, flt)
    order = np.argsort(ts, kind="stable")[: min_samples * 5]  # the first rows since
    features, y = features.iloc[order].reset_index(drop=True), y[order]
    if len(y) < min_samples:
        return compare_paired(
            np.zeros(len(y)),
            np.zeros(len(y)),
            binary_errors=not regression,
            min_samples=min_samples,
        )
    task = state.spec.task or "binary"
    try:
        errors = [
            score_model(loop.load_model(v), features, y, task=task, positive=state.spec.positive)
            for v in (new, previous)
        ]
    except Exception:  # the previous version cannot be scored here: the unpaired fallback
        return None
    return compare_paired(
        errors[0].errors,
        errors[1].errors,
        binary_errors=not regression,
        min_samples=min_samples,
        margin=margin,
        alpha=alpha,
    )


def _unpaired_verdict(
    loop: FeedbackLoop,
    new: int,
    previous: int,
    since_us: int,
    regression: bool,
    min_samples: int,
    margin: float,
    alpha: float,
) -> WatchVerdict:
    state = loop._read_state()
    with loop.engine.connect() as conn, conn.begin():
        after = read_rows(
            conn,
            WindowFilter(state.id, since_us, loop._now_us() + 1, str(new)),
            regression=regression,
        )
        before = read_rows(
            conn, WindowFilter(state.id, 0, since_us, str(previous)), regression=regression
        )
    new_errors = _errors(after, regression)[: min_samples * 5]
    old_errors = _errors(before, regression)[-min_samples * 5 :]
    return compare_live(
        new_errors,
        old_errors,
        binary_errors=not regression,
        min_samples=min_samples,
        margin=margin,
        alpha=alpha,
    )


def _promised_error(loop: FeedbackLoop, version: int, since: Any, regression: bool) -> float | None:
    """The error level the gate measured for ``version`` on its holdout, if it was gated."""
    for event in loop.events(kinds=["promoted"], since=since, limit=5):
        if event.version == str(version):
            promised = event.evidence.get("promised") or {}
            if regression:
                return promised.get("mae")
            accuracy = promised.get("accuracy")
            return None if accuracy is None else 1.0 - float(accuracy)
    return None


def _errors(rows: Rows, regression: bool) -> np.ndarray:
    labeled = rows.take(rows.labeled & (rows.b != -1) if not regression else rows.labeled)
    order = np.argsort(labeled.ts, kind="stable")
    if regression:
        return np.abs(labeled.a - labeled.b)[order]
    return (labeled.a != labeled.b).astype(np.float64)[order]


def gather_evidence(
    loop: FeedbackLoop,
    *,
    window: str,
    with_drift: bool = False,
    with_estimate: bool = False,
    record_events: bool = True,
    change_window: timedelta | None = timedelta(days=28),
) -> Any:
    """What the retraining policies look at, read from the log, the registry and the events
    (``record_events=False``: the drift check and the estimate record no event either).
    ``change_window``: where the change detector looks for a rise in the served errors."""
    from feedback_loop.monitoring import LOWER_IS_BETTER
    from feedback_loop.policy import Evidence

    metric = loop.primary_metric
    metrics = loop.get_metrics(window=window)
    champion = loop.aliases().get(CHAMPION)
    versions = {v.version: v for v in loop.versions()}
    record = versions.get(champion) if champion is not None else None
    baseline = None
    if record is not None:
        baseline = record.metrics.get(f"holdout_{metric}", record.metrics.get(f"baseline_{metric}"))
    last_trained = max((v.created_at for v in versions.values()), default=None)
    triggered = loop.events(kinds=["retrain_started"], limit=1)
    last_outcome, since_trigger, in_a_row = _last_outcome(
        loop, triggered[0].time if triggered else None
    )
    change = _error_change(loop, change_window)
    drift_share: float | None = None
    drifted: tuple[str, ...] = ()
    if with_drift:
        try:
            report = loop.check_drift(window=window, record=record_events)
            drift_share = None if report.dataset is None else report.dataset.share
            drifted = tuple(c for c in report.drifted_columns if not c.startswith("__"))
        except ValidationError:
            pass
    estimated = None
    if with_estimate:
        with contextlib.suppress(ValidationError):
            estimated = loop.estimate_performance(window=window, record=record_events).get(metric)
    new_labels = 0
    if last_trained is not None:
        since = loop.get_metrics(window=(from_us(last_trained), from_us(loop._now_us() + 1)))
        new_labels = int(since["labeled"])
    return Evidence(
        now=loop.clock.now(),
        last_trained_at=None if last_trained is None else from_us(last_trained),
        last_triggered_at=triggered[0].time if triggered else None,
        metric_name=metric,
        metric_value=metrics.get(metric),
        metric_lower_is_better=metric in LOWER_IS_BETTER,
        labeled=int(metrics["labeled"]),
        baseline=baseline,
        drift_share=drift_share,
        drifted_features=drifted,
        new_labels_since_training=new_labels,
        estimated_value=estimated,
        estimated_baseline=baseline,
        last_outcome=last_outcome,
        new_labels_since_trigger=since_trigger,
        error_change_z=None if change is None else change[0],
        rows_since_change=0 if change is None else change[1],
        rejections_in_a_row=in_a_row,
    )


def _error_change(loop: FeedbackLoop, window: timedelta | None) -> tuple[float, int] | None:
    """The change detector over the served predictions' errors of the training window:
    the z of the most significant rise, and how many labeled rows followed it."""
    if window is None:
        return None
    state = loop._read_state()
    regression = state.spec.task == "regression"
    now = loop._now_us()
    start = max(now - int(window.total_seconds() * 1e6), 0)
    with loop.engine.connect() as conn, conn.begin():
        rows = read_rows(conn, WindowFilter(state.id, start, now + 1), regression=regression)
    errors = _errors(rows, regression)
    change = error_increase(errors, min_segment=50, min_z=0.0)
    if change is None:
        return None
    return change.z, len(errors) - change.index


def _last_outcome(loop: FeedbackLoop, triggered: Any) -> tuple[str | None, int | None, int]:
    """How the newest retraining ended (``promoted``, ``rejected`` or None while it runs),
    how many labeled predictions were made since it started, and how many gate verdicts in a
    row (newest first) were rejections."""
    if triggered is None:
        return None, None, 0
    kinds = {
        e.kind
        for e in loop.events(
            kinds=["gate_passed", "gate_rejected", "retrain_failed"], since=triggered, limit=5
        )
    }
    outcome = None
    if "gate_passed" in kinds:
        outcome = "promoted"
    elif kinds:
        outcome = "rejected"
    since = loop.get_metrics(window=(triggered, from_us(loop._now_us() + 1)))
    in_a_row = 0
    for event in loop.events(kinds=["gate_passed", "gate_rejected"], limit=16):
        if event.kind == "gate_passed":
            break
        in_a_row += 1
    return outcome, int(since["labeled"]), in_a_row
