"""Deciding whether to retrain, and recording the request.

The full policies (schedules, drift, data volume, cooldowns) build on this: a decision is a
small truthy object that carries the numbers it was made from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from feedback_loop.collect.handle import ModelHandle
from feedback_loop.core.timeutil import Window
from feedback_loop.monitor.metrics import LOWER_IS_BETTER, metrics_over, primary_metric
from feedback_loop.retrain.evidence import gather_evidence
from feedback_loop.retrain.policy import Policy, PolicyDecision, default_policy


@dataclass(frozen=True)
class RetrainDecision:
    """Whether to retrain, and why.

    >>> d = RetrainDecision(True, "accuracy 0.81 < 0.90", "accuracy", 0.81, 0.9, 500, 100, "7d")
    >>> bool(d)
    True
    """

    retrain: bool
    reason: str
    metric: str
    value: float | None
    threshold: float | None
    labeled: int
    min_labeled: int
    window: str

    def __bool__(self) -> bool:
        return self.retrain

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    metrics: dict[str, Any],
    *,
    metric: str,
    threshold: float | None,
    min_labeled: int,
    window: str,
) -> RetrainDecision:
    """Threshold rule: the primary metric breaches ``threshold`` on enough labeled predictions."""
    value = metrics.get(metric)
    labeled = int(metrics.get("labeled") or 0)

    def made(retrain: bool, reason: str) -> RetrainDecision:
        return RetrainDecision(
            retrain, reason, metric, value, threshold, labeled, min_labeled, window
        )

    if threshold is None:
        return made(False, "no retrain_threshold is set")
    if labeled < min_labeled:
        return made(False, f"only {labeled} labeled predictions in {window}; need {min_labeled}")
    if value is None:
        return made(False, f"{metric} is not defined on this window")
    lower_better = metric in LOWER_IS_BETTER
    breached = value > threshold if lower_better else value < threshold
    sign = ">" if lower_better else "<"
    if breached:
        return made(True, f"{metric} {value:.4g} {sign} threshold {threshold:.4g} over {window}")
    return made(False, f"{metric} {value:.4g} is within threshold {threshold:.4g} over {window}")


@dataclass(frozen=True)
class RetrainRule:
    """What ``should_retrain`` asks: a policy (with the evidence it needs), or else the seed's
    threshold rule on the primary metric."""

    policy: Policy | None = None
    with_drift: bool = False
    with_estimate: bool = False
    threshold: float | None = None
    min_labeled: int = 100


def should_retrain(
    handle: ModelHandle,
    rule: RetrainRule,
    window: Window,
    *,
    record: bool = True,
    actor: str = "feedback-loop",
) -> RetrainDecision | PolicyDecision:
    """The rule's decision over ``window``; a ``retrain_due`` event when due (unless
    ``record=False``, which writes nothing at all)."""
    verdict: RetrainDecision | PolicyDecision
    policy, with_drift = rule.policy, rule.with_drift
    if policy is None and rule.threshold is None:
        # nothing configured: the default policy, with drift evidence
        policy, with_drift = default_policy(), True
    if policy is not None:
        evidence = gather_evidence(
            handle,
            window=str(window),
            with_drift=with_drift,
            with_estimate=rule.with_estimate,
            record_events=record,
        )
        verdict = policy.evaluate(evidence)
    else:
        verdict = decide(
            metrics_over(handle, window),
            metric=primary_metric(handle),
            threshold=rule.threshold,
            min_labeled=rule.min_labeled,
            window=str(window),
        )
    if record and verdict:
        handle.write_event(
            "retrain_due", reason=verdict.reason, evidence=verdict.to_dict(), actor=actor
        )
    return verdict
