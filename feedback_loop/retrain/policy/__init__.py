"""Retraining policies: decide from a snapshot of evidence whether a model should retrain.

The service layer gathers an :class:`Evidence` (metric over the window, baseline, drift, label
counts, training and trigger times) and asks a :class:`Policy`; the answer is a truthy
:class:`PolicyDecision` whose reason carries the numbers. Nothing here reads storage or the
clock, so the same evidence always gives the same decision.

>>> from datetime import UTC, datetime, timedelta
>>> policy = Policy(
...     AnyOf([PerformanceThreshold(max_drop=0.05), Scheduled(cron="0 3 * * 1")]),
...     cooldown=timedelta(days=1),
... )
>>> evidence = Evidence(
...     now=datetime(2024, 10, 18, 12, 0, tzinfo=UTC),
...     last_trained_at=datetime(2024, 10, 14, 3, 5, tzinfo=UTC),
...     metric_name="accuracy", metric_value=0.712, labeled=1240, baseline=0.80,
... )
>>> decision = policy.evaluate(evidence)
>>> bool(decision), decision.reason
(True, 'accuracy 0.712 < 0.75 (baseline 0.80 − 0.05) on 1,240 labeled')
>>> [r.fired for r in decision.results]
[True, False]
"""

from feedback_loop.retrain.policy.config import (
    load_policies,
    policies_from_dict,
    policy_from_dict,
    rule_from_dict,
)
from feedback_loop.retrain.policy.defaults import default_policy
from feedback_loop.retrain.policy.rules import (
    AllOf,
    AnyOf,
    DataVolume,
    DriftedFeatures,
    DriftShare,
    ErrorIncrease,
    EstimateDrop,
    Evidence,
    PerformanceThreshold,
    Policy,
    PolicyDecision,
    PolicyError,
    Rule,
    RuleResult,
    Scheduled,
)
from feedback_loop.retrain.policy.schedule import CronSchedule, format_duration, parse_duration

__all__ = [
    "AllOf",
    "AnyOf",
    "CronSchedule",
    "DataVolume",
    "DriftShare",
    "DriftedFeatures",
    "ErrorIncrease",
    "EstimateDrop",
    "Evidence",
    "PerformanceThreshold",
    "Policy",
    "PolicyDecision",
    "PolicyError",
    "Rule",
    "RuleResult",
    "Scheduled",
    "default_policy",
    "format_duration",
    "load_policies",
    "parse_duration",
    "policies_from_dict",
    "policy_from_dict",
    "rule_from_dict",
]
