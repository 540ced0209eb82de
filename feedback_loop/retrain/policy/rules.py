"""Retraining rules: pure checks over one snapshot of evidence.

The service layer gathers the numbers once (metric over the window, drift, label counts,
training times) into an :class:`Evidence`; rules only read it. With storage and clocks kept
out, every decision can be reproduced from the evidence it stores and tested without a
database. Each result carries a one-line reason with the numbers, because "retrain: yes" is
useless to whoever is paged for it.

>>> now = datetime(2024, 10, 18, 12, 0, tzinfo=UTC)
>>> evidence = Evidence(now=now, metric_name="accuracy", metric_value=0.712, labeled=1240,
...                     baseline=0.80)
>>> PerformanceThreshold(max_drop=0.05, min_labeled=200).evaluate(evidence).reason
'accuracy 0.712 < 0.75 (baseline 0.80 − 0.05) on 1,240 labeled'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol, runtime_checkable

from feedback_loop.errors import FeedbackLoopError
from feedback_loop.retrain.policy.schedule import CronSchedule, format_duration, human_duration


class PolicyError(FeedbackLoopError, ValueError):
    """A rule, policy or configuration value that cannot be used; ``key`` says where.

    >>> str(PolicyError("models.churn.policy.cooldown", "'1x' is not a duration"))
    "models.churn.policy.cooldown: '1x' is not a duration"
    """

    def __init__(self, key: str | None, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


_FLOATS = (
    "metric_value",
    "baseline",
    "drift_share",
    "estimated_value",
    "estimated_baseline",
    "error_change_z",
)


@dataclass(frozen=True)
class Evidence:
    """Everything a policy may look at, gathered by the caller at one instant.

    Unknown numbers are ``None`` (a NaN is read as unknown too). ``drift_share`` is ``None``
    when no drift check ran; ``drifted_features`` then says nothing either. Datetimes must be
    timezone-aware; they are kept in UTC.

    ``last_outcome`` is how the newest retraining ended: ``"promoted"``, ``"rejected"`` (the
    gate, or a failed step), or ``None`` (none yet, or still running); with
    ``new_labels_since_trigger`` it lets a :class:`Policy` retry a rejected retraining sooner
    and count its cooldown in labels as well as in time.
    """

    now: datetime
    last_trained_at: datetime | None = None
    last_triggered_at: datetime | None = None
    metric_name: str = "metric"
    metric_value: float | None = None
    metric_lower_is_better: bool = False
    labeled: int = 0
    baseline: float | None = None
    drift_share: float | None = None
    drifted_features: tuple[str, ...] = ()
    new_labels_since_training: int = 0
    estimated_value: float | None = None
    estimated_baseline: float | None = None
    last_outcome: str | None = None
    new_labels_since_trigger: int | None = None
    error_change_z: float | None = None
    rows_since_change: int = 0
    rejections_in_a_row: int = 0

    def __post_init__(self) -> None:
        # Normalised to plain Python values so that evidence dicts are ready for JSON.
        _set(self, "now", _aware(self.now, "now"))
        for name in ("last_trained_at", "last_triggered_at"):
            value = getattr(self, name)
            if value is not None:
                _set(self, name, _aware(value, name))
        for name in _FLOATS:
            _set(self, name, _optional_float(getattr(self, name)))
        if self.last_outcome not in (None, "promoted", "rejected"):
            raise PolicyError("last_outcome", "must be 'promoted', 'rejected' or None")
        if self.new_labels_since_trigger is not None:
            _set(self, "new_labels_since_trigger", max(int(self.new_labels_since_trigger), 0))
        for name in (
            "labeled",
            "new_labels_since_training",
            "rows_since_change",
            "rejections_in_a_row",
        ):
            count = int(getattr(self, name))
            if count < 0:
                raise PolicyError(name, f"must not be negative, got {count}")
            _set(self, name, count)
        if self.drift_share is not None and not 0.0 <= self.drift_share <= 1.0:
            raise PolicyError("drift_share", f"must be between 0 and 1, got {self.drift_share}")
        _set(self, "drifted_features", tuple(str(f) for f in self.drifted_features))
        _set(self, "metric_lower_is_better", bool(self.metric_lower_is_better))


@dataclass(frozen=True)
class RuleResult:
    """One rule's verdict: whether it fired, why (with the numbers), and the numbers.

    Combinators keep their members' results in ``children``.
    """

    rule: str
    fired: bool
    reason: str
    evidence: dict[str, Any]
    children: tuple[RuleResult, ...] = ()

    def __bool__(self) -> bool:
        return self.fired

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes become ISO-8601 strings."""
        return {
            "rule": self.rule,
            "fired": self.fired,
            "reason": self.reason,
            "evidence": _jsonable(self.evidence),
            "children": [child.to_dict() for child in self.children],
        }


@runtime_checkable
class Rule(Protocol):
    """What a policy needs of a rule; ``to_dict`` is the config table that rebuilds it."""

    def evaluate(self, evidence: Evidence) -> RuleResult: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Scheduled:
    """Due when ``every`` has passed since the last training, or a ``cron`` time has.

    A model never trained is due. With both set, whichever comes first makes it due.

    >>> rule = Scheduled(every=timedelta(days=7))
    >>> trained = datetime(2024, 10, 11, 12, 0, tzinfo=UTC)
    >>> rule.evaluate(Evidence(now=trained + timedelta(days=7), last_trained_at=trained)).fired
    True
    """

    every: timedelta | None = None
    cron: str | None = None
    kind: ClassVar[str] = "scheduled"
    _schedule: CronSchedule | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.every is None and self.cron is None:
            raise PolicyError(None, "a scheduled rule needs every, cron or both")
        if self.every is not None and (
            not isinstance(self.every, timedelta) or self.every <= timedelta(0)
        ):
            raise PolicyError("every", f"must be a positive duration, got {self.every!r}")
        if self.cron is not None:
            try:
                _set(self, "_schedule", CronSchedule.parse(self.cron))
            except ValueError as exc:
                raise PolicyError("cron", str(exc)) from None

    def evaluate(self, evidence: Evidence) -> RuleResult:
        last, now = evidence.last_trained_at, evidence.now
        data: dict[str, Any] = {
            "every": None if self.every is None else format_duration(self.every),
            "cron": self.cron,
            "last_trained_at": last,
            "due_at": None,
        }
        if last is None:
            return RuleResult(self.kind, True, f"never trained; schedule {self._describe()}", data)
        due: list[tuple[datetime, str]] = []
        if self.every is not None:
            due.append((last + self.every, f"every {format_duration(self.every)}"))
        if self._schedule is not None:
            due.append((self._schedule.next_after(last), f"cron '{self.cron}'"))
        due_at, which = min(due)
        data["due_at"] = due_at
        trained = f"last trained {_when(last)}, {human_duration(now - last)} ago"
        if due_at <= now:
            reason = f"{which} due since {_when(due_at)}; {trained}"
        else:
            wait = human_duration(due_at - now)
            reason = f"{which} not due until {_when(due_at)} (in {wait}); {trained}"
        return RuleResult(self.kind, due_at <= now, reason, data)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind}
        if self.every is not None:
            out["every"] = format_duration(self.every)
        if self.cron is not None:
            out["cron"] = self.cron
        return out

    def _describe(self) -> str:
        parts = []
        if self.every is not None:
            parts.append(f"every {format_duration(self.every)}")
        if self.cron is not None:
            parts.append(f"cron '{self.cron}'")
        return " or ".join(parts)


@dataclass(frozen=True)
class PerformanceThreshold:
    """Due when the primary metric is worse than ``threshold``, or has dropped from the
    baseline by more than ``max_drop`` (a fraction of the baseline if ``relative``).

    "Worse" follows ``metric_lower_is_better``. A value exactly at the limit does not fire.
    Under ``min_labeled`` labeled predictions it never fires: a handful of labels is noise.
    With both ``threshold`` and ``max_drop`` the stricter limit applies.
    """

    threshold: float | None = None
    max_drop: float | None = None
    relative: bool = False
    min_labeled: int = 100
    kind: ClassVar[str] = "threshold"

    def __post_init__(self) -> None:
        if self.threshold is None and self.max_drop is None:
            raise PolicyError(None, "a threshold rule needs threshold, max_drop or both")
        if self.threshold is not None:
            _set(self, "threshold", _finite(self.threshold, "threshold"))
        if self.max_drop is not None:
            _set(self, "max_drop", _non_negative(self.max_drop, "max_drop"))
        _set(self, "min_labeled", _count(self.min_labeled, "min_labeled", minimum=0))

    def evaluate(self, evidence: Evidence) -> RuleResult:
        name, value, labeled = evidence.metric_name, evidence.metric_value, evidence.labeled
        lower = evidence.metric_lower_is_better
        data: dict[str, Any] = {
            "metric": name,
            "value": value,
            "lower_is_better": lower,
            "labeled": labeled,
            "min_labeled": self.min_labeled,
            "threshold": self.threshold,
            "baseline": evidence.baseline,
            "max_drop": self.max_drop,
            "relative": self.relative,
            "limit": None,
        }
        if labeled < self.min_labeled:
            reason = f"only {labeled:,} labeled predictions; {name} needs {self.min_labeled:,}"
            return RuleResult(self.kind, False, reason, data)
        if value is None:
            reason = f"{name} is unknown on {labeled:,} labeled"
            return RuleResult(self.kind, False, reason, data)
        limits: list[tuple[float, str]] = []
        if self.threshold is not None:
            limits.append((self.threshold, f"threshold {_num(self.threshold)}"))
        if self.max_drop is not None and evidence.baseline is not None:
            limits.append(
                _drop_limit("baseline", evidence.baseline, self.max_drop, self.relative, lower)
            )
        if not limits:
            reason = f"no baseline {name} to measure a drop from"
            return RuleResult(self.kind, False, reason, data)
        limit, shown = (min if lower else max)(limits, key=lambda pair: pair[0])
        data["limit"] = limit
        fired = _worse(value, limit, lower)
        reason = f"{name} {_num(value)} {_op(fired, lower)} {shown} on {labeled:,} labeled"
        return RuleResult(self.kind, fired, reason, data)

    def to_dict(self) -> dict[str, Any]:
        return _table(self.kind, self)


@dataclass(frozen=True)
class ErrorIncrease:
    """Due when the served predictions' error rose significantly within the training window
    (``error_change_z``, the change detector's z, at least ``min_z``) and at least
    ``min_rows`` labeled rows followed the change, enough to learn it from.

    A drop of a fixed size from the baseline misses moderate changes on a quiet stream and
    fires on noise on a volatile one; a significant change in the model's own errors is
    measured against their own variation.
    """

    min_z: float = 4.0
    min_rows: int = 200
    kind: ClassVar[str] = "error_increase"

    def __post_init__(self) -> None:
        _set(self, "min_z", _non_negative(self.min_z, "min_z"))
        _set(self, "min_rows", _count(self.min_rows, "min_rows", minimum=1))

    def evaluate(self, evidence: Evidence) -> RuleResult:
        z, rows = evidence.error_change_z, evidence.rows_since_change
        data = {"z": z, "min_z": self.min_z, "rows_since": rows, "min_rows": self.min_rows}
        if z is None or z < self.min_z:
            shown = "none found" if z is None else f"z {z:.2f} < {self.min_z:.4g}"
            return RuleResult(self.kind, False, f"no significant rise in errors ({shown})", data)
        if rows < self.min_rows:
            reason = f"errors rose (z {z:.2f}) but only {rows:,} rows since; need {self.min_rows:,}"
            return RuleResult(self.kind, False, reason, data)
        reason = f"errors rose (z {z:.2f} ≥ {self.min_z:.4g}) {rows:,} labeled rows ago"
        return RuleResult(self.kind, True, reason, data)

    def to_dict(self) -> dict[str, Any]:
        return _table(self.kind, self)


@dataclass(frozen=True)
class DriftShare:
    """Due when the share of drifted features is above ``max_share``."""

    max_share: float = 0.5
    kind: ClassVar[str] = "drift_share"

    def __post_init__(self) -> None:
        share = _finite(self.max_share, "max_share")
        if not 0.0 <= share < 1.0:
            raise PolicyError("max_share", f"must be at least 0 and below 1, got {share}")
        _set(self, "max_share", share)

    def evaluate(self, evidence: Evidence) -> RuleResult:
        share, drifted = evidence.drift_share, evidence.drifted_features
        data = {"drift_share": share, "max_share": self.max_share, "drifted": list(drifted)}
        if share is None:
            return RuleResult(self.kind, False, "drift share is unknown (no drift check)", data)
        fired = _worse(share, self.max_share, lower_is_better=True)
        reason = f"drift share {_pct(share)} {_op(fired, True)} {_pct(self.max_share)}"
        if drifted:
            reason += f" (drifted: {_names(drifted)})"
        return RuleResult(self.kind, fired, reason, data)

    def to_dict(self) -> dict[str, Any]:
        return _table(self.kind, self)


@dataclass(frozen=True)
class DriftedFeatures:
    """Due when any (or, with ``any_of=False``, all) of the monitored features drifted.

    For the few features a model cannot do without, whatever the others do.
    """

    features: Sequence[str]
    any_of: bool = True
    kind: ClassVar[str] = "drifted_features"

    def __post_init__(self) -> None:
        if isinstance(self.features, str):
            raise PolicyError("features", "must be a list of feature names, not one string")
        names = tuple(self.features)
        if not names:
            raise PolicyError("features", "must name at least one feature")
        for name in names:
            if not isinstance(name, str) or not name:
                raise PolicyError("features", f"{name!r} is not a feature name")
            if names.count(name) > 1:
                raise PolicyError("features", f"{name!r} is listed twice")
        _set(self, "features", names)
        _set(self, "any_of", bool(self.any_of))

    def evaluate(self, evidence: Evidence) -> RuleResult:
        drifted = set(evidence.drifted_features)
        hit = [f for f in self.features if f in drifted]
        stable = [f for f in self.features if f not in drifted]
        data = {"features": list(self.features), "any_of": self.any_of, "drifted": hit}
        if evidence.drift_share is None and not drifted:
            return RuleResult(self.kind, False, "feature drift is unknown (no drift check)", data)
        n = len(self.features)
        if self.any_of:
            if hit:
                reason = f"{len(hit)} of {n} monitored features drifted: {_names(hit)}"
                return RuleResult(self.kind, True, reason, data)
            reason = f"none of the monitored features drifted ({_names(self.features)})"
            return RuleResult(self.kind, False, reason, data)
        if not stable:
            reason = f"all {n} monitored features drifted: {_names(hit)}"
            return RuleResult(self.kind, True, reason, data)
        reason = (
            f"{len(hit)} of {n} monitored features drifted, all needed; stable: {_names(stable)}"
        )
        return RuleResult(self.kind, False, reason, data)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "features": list(self.features), "any_of": self.any_of}


@dataclass(frozen=True)
class DataVolume:
    """Due once ``min_new_labels`` labels have arrived since the last training."""

    min_new_labels: int
    kind: ClassVar[str] = "data_volume"

    def __post_init__(self) -> None:
        _set(self, "min_new_labels", _count(self.min_new_labels, "min_new_labels", minimum=1))

    def evaluate(self, evidence: Evidence) -> RuleResult:
        new, need = evidence.new_labels_since_training, self.min_new_labels
        data = {"new_labels": new, "min_new_labels": need}
        if new >= need:
            reason = f"{new:,} new labels since the last training ≥ {need:,}"
            return RuleResult(self.kind, True, reason, data)
        reason = f"only {new:,} new labels since the last training; need {need:,}"
        return RuleResult(self.kind, False, reason, data)

    def to_dict(self) -> dict[str, Any]:
        return _table(self.kind, self)


@dataclass(frozen=True)
class EstimateDrop:
    """Due when the label-free estimate of the metric dropped by more than ``max_drop``.

    Compares with ``estimated_baseline``, else with ``baseline``. It reacts before labels
    arrive, so it has no labeled-count guard; pair it with another rule in :class:`AllOf` if
    the estimate alone should not decide.
    """

    max_drop: float
    relative: bool = False
    kind: ClassVar[str] = "estimate_drop"

    def __post_init__(self) -> None:
        _set(self, "max_drop", _non_negative(self.max_drop, "max_drop"))

    def evaluate(self, evidence: Evidence) -> RuleResult:
        name, value = evidence.metric_name, evidence.estimated_value
        label, base = "estimated baseline", evidence.estimated_baseline
        if base is None:
            label, base = "baseline", evidence.baseline
        lower = evidence.metric_lower_is_better
        data: dict[str, Any] = {
            "metric": name,
            "estimated_value": value,
            "baseline": base,
            "baseline_kind": label,
            "max_drop": self.max_drop,
            "relative": self.relative,
            "lower_is_better": lower,
            "limit": None,
        }
        if value is None:
            return RuleResult(self.kind, False, f"no label-free estimate of {name}", data)
        if base is None:
            reason = f"no baseline {name} to compare the estimate with"
            return RuleResult(self.kind, False, reason, data)
        limit, shown = _drop_limit(label, base, self.max_drop, self.relative, lower)
        data["limit"] = limit
        fired = _worse(value, limit, lower)
        reason = f"estimated {name} {_num(value)} {_op(fired, lower)} {shown}"
        return RuleResult(self.kind, fired, reason, data)

    def to_dict(self) -> dict[str, Any]:
        return _table(self.kind, self)


@dataclass(frozen=True)
class AnyOf:
    """Fires when at least one member fires. Every member is evaluated, for the record."""

    rules: Sequence[Rule]
    kind: ClassVar[str] = "any"

    def __post_init__(self) -> None:
        _set(self, "rules", _members(self.rules))

    def evaluate(self, evidence: Evidence) -> RuleResult:
        results = tuple(rule.evaluate(evidence) for rule in self.rules)
        fired = [r for r in results if r.fired]
        data = {"fired": len(fired), "rules": len(results)}
        if fired:
            reason = "; ".join(r.reason for r in fired)
            return RuleResult(self.kind, True, reason, data, results)
        reason = "no rule fired: " + "; ".join(r.reason for r in results)
        return RuleResult(self.kind, False, reason, data, results)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "rules": [rule.to_dict() for rule in self.rules]}


@dataclass(frozen=True)
class AllOf:
    """Fires when every member fires, e.g. "drift, but only with enough new labels"."""

    rules: Sequence[Rule]
    kind: ClassVar[str] = "all"

    def __post_init__(self) -> None:
        _set(self, "rules", _members(self.rules))

    def evaluate(self, evidence: Evidence) -> RuleResult:
        results = tuple(rule.evaluate(evidence) for rule in self.rules)
        waiting = [r for r in results if not r.fired]
        data = {"fired": len(results) - len(waiting), "rules": len(results)}
        if not waiting:
            reason = f"all {len(results)} rules fired: " + "; ".join(r.reason for r in results)
            return RuleResult(self.kind, True, reason, data, results)
        count = f"{len(results) - len(waiting)} of {len(results)} rules fired"
        reason = f"{count}; not: " + "; ".join(r.reason for r in waiting)
        return RuleResult(self.kind, False, reason, data, results)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "rules": [rule.to_dict() for rule in self.rules]}


@dataclass(frozen=True)
class PolicyDecision:
    """A policy's verdict; truthy when retraining should start now.

    ``cooled_down`` is True when the rules fired but the cooldown held the decision back;
    ``blocked_until`` then says when it lifts. ``results`` are the members' results of a
    top-level :class:`AnyOf`/:class:`AllOf`, else the single rule's result.
    """

    fired: bool
    reason: str
    results: list[RuleResult]
    cooled_down: bool = False
    policy: str = "default"
    evaluated_at: datetime | None = None
    blocked_until: datetime | None = None

    def __bool__(self) -> bool:
        return self.fired

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes become ISO-8601 strings."""
        return {
            "policy": self.policy,
            "fired": self.fired,
            "reason": self.reason,
            "cooled_down": self.cooled_down,
            "blocked_until": _jsonable(self.blocked_until),
            "evaluated_at": _jsonable(self.evaluated_at),
            "results": [r.to_dict() for r in self.results],
        }


@dataclass(frozen=True)
class Policy:
    """A rule plus a cooldown: after a trigger, the rule may not trigger again for a while.

    The cooldown counts from ``last_triggered_at`` so that a retraining still running (which
    has not yet moved ``last_trained_at``) is not requested again on every evaluation.

    * ``retry_after``: the cooldown after a retraining that promoted nothing (the gate
      rejected it, or a step failed). An abrupt change fires the rules before the window holds
      enough of the new data, the gate rightly rejects, and a full cooldown would then lock
      the loop out just when it should act; ``None``: the same as ``cooldown``.
    * ``retry_labels``: after such a retraining, also wait for this many new labels since
      the trigger (a retry on nearly the same data would be judged the same way), but never
      longer than the full cooldown. ``None``: time only. Both waits double with each
      rejection in a row (``Evidence.rejections_in_a_row``).
    * ``cooldown_labels``: the cooldown after a promotion also ends once this many labels
      have arrived since the trigger, so that at high volume a cooldown does not mean tens of
      thousands of rows (time still bounds it at low volume). ``None``: time only, the
      default policy's choice: while the rules keep firing (gradual drift), the label count
      becomes the retrain rate, and the cost grows with the traffic.

    >>> policy = Policy(DataVolume(1000), cooldown=timedelta(days=1), name="churn")
    >>> now = datetime(2024, 10, 18, 12, 0, tzinfo=UTC)
    >>> decision = policy.evaluate(Evidence(now=now, new_labels_since_training=5000,
    ...                                     last_triggered_at=now - timedelta(hours=6)))
    >>> bool(decision), decision.cooled_down, decision.blocked_until.isoformat()
    (False, True, '2024-10-19T06:00:00+00:00')
    """

    rule: Rule
    cooldown: timedelta = timedelta(0)
    name: str = "default"
    retry_after: timedelta | None = None
    retry_labels: int | None = None
    cooldown_labels: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.rule, Rule):
            raise PolicyError("rule", f"{self.rule!r} has no evaluate() and to_dict()")
        if not isinstance(self.cooldown, timedelta) or self.cooldown < timedelta(0):
            raise PolicyError("cooldown", f"must be a duration of 0 or more, got {self.cooldown!r}")
        if self.retry_after is not None and (
            not isinstance(self.retry_after, timedelta) or self.retry_after < timedelta(0)
        ):
            raise PolicyError(
                "retry_after", f"must be a duration of 0 or more, got {self.retry_after!r}"
            )
        for name in ("retry_labels", "cooldown_labels"):
            if getattr(self, name) is not None:
                _set(self, name, _count(getattr(self, name), name, minimum=1))
        if not isinstance(self.name, str) or not self.name:
            raise PolicyError("name", f"must be a non-empty string, got {self.name!r}")

    def evaluate(self, evidence: Evidence) -> PolicyDecision:
        top = self.rule.evaluate(evidence)
        results = list(top.children) or [top]
        now, last = evidence.now, evidence.last_triggered_at
        if not top.fired or last is None:
            return PolicyDecision(top.fired, top.reason, results, False, self.name, now)
        labels = evidence.new_labels_since_trigger or 0
        if evidence.last_outcome == "rejected" and self.retry_after is not None:
            # each rejection in a row doubles the wait: a gate that keeps finding no better
            # model is not asked again every day
            factor = 2 ** max(min(evidence.rejections_in_a_row, 16) - 1, 0)
            kind = "retry wait after a rejected retraining"
            if factor > 1:
                kind += f" ({evidence.rejections_in_a_row} in a row)"
            span = min(self.retry_after * factor, max(self.cooldown, self.retry_after))
            need = None if self.retry_labels is None else self.retry_labels * factor
            # both the time and the labels, but never longer than the full cooldown
            waiting = now - last < span or (need is not None and labels < need)
            waiting = waiting and now - last < max(self.cooldown, span)
            more = "" if need is None else f" and {need:,} new labels (have {labels:,})"
            until = last + (
                max(self.cooldown, span) if need is not None and labels < need else span
            )
        else:
            kind, span, need = "cooldown", self.cooldown, self.cooldown_labels
            waiting = now - last < span and (need is None or labels < need)
            more = "" if need is None else f" or {need:,} new labels (have {labels:,})"
            until = last + span
        if waiting:
            reason = (
                f"{kind} {format_duration(span)}{more} blocks retraining until {_when(until)}"
                f" (last triggered {_when(last)}); would fire: {top.reason}"
            )
            return PolicyDecision(False, reason, results, True, self.name, now, until)
        return PolicyDecision(top.fired, top.reason, results, False, self.name, now)

    def to_dict(self) -> dict[str, Any]:
        """The config table that
        :func:`~feedback_loop.retrain.policy.config.policy_from_dict` reads.

        ``combine`` is written only for a top-level :class:`AnyOf`/:class:`AllOf`, so a
        single rule reads back as itself.
        """
        out: dict[str, Any] = {"name": self.name}
        if self.cooldown:
            out["cooldown"] = format_duration(self.cooldown)
        if self.retry_after is not None:
            out["retry_after"] = format_duration(self.retry_after)
        if self.retry_labels is not None:
            out["retry_labels"] = self.retry_labels
        if self.cooldown_labels is not None:
            out["cooldown_labels"] = self.cooldown_labels
        if isinstance(self.rule, AnyOf | AllOf):
            out["combine"] = self.rule.kind
            out["rules"] = [rule.to_dict() for rule in self.rule.rules]
        else:
            out["rules"] = [self.rule.to_dict()]
        return out


# -- helpers ----------------------------------------------------------------------------------


def _set(obj: object, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


def _aware(moment: Any, name: str) -> datetime:
    if not isinstance(moment, datetime):
        raise PolicyError(name, f"must be a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise PolicyError(name, "must be timezone-aware (UTC)")
    return moment.astimezone(UTC)


def _optional_float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(name, f"must be a number, got {value!r}")
    if not math.isfinite(value):
        raise PolicyError(name, f"must be finite, got {value!r}")
    return float(value)


def _non_negative(value: Any, name: str) -> float:
    number = _finite(value, name)
    if number < 0:
        raise PolicyError(name, f"must not be negative, got {number}")
    return number


def _count(value: Any, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(name, f"must be a whole number, got {value!r}")
    if value < minimum:
        raise PolicyError(name, f"must be at least {minimum}, got {value}")
    return int(value)


def _members(rules: Sequence[Rule]) -> tuple[Rule, ...]:
    members = tuple(rules)
    if not members:
        raise PolicyError("rules", "needs at least one rule")
    for i, rule in enumerate(members):
        if not isinstance(rule, Rule):
            raise PolicyError(f"rules[{i}]", f"{rule!r} has no evaluate() and to_dict()")
    return members


def _table(kind: str, rule: Any) -> dict[str, Any]:
    """A rule's config table: its type and its fields that are set."""
    return {"type": kind, **{k: v for k, v in asdict(rule).items() if v is not None}}


def _worse(value: float, limit: float, lower_is_better: bool) -> bool:
    """Strictly worse than ``limit``; float noise at the limit (0.8 - 0.05) is not a breach."""
    if math.isclose(value, limit, rel_tol=1e-9, abs_tol=1e-12):
        return False
    return value > limit if lower_is_better else value < limit


def _op(fired: bool, lower_is_better: bool) -> str:
    if lower_is_better:
        return ">" if fired else "≤"
    return "<" if fired else "≥"


def _drop_limit(
    label: str, base: float, max_drop: float, relative: bool, lower_is_better: bool
) -> tuple[float, str]:
    """The value at which a drop of ``max_drop`` from ``base`` is reached, and how to show it."""
    delta = max_drop * abs(base) if relative else max_drop
    step = _pct(max_drop) if relative else _num(max_drop)
    if lower_is_better:
        limit = base + delta
        return limit, f"{_num(limit)} ({label} {_num(base)} + {step})"
    limit = base - delta
    return limit, f"{_num(limit)} ({label} {_num(base)} − {step})"


def _num(x: float) -> str:
    """Four significant digits, and at least two decimals for small numbers (0.80, not 0.8)."""
    text = f"{x:.4g}"
    if "e" in text or "n" in text or abs(x) >= 100:
        return text
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


def _pct(x: float) -> str:
    return f"{x * 100:.4g}%"


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _names(names: Sequence[str], shown: int = 5) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
