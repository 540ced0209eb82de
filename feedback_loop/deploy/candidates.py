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
from feedback_loop.retrain.dataset import DatasetSpec
from feedback_loop.retrain.scoring import score_model
from feedback_loop.retrain.step import labeled_dataset
from feedback_loop.retrain.trainers import Trainer
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
    state = handle.model_state()
    dataset, columns = labeled_dataset(handle, spec)
    train, holdout = dataset.split(spec.holdout)
    progress.stage = "train"
    model = trainer.train(train)
    progress.stage = "score"
    task = state.spec.task or "binary"
    positive = state.spec.positive
    timed = gate.latency_budget_ms is not None
    candidate_scores = score_model(
        model, holdout.X, holdout.y, task=task, positive=positive, measure_latency=timed
    )
    champion_scores = None
    if champion is not None:
        champion_model = registry.load_model(handle, champion)
        champion_scores = score_model(
            champion_model, holdout.X, holdout.y, task=task, positive=positive
        )
    train_pred = _train_predictions(model, train.X, task, positive)
    progress.stage = "register"
    version = registry.register_version(
        handle,
        model,
        features=train.X,
        predictions=train_pred,
        actuals=train.y,
        train_start=int(train.ts[0]) / 1e6 if len(train) else None,
        train_end=int(train.ts[-1]) / 1e6 if len(train) else None,
        train_rows=len(train),
        metrics={f"holdout_{k}": v for k, v in candidate_scores.metrics.items()},
        info={"features": columns, "strategy": spec.strategy, "reason": reason},
        actor=actor,
        guard=guard,
    )
    progress.candidate = version
    progress.stage = "gate"
    decision = run_gate(
        champion_scores, candidate_scores, holdout, gate, task=task, positive=positive
    )
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
        train_rows=len(train),
        holdout_rows=len(holdout),
        metrics=candidate_scores.metrics,
    )


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
