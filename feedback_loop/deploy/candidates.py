"""A candidate's way to production: trained on the log, registered, gated against the
champion on the same held-out rows, and promoted if it passes. Every step writes an event."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from feedback_loop.collect.handle import ModelHandle
from feedback_loop.core.limits import MAX_REASON_LENGTH
from feedback_loop.deploy import registry
from feedback_loop.deploy.gate import GateConfig, run_gate
from feedback_loop.deploy.promotion import CHALLENGER, CHAMPION, promote_version
from feedback_loop.retrain.dataset import Dataset, DatasetSpec
from feedback_loop.retrain.scoring import Scored, score_model
from feedback_loop.retrain.step import labeled_dataset
from feedback_loop.retrain.trainers import Trainer, variants
from feedback_loop.stats.drift.changepoint import ChangePoint, error_increase
from feedback_loop.store.engine import Guard, write_transaction
from feedback_loop.store.events import write_event
from feedback_loop.store.jobs import LeaseLostError


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


@dataclass
class _Progress:
    """Where a retraining is, for the ``retrain_failed`` event if a step raises."""

    stage: str = "dataset"
    candidate: int | None = None


def retrain(
    handle: ModelHandle,
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
    handle.model_state()  # a retraining writes (its events): the model row may be made here
    champion = registry.aliases(handle).get(CHAMPION)
    _write_event(
        handle,
        guard,
        "retrain_started",
        reason=reason,
        actor=actor,
        evidence={"strategy": spec.strategy, "champion": champion},
    )
    progress = _Progress()
    try:
        return _retrain_steps(
            handle, trainer, progress, spec, gate, reason, actor, promote, guard, champion
        )
    except LeaseLostError:
        raise
    except Exception as exc:  # any failure is recorded, and the loop goes on
        # bounded like every reason (a command's output can be long)
        failure = f"{progress.stage} failed: {type(exc).__name__}: {exc}"[:MAX_REASON_LENGTH]
        _write_event(
            handle,
            guard,
            "retrain_failed",
            reason=failure,
            actor=actor,
            version=None if progress.candidate is None else str(progress.candidate),
            evidence={"stage": progress.stage, "candidate": progress.candidate},
        )
        return RetrainOutcome(progress.candidate, champion, False, failure, failed=progress.stage)


def _retrain_steps(
    handle: ModelHandle,
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
    state = handle.model_state()
    dataset, columns = labeled_dataset(handle, spec)
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
    name, share, member, model, candidate_scores = min(fitted, key=lambda f: _loss(f[4]))
    if timed:
        candidate_scores = score_model(
            model, holdout.X, holdout.y, task=task, positive=positive, measure_latency=True
        )
    champion_scores = None
    if champion is not None:
        champion_model = registry.load_model(handle, champion)
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
    version = registry.register_version(
        handle,
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
    _record_verdict(handle, guard, version, champion, decision, actor)
    promoted = False
    if decision["passed"] and promote:
        progress.stage = "promote"
        promote_version(
            handle,
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


def _loss(scores: Scored) -> float:
    """What the best candidate minimises on validation: error rate, or MAE."""
    return float(np.mean(scores.errors)) if len(scores.errors) else float("inf")


def _summary(scores: Scored) -> dict[str, Any]:
    key = "mae" if "mae" in scores.metrics else "accuracy"
    return {key: scores.metrics.get(key)}


def _verdict(decision: dict[str, Any]) -> str:
    failed = [c["name"] for c in decision["checks"] if not c["passed"]]
    return "passed every check" if decision["passed"] else f"failed {', '.join(failed)}"


def _record_verdict(
    handle: ModelHandle,
    guard: Guard | None,
    version: int,
    champion: int | None,
    decision: dict[str, Any],
    actor: str,
) -> None:
    """The gate's verdict event and ``challenger`` moved to the judged candidate, together."""
    state = handle.model_state()
    now = handle.now_us()
    with write_transaction(handle.engine) as conn:
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
        registry.move_in(
            conn, state.id, CHALLENGER, version, now, actor, f"gated candidate {version}"
        )


def _write_event(
    handle: ModelHandle,
    guard: Guard | None,
    kind: str,
    *,
    reason: str,
    actor: str,
    version: str | None = None,
    evidence: dict[str, Any] | None = None,
) -> None:
    """An event with ``guard`` run inside the same transaction."""
    handle.write_event(
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
