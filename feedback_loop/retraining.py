"""Deciding whether to retrain, and recording the request.

The full policies (schedules, drift, data volume, cooldowns) build on this: a decision is a
small truthy object that carries the numbers it was made from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from feedback_loop.monitoring import LOWER_IS_BETTER


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
