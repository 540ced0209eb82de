"""Retraining policies: rules at their boundaries, cooldowns, cron times and config files."""

from __future__ import annotations

import doctest
import json
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import feedback_loop.retrain.policy as policy_pkg
from feedback_loop.retrain.policy import (
    AllOf,
    AnyOf,
    CronSchedule,
    DataVolume,
    DriftedFeatures,
    DriftShare,
    EstimateDrop,
    Evidence,
    PerformanceThreshold,
    Policy,
    PolicyDecision,
    PolicyError,
    Scheduled,
    format_duration,
    load_policies,
    parse_duration,
    policies_from_dict,
    policy_from_dict,
)
from feedback_loop.retrain.policy import config as config_module
from feedback_loop.retrain.policy import defaults as defaults_module
from feedback_loop.retrain.policy import rules as rules_module
from feedback_loop.retrain.policy import schedule as schedule_module

NOW = datetime(2024, 10, 18, 12, 0, tzinfo=UTC)  # a Friday


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def ev(**kwargs: Any) -> Evidence:
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("metric_name", "accuracy")
    return Evidence(**kwargs)


# -- evidence -------------------------------------------------------------------------------


def test_evidence_is_normalised_to_utc_and_plain_numbers() -> None:
    paris = timezone(timedelta(hours=2))
    e = Evidence(
        now=datetime(2024, 10, 18, 14, 0, tzinfo=paris),
        metric_value=np.float64(0.7),
        labeled=np.int64(12),
        baseline=float("nan"),
        drifted_features=["a", "b"],  # type: ignore[arg-type]
    )
    assert e.now == NOW and e.now.tzinfo is UTC
    assert type(e.metric_value) is float and type(e.labeled) is int
    assert e.baseline is None  # NaN reads as unknown
    assert e.drifted_features == ("a", "b")


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"now": datetime(2024, 10, 18)}, "now"),
        ({"last_trained_at": datetime(2024, 10, 1)}, "last_trained_at"),
        ({"labeled": -1}, "labeled"),
        ({"drift_share": 1.5}, "drift_share"),
    ],
)
def test_evidence_rejects_naive_times_and_impossible_counts(kwargs: dict, key: str) -> None:
    with pytest.raises(PolicyError) as info:
        ev(**kwargs)
    assert info.value.key == key


# -- performance threshold ------------------------------------------------------------------


def test_threshold_fires_below_and_not_at_the_threshold() -> None:
    rule = PerformanceThreshold(threshold=0.75)
    at_limit = rule.evaluate(ev(metric_value=0.75, labeled=500))
    assert not at_limit
    assert at_limit.reason == "accuracy 0.75 ≥ threshold 0.75 on 500 labeled"
    below = rule.evaluate(ev(metric_value=0.7499, labeled=500))
    assert below.fired
    assert below.reason == "accuracy 0.7499 < threshold 0.75 on 500 labeled"
    assert below.evidence["limit"] == 0.75 and below.evidence["value"] == 0.7499


def test_drop_from_baseline_boundary_ignores_float_noise() -> None:
    rule = PerformanceThreshold(max_drop=0.05, min_labeled=200)
    assert not rule.evaluate(ev(metric_value=0.75, labeled=1240, baseline=0.80))
    # 0.80 - 0.10 is 0.7000000000000001 in binary: a value of 0.70 is still at the limit
    at_limit = PerformanceThreshold(max_drop=0.1).evaluate(
        ev(metric_value=0.70, labeled=1240, baseline=0.80)
    )
    assert not at_limit and at_limit.reason.startswith("accuracy 0.70 ≥ 0.70")
    fired = rule.evaluate(ev(metric_value=0.712, labeled=1240, baseline=0.80))
    assert fired.fired
    assert fired.reason == "accuracy 0.712 < 0.75 (baseline 0.80 − 0.05) on 1,240 labeled"
    assert fired.evidence["limit"] == pytest.approx(0.75)


def test_relative_drop_is_a_fraction_of_the_baseline() -> None:
    rule = PerformanceThreshold(max_drop=0.1, relative=True)
    assert not rule.evaluate(ev(metric_value=0.72, labeled=100, baseline=0.80))
    fired = rule.evaluate(ev(metric_value=0.719, labeled=100, baseline=0.80))
    assert fired.fired
    assert fired.reason == "accuracy 0.719 < 0.72 (baseline 0.80 − 10%) on 100 labeled"
    # a negative baseline (r2) still moves the limit the worse way
    r2 = ev(metric_name="r2", metric_value=-0.31, labeled=100, baseline=-0.2)
    assert rule.evaluate(r2).evidence["limit"] == pytest.approx(-0.22)
    assert rule.evaluate(r2).fired


def test_three_samples_never_trigger() -> None:
    rule = PerformanceThreshold(threshold=0.9)
    result = rule.evaluate(ev(metric_value=0.0, labeled=3))
    assert not result
    assert result.reason == "only 3 labeled predictions; accuracy needs 100"
    assert rule.evaluate(ev(metric_value=0.0, labeled=100)).fired  # exactly enough
    assert not PerformanceThreshold(threshold=0.9, min_labeled=1000).evaluate(
        ev(metric_value=0.0, labeled=999)
    )


def test_lower_is_better_metrics_fire_when_they_rise() -> None:
    rule = PerformanceThreshold(max_drop=0.2, min_labeled=10)

    def rmse(value: float) -> Evidence:
        return ev(
            metric_name="rmse",
            metric_value=value,
            metric_lower_is_better=True,
            labeled=50,
            baseline=1.0,
        )

    at_limit = rule.evaluate(rmse(1.2))
    assert (
        not at_limit and at_limit.reason == "rmse 1.20 ≤ 1.20 (baseline 1.00 + 0.20) on 50 labeled"
    )
    worse = rule.evaluate(rmse(1.25))
    assert worse and worse.reason == "rmse 1.25 > 1.20 (baseline 1.00 + 0.20) on 50 labeled"
    assert not rule.evaluate(rmse(0.5))  # an improvement is not a drop
    absolute = PerformanceThreshold(threshold=2.0, min_labeled=10)
    assert not absolute.evaluate(rmse(1.0))
    assert absolute.evaluate(rmse(2.5))
    # the same numbers on a higher-is-better metric go the other way
    assert absolute.evaluate(ev(metric_value=1.0, labeled=50))


def test_threshold_and_drop_together_use_the_stricter_limit() -> None:
    rule = PerformanceThreshold(threshold=0.70, max_drop=0.05)
    result = rule.evaluate(ev(metric_value=0.74, labeled=500, baseline=0.80))
    assert result.fired and "(baseline 0.80 − 0.05)" in result.reason
    no_baseline = rule.evaluate(ev(metric_value=0.74, labeled=500))
    assert not no_baseline and "threshold 0.70" in no_baseline.reason


def test_threshold_without_value_or_baseline_does_not_fire() -> None:
    unknown = PerformanceThreshold(threshold=0.9).evaluate(ev(labeled=500))
    assert not unknown and unknown.reason == "accuracy is unknown on 500 labeled"
    no_base = PerformanceThreshold(max_drop=0.05).evaluate(ev(metric_value=0.1, labeled=500))
    assert not no_base and no_base.reason == "no baseline accuracy to measure a drop from"


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({}, None),
        ({"max_drop": -0.1}, "max_drop"),
        ({"threshold": math.inf}, "threshold"),
        ({"threshold": 0.5, "min_labeled": -1}, "min_labeled"),
        ({"threshold": 0.5, "min_labeled": 1.5}, "min_labeled"),
    ],
)
def test_threshold_rejects_bad_settings(kwargs: dict, key: str | None) -> None:
    with pytest.raises(PolicyError) as info:
        PerformanceThreshold(**kwargs)
    assert info.value.key == key


# -- schedule -------------------------------------------------------------------------------


def test_every_fires_once_the_interval_has_passed() -> None:
    rule = Scheduled(every=timedelta(days=7))
    trained = at("2024-10-11 12:00")
    early = rule.evaluate(ev(now=trained + timedelta(days=7, minutes=-1), last_trained_at=trained))
    assert not early
    assert early.reason == (
        "every 1w not due until 2024-10-18 12:00 UTC (in 1m); "
        "last trained 2024-10-11 12:00 UTC, 6d 23h ago"
    )
    due = rule.evaluate(ev(now=trained + timedelta(days=7), last_trained_at=trained))
    assert due.fired
    assert due.reason.startswith("every 1w due since 2024-10-18 12:00 UTC;")
    assert due.evidence["due_at"] == at("2024-10-18 12:00")


def test_a_model_never_trained_is_due() -> None:
    result = Scheduled(cron="0 3 * * 1").evaluate(ev())
    assert result.fired and result.reason == "never trained; schedule cron '0 3 * * 1'"


def test_cron_fires_once_a_cron_time_passed_since_training() -> None:
    rule = Scheduled(cron="0 3 * * 1")  # Mondays 03:00
    trained = at("2024-10-14 03:05")  # a Monday, just after the cron time
    before = rule.evaluate(ev(now=at("2024-10-21 02:59"), last_trained_at=trained))
    assert not before and "not due until 2024-10-21 03:00 UTC (in 1m)" in before.reason
    on_time = rule.evaluate(ev(now=at("2024-10-21 03:00"), last_trained_at=trained))
    assert on_time.fired and "cron '0 3 * * 1' due since 2024-10-21 03:00 UTC" in on_time.reason
    # training at the cron time itself satisfies that cron time, a second earlier does not
    exact = at("2024-10-21 03:00")
    assert not rule.evaluate(ev(now=exact + timedelta(seconds=30), last_trained_at=exact))
    just_before = exact - timedelta(seconds=1)
    assert rule.evaluate(ev(now=exact, last_trained_at=just_before))


def test_every_and_cron_whichever_comes_first() -> None:
    rule = Scheduled(every=timedelta(days=30), cron="0 3 * * 1")
    trained = at("2024-10-14 03:05")
    result = rule.evaluate(ev(now=at("2024-10-22 00:00"), last_trained_at=trained))
    assert result.fired and result.evidence["due_at"] == at("2024-10-21 03:00")
    monthly = Scheduled(every=timedelta(days=1), cron="0 0 1 * *")
    waiting = monthly.evaluate(ev(now=at("2024-10-14 12:00"), last_trained_at=trained))
    assert not waiting and waiting.evidence["due_at"] == at("2024-10-15 03:05")


def test_scheduled_rejects_bad_settings() -> None:
    with pytest.raises(PolicyError, match="needs every, cron or both"):
        Scheduled()
    with pytest.raises(PolicyError) as info:
        Scheduled(cron="0 3 * *")
    assert info.value.key == "cron" and "5 fields" in str(info.value)
    with pytest.raises(PolicyError) as info:
        Scheduled(every=timedelta(0))
    assert info.value.key == "every"


# -- drift, volume, estimate ----------------------------------------------------------------


def test_drift_share_fires_above_the_share() -> None:
    rule = DriftShare(max_share=0.5)
    at_limit = rule.evaluate(ev(drift_share=0.5, drifted_features=("a", "b")))
    assert not at_limit and at_limit.reason == "drift share 50% ≤ 50% (drifted: a, b)"
    above = rule.evaluate(ev(drift_share=0.6, drifted_features=("tenure", "plan", "region")))
    assert above.fired
    assert above.reason == "drift share 60% > 50% (drifted: tenure, plan, region)"
    unknown = rule.evaluate(ev())
    assert not unknown and "unknown" in unknown.reason
    with pytest.raises(PolicyError):
        DriftShare(max_share=1.0)


def test_drifted_features_any_and_all() -> None:
    watched = ("tenure", "plan")
    some = ev(drift_share=0.2, drifted_features=("plan", "region"))
    hit = DriftedFeatures(watched).evaluate(some)
    assert hit.fired and hit.reason == "1 of 2 monitored features drifted: plan"
    assert hit.evidence["drifted"] == ["plan"]
    every = DriftedFeatures(watched, any_of=False)
    partial = every.evaluate(some)
    assert not partial and partial.reason.endswith("stable: tenure")
    assert every.evaluate(ev(drift_share=0.5, drifted_features=("plan", "tenure"))).fired
    calm = DriftedFeatures(watched).evaluate(ev(drift_share=0.0))
    assert not calm and "none of the monitored features drifted" in calm.reason
    assert "unknown" in DriftedFeatures(watched).evaluate(ev()).reason
    with pytest.raises(PolicyError, match="not one string"):
        DriftedFeatures("tenure")
    with pytest.raises(PolicyError, match="listed twice"):
        DriftedFeatures(["a", "a"])


def test_data_volume_fires_at_the_minimum() -> None:
    rule = DataVolume(min_new_labels=1000)
    short = rule.evaluate(ev(new_labels_since_training=999))
    assert not short and short.reason == "only 999 new labels since the last training; need 1,000"
    enough = rule.evaluate(ev(new_labels_since_training=1000))
    assert enough and enough.reason == "1,000 new labels since the last training ≥ 1,000"
    with pytest.raises(PolicyError):
        DataVolume(min_new_labels=0)


def test_estimate_drop_prefers_the_estimated_baseline() -> None:
    rule = EstimateDrop(max_drop=0.05)
    own = ev(estimated_value=0.74, estimated_baseline=0.80, baseline=0.70)
    result = rule.evaluate(own)
    assert result.fired
    assert result.reason == "estimated accuracy 0.74 < 0.75 (estimated baseline 0.80 − 0.05)"
    fallback = rule.evaluate(ev(estimated_value=0.74, baseline=0.78))
    assert not fallback
    assert fallback.reason == "estimated accuracy 0.74 ≥ 0.73 (baseline 0.78 − 0.05)"
    mae = ev(
        metric_name="mae", metric_lower_is_better=True, estimated_value=1.3, estimated_baseline=1.0
    )
    assert EstimateDrop(max_drop=0.25, relative=True).evaluate(mae).fired
    assert not EstimateDrop(max_drop=0.3, relative=True).evaluate(mae)
    assert not rule.evaluate(ev(baseline=0.8)).fired  # no estimate at all
    assert "no baseline" in rule.evaluate(ev(estimated_value=0.1)).reason


# -- combinations and policies --------------------------------------------------------------

LOW_ACCURACY = {"metric_value": 0.6, "labeled": 500, "baseline": 0.8}


def test_any_of_and_all_of() -> None:
    drop = PerformanceThreshold(max_drop=0.05)
    volume = DataVolume(min_new_labels=1000)
    evidence = ev(new_labels_since_training=10, **LOW_ACCURACY)
    anyone = AnyOf([drop, volume]).evaluate(evidence)
    assert anyone.fired and anyone.reason.startswith("accuracy 0.60 < 0.75")
    assert [c.fired for c in anyone.children] == [True, False]
    both = AllOf([drop, volume]).evaluate(evidence)
    assert not both
    assert both.reason.startswith("1 of 2 rules fired; not: only 10 new labels")
    assert AllOf([drop, volume]).evaluate(ev(new_labels_since_training=5000, **LOW_ACCURACY))
    quiet = AnyOf([drop, volume]).evaluate(ev(metric_value=0.8, labeled=500, baseline=0.8))
    assert not quiet and quiet.reason.startswith("no rule fired: ")


def test_combinations_nest() -> None:
    rule = AnyOf([Scheduled(every=timedelta(days=90)), AllOf([DriftShare(0.3), DataVolume(100)])])
    trained = NOW - timedelta(days=10)
    drifted = ev(last_trained_at=trained, drift_share=0.5, new_labels_since_training=200)
    result = rule.evaluate(drifted)
    assert result.fired and result.children[1].fired
    assert [c.fired for c in result.children[1].children] == [True, True]
    few_labels = ev(last_trained_at=trained, drift_share=0.5, new_labels_since_training=20)
    assert not rule.evaluate(few_labels)
    with pytest.raises(PolicyError):
        AnyOf([])


def test_cooldown_blocks_then_allows() -> None:
    policy = Policy(DataVolume(1000), cooldown=timedelta(days=1), name="churn")
    triggered = at("2024-10-18 06:00")
    blocked = policy.evaluate(ev(new_labels_since_training=5000, last_triggered_at=triggered))
    assert not blocked and blocked.cooled_down
    assert blocked.blocked_until == at("2024-10-19 06:00")
    assert blocked.reason.startswith("cooldown 1d blocks retraining until 2024-10-19 06:00 UTC")
    assert "would fire: 5,000 new labels" in blocked.reason
    later = at("2024-10-19 06:00")
    allowed = policy.evaluate(
        ev(now=later, new_labels_since_training=5000, last_triggered_at=triggered)
    )
    assert allowed and not allowed.cooled_down and allowed.blocked_until is None
    # a rule that does not fire is not "cooled down", cooldown or not
    idle = policy.evaluate(ev(new_labels_since_training=10, last_triggered_at=triggered))
    assert not idle and not idle.cooled_down
    assert policy.evaluate(ev(new_labels_since_training=5000))  # never triggered


def test_decision_results_and_json() -> None:
    policy = Policy(AnyOf([PerformanceThreshold(max_drop=0.05), Scheduled(cron="0 3 * * 1")]))
    decision = policy.evaluate(ev(last_trained_at=at("2024-10-14 03:05"), **LOW_ACCURACY))
    assert isinstance(decision, PolicyDecision) and decision
    assert [r.rule for r in decision.results] == ["threshold", "scheduled"]
    data = json.loads(json.dumps(decision.to_dict()))
    assert data["fired"] is True and data["policy"] == "default"
    assert data["evaluated_at"] == "2024-10-18T12:00:00+00:00"
    assert data["results"][1]["evidence"]["due_at"] == "2024-10-21T03:00:00+00:00"
    single = Policy(DataVolume(5)).evaluate(ev(new_labels_since_training=1))
    assert [r.rule for r in single.results] == ["data_volume"]


def test_policy_rejects_bad_settings() -> None:
    with pytest.raises(PolicyError) as info:
        Policy(DataVolume(5), cooldown=timedelta(hours=-1))
    assert info.value.key == "cooldown"
    with pytest.raises(PolicyError) as info:
        Policy("threshold")  # type: ignore[arg-type]
    assert info.value.key == "rule"


# -- cron -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "moment", "following", "previous"),
    [
        # steps in a range: 09:00, 13:00, 17:00 at every quarter hour
        ("*/15 9-17/4 * * *", "2024-10-18 17:50", "2024-10-19 09:00", "2024-10-18 17:45"),
        ("*/15 9-17/4 * * *", "2024-10-18 12:00", "2024-10-18 13:00", "2024-10-18 09:45"),
        # lists, and a moment that is itself a schedule time
        ("5,35 * * * *", "2024-10-18 12:35", "2024-10-18 13:05", "2024-10-18 12:35"),
        ("5,35 * * * *", "2024-10-18 12:34:59", "2024-10-18 12:35", "2024-10-18 12:05"),
        # Sunday as 0 and as 7; Friday 2024-10-18
        ("0 0 * * 0", "2024-10-18 12:00", "2024-10-20 00:00", "2024-10-13 00:00"),
        ("0 0 * * 7", "2024-10-18 12:00", "2024-10-20 00:00", "2024-10-13 00:00"),
        ("0 0 * * 5-7", "2024-10-18 12:00", "2024-10-19 00:00", "2024-10-18 00:00"),
        ("0 0 * * 1-5", "2024-10-19 12:00", "2024-10-21 00:00", "2024-10-18 00:00"),
        # month ends: the 31st skips short months, Feb 29 waits for a leap year
        ("0 0 31 * *", "2024-05-31 00:00", "2024-07-31 00:00", "2024-05-31 00:00"),
        ("0 0 31 * *", "2024-04-15 00:00", "2024-05-31 00:00", "2024-03-31 00:00"),
        ("0 12 29 2 *", "2024-03-01 00:00", "2028-02-29 12:00", "2024-02-29 12:00"),
        ("59 23 28-31 2 *", "2023-03-01 00:00", "2024-02-28 23:59", "2023-02-28 23:59"),
        ("0 0 1 1 *", "2024-12-31 23:59", "2025-01-01 00:00", "2024-01-01 00:00"),
        # day of month OR day of week when both are restricted: the 13th or a Friday
        ("0 0 13 * 5", "2024-11-09 12:00", "2024-11-13 00:00", "2024-11-08 00:00"),
        ("0 0 13 * 5", "2024-11-13 00:00", "2024-11-15 00:00", "2024-11-13 00:00"),
        # ... odd days or Fridays; but '*/2' starts with '*', so: odd days that are Fridays
        ("0 0 1-31/2 * 5", "2024-11-09 12:00", "2024-11-11 00:00", "2024-11-09 00:00"),
        ("0 0 */2 * 5", "2024-11-09 12:00", "2024-11-15 00:00", "2024-11-01 00:00"),
        # a day-of-month AND a Sunday: Feb 29 on a Sunday is years apart
        ("0 0 29 2 */7", "2024-03-01 00:00", "2032-02-29 00:00", "2004-02-29 00:00"),
    ],
)
def test_cron_next_and_previous(expr: str, moment: str, following: str, previous: str) -> None:
    schedule = CronSchedule.parse(expr)
    assert schedule.next_after(at(moment)) == at(following)
    assert schedule.previous_at_or_before(at(moment)) == at(previous)
    assert schedule.matches(at(following)) and schedule.matches(at(previous))


def test_cron_parses_fields_into_sets() -> None:
    s = CronSchedule.parse("0,30 */6 1-10/3 1,6-7 7")
    assert s.minutes == (0, 30) and s.hours == (0, 6, 12, 18)
    assert s.days == {1, 4, 7, 10} and s.months == {1, 6, 7} and s.weekdays == {0}
    assert not s.dom_star and not s.dow_star
    assert str(CronSchedule.parse("  0   3 * *   1 ")) == "0 3 * * 1"


def test_cron_answers_agree_with_a_minute_by_minute_scan() -> None:
    rng = np.random.default_rng(7)
    for expr in ("7,37 */5 * * *", "0 22 1-7 * 1", "*/20 1 15 * 3", "45 23 * */2 6-7"):
        schedule = CronSchedule.parse(expr)
        for _ in range(5):
            start = NOW + timedelta(minutes=int(rng.integers(0, 60 * 24 * 60)), seconds=17)
            found = schedule.next_after(start)
            t = start.replace(second=0) + timedelta(minutes=1)
            while not schedule.matches(t):
                t += timedelta(minutes=1)
            assert found == t, (expr, start)
            back = schedule.previous_at_or_before(start)
            t = start.replace(second=0)
            while not schedule.matches(t):
                t -= timedelta(minutes=1)
            assert back == t, (expr, start)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 3 * *", "has 5 fields"),
        ("0 3 * * * *", "got 6"),
        ("60 * * * *", "minute '60': 60 is out of range 0-59"),
        ("* 24 * * *", "hour '24': 24 is out of range 0-23"),
        ("* * 0 * *", "day-of-month '0': 0 is out of range 1-31"),
        ("* * * 13 *", "month '13': 13 is out of range 1-12"),
        ("* * * * 8", "day-of-week '8': 8 is out of range 0-7"),
        ("*/0 * * * *", "minute '*/0': the step must be at least 1"),
        ("5-1 * * * *", "minute '5-1': range 5-1 runs backwards"),
        ("1,,2 * * * *", "minute '1,,2': empty item"),
        ("* x * * *", "hour 'x': 'x' is not a number"),
        ("* * * jan *", "month 'jan': 'jan' is not a number"),
        ("5/10 * * * *", "minute '5/10': a step needs '*' or a range"),
        ("0 0 30 2 *", "day-of-month '30' never occurs in month '2'"),
        ("0 0 31 4,6 *", "never occurs"),
    ],
)
def test_cron_errors_name_the_field(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        CronSchedule.parse(expr)


def test_cron_needs_aware_times() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        CronSchedule.parse("0 3 * * *").next_after(datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("text", "span", "canonical"),
    [
        ("30m", timedelta(minutes=30), "30m"),
        ("12h", timedelta(hours=12), "12h"),
        ("7d", timedelta(days=7), "1w"),
        ("2w", timedelta(weeks=2), "2w"),
        ("90m", timedelta(minutes=90), "90m"),
        ("1.5s", timedelta(seconds=1.5), "1.5s"),
        ("0s", timedelta(0), "0s"),
    ],
)
def test_durations_read_and_write(text: str, span: timedelta, canonical: str) -> None:
    assert parse_duration(text) == span
    assert format_duration(span) == canonical
    assert parse_duration(canonical) == span


@pytest.mark.parametrize("text", ["7", "7 days", "d", "-1d", "1y", ""])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


# -- config ---------------------------------------------------------------------------------

PROJECT = """
[models.churn]
task = "binary"                       # read by others, not by the policy loader

[models.churn.trainer]
command = "python train.py"

[models.churn.policy]
cooldown = "1d"
combine = "any"
[[models.churn.policy.rules]]
type = "threshold"
max_drop = 0.05
min_labeled = 200
[[models.churn.policy.rules]]
type = "scheduled"
cron = "0 3 * * 1"

[models.fraud.policy]
name = "fraud-nightly"
combine = "all"
[[models.fraud.policy.rules]]
type = "any"
[[models.fraud.policy.rules.rules]]
type = "drift_share"
max_share = 0.3
[[models.fraud.policy.rules.rules]]
type = "drifted_features"
features = ["amount", "merchant"]
any_of = false
[[models.fraud.policy.rules]]
type = "data_volume"
min_new_labels = 500
[[models.fraud.policy.rules]]
type = "estimate_drop"
max_drop = 0.1
relative = true

[models.eta.policy]
[[models.eta.policy.rules]]
type = "scheduled"
every = "12h"

[models.unwatched]
task = "regression"
"""


def test_toml_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "feedback_loop.toml"
    path.write_text(PROJECT)
    policies = load_policies(path)
    assert set(policies) == {"churn", "fraud", "eta"}
    assert policies["churn"] == Policy(
        AnyOf([PerformanceThreshold(max_drop=0.05, min_labeled=200), Scheduled(cron="0 3 * * 1")]),
        cooldown=timedelta(days=1),
        name="churn",
    )
    assert policies["fraud"] == Policy(
        AllOf(
            [
                AnyOf([DriftShare(0.3), DriftedFeatures(("amount", "merchant"), any_of=False)]),
                DataVolume(500),
                EstimateDrop(0.1, relative=True),
            ]
        ),
        name="fraud-nightly",
    )
    assert policies["eta"] == Policy(Scheduled(every=timedelta(hours=12)), name="eta")
    for policy in policies.values():
        table = json.loads(json.dumps(policy.to_dict()))
        assert policy_from_dict(table) == policy
    assert policies["churn"].to_dict() == {
        "name": "churn",
        "cooldown": "1d",
        "combine": "any",
        "rules": [
            {"type": "threshold", "max_drop": 0.05, "relative": False, "min_labeled": 200},
            {"type": "scheduled", "cron": "0 3 * * 1"},
        ],
    }


def test_a_single_rule_stands_alone_unless_combined() -> None:
    rules = [{"type": "data_volume", "min_new_labels": 10}]
    assert policy_from_dict({"rules": rules}).rule == DataVolume(10)
    assert policy_from_dict({"rules": rules, "combine": "all"}).rule == AllOf([DataVolume(10)])
    two = policy_from_dict({"rules": rules * 2})
    assert isinstance(two.rule, AnyOf) and two.name == "default"
    built = Policy(AnyOf([DataVolume(10)]))
    assert policy_from_dict(built.to_dict()) == built


def _churn(rules: list[dict[str, Any]], **policy: Any) -> dict[str, Any]:
    return {"models": {"churn": {"policy": {"rules": rules, **policy}}}}


THRESHOLD = {"type": "threshold", "max_drop": 0.05}


@pytest.mark.parametrize(
    ("document", "key", "message"),
    [
        (
            _churn([THRESHOLD, {"type": "scheduled", "cron": "0 3 * * 9"}]),
            "models.churn.policy.rules[1].cron",
            "day-of-week '9'",
        ),
        (_churn([THRESHOLD], colldown="1d"), "models.churn.policy.colldown", "unknown key"),
        (_churn([THRESHOLD], cooldown="1 day"), "models.churn.policy.cooldown", "not a duration"),
        (_churn([THRESHOLD], cooldown=86400), "models.churn.policy.cooldown", "duration"),
        (_churn([THRESHOLD], combine="either"), "models.churn.policy.combine", "'any' or 'all'"),
        (_churn([]), "models.churn.policy.rules", "non-empty list"),
        (_churn([{"max_drop": 0.05}]), "models.churn.policy.rules[0].type", "is required"),
        (_churn([{"type": "treshold"}]), "models.churn.policy.rules[0].type", "unknown type"),
        (
            _churn([{**THRESHOLD, "min_labelled": 5}]),
            "models.churn.policy.rules[0].min_labelled",
            "unknown key",
        ),
        (
            _churn([{**THRESHOLD, "min_labeled": 2.5}]),
            "models.churn.policy.rules[0].min_labeled",
            "whole number",
        ),
        (
            _churn([{**THRESHOLD, "relative": "yes"}]),
            "models.churn.policy.rules[0].relative",
            "true or false",
        ),
        (
            _churn([{"type": "threshold", "max_drop": True}]),
            "models.churn.policy.rules[0].max_drop",
            "must be a number",
        ),
        (_churn([{"type": "threshold"}]), "models.churn.policy.rules[0]", "threshold, max_drop"),
        (
            _churn([{"type": "data_volume"}]),
            "models.churn.policy.rules[0].min_new_labels",
            "is required",
        ),
        (
            _churn([{"type": "drift_share", "max_share": 1.5}]),
            "models.churn.policy.rules[0].max_share",
            "below 1",
        ),
        (
            _churn([{"type": "drifted_features", "features": "amount"}]),
            "models.churn.policy.rules[0].features",
            "list of feature names",
        ),
        (
            _churn([{"type": "drifted_features", "features": ["a", 3]}]),
            "models.churn.policy.rules[0].features[1]",
            "must be a string",
        ),
        (
            _churn([{"type": "scheduled", "every": "0s"}]),
            "models.churn.policy.rules[0].every",
            "positive",
        ),
        (
            _churn([{"type": "all", "rules": [THRESHOLD, {"type": "drift_share", "share": 1}]}]),
            "models.churn.policy.rules[0].rules[1].share",
            "unknown key",
        ),
        (_churn(["threshold"]), "models.churn.policy.rules[0]", "must be a table"),
        (
            {"models": {"my model": {"policy": {"rules": [{"type": "x"}]}}}},
            'models."my model".policy.rules[0].type',
            "unknown type",
        ),
        ({"models": {"churn": {"policy": {}}}}, "models.churn.policy.rules", "is required"),
        ({"models": ["churn"]}, "models", "table"),
    ],
)
def test_bad_config_names_the_key_path(document: dict, key: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        policies_from_dict(document)
    error = info.value
    assert isinstance(error, PolicyError) and error.key == key
    assert str(error).startswith(f"{key}: ") and message in error.message


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "feedback_loop.toml"
    path.write_text("[models.churn.policy\n")
    with pytest.raises(PolicyError, match="not valid TOML") as info:
        load_policies(path)
    assert info.value.key == str(path)


def test_docstring_examples_run() -> None:
    for module in (policy_pkg, rules_module, schedule_module, config_module, defaults_module):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


# -- cooldowns after rejections, in labels, and the default policy --------------------------


def test_a_rejected_retraining_waits_for_time_and_labels_not_the_full_cooldown() -> None:
    policy = Policy(
        DataVolume(1),
        cooldown=timedelta(days=14),
        retry_after=timedelta(days=3),
        retry_labels=500,
    )
    triggered = NOW - timedelta(days=4)
    promoted = ev(new_labels_since_training=9, last_triggered_at=triggered)
    assert not policy.evaluate(promoted)  # still running or promoted: the full cooldown
    rejected = dict(new_labels_since_training=9, last_triggered_at=triggered)
    few = policy.evaluate(ev(last_outcome="rejected", new_labels_since_trigger=100, **rejected))
    assert not few and few.cooled_down and "retry wait" in few.reason
    assert "500 new labels (have 100)" in few.reason
    assert policy.evaluate(ev(last_outcome="rejected", new_labels_since_trigger=500, **rejected))
    soon = ev(
        last_outcome="rejected",
        new_labels_since_trigger=5000,
        new_labels_since_training=9,
        last_triggered_at=NOW - timedelta(days=1),
    )
    assert not policy.evaluate(soon)  # labels alone do not end the retry wait
    # at a few labels a day the wait never outlasts the full cooldown
    slow = ev(
        last_outcome="rejected",
        new_labels_since_trigger=20,
        new_labels_since_training=9,
        last_triggered_at=NOW - timedelta(days=14),
    )
    assert policy.evaluate(slow)


def test_cooldown_labels_end_the_cooldown_at_high_volume() -> None:
    policy = Policy(DataVolume(1), cooldown=timedelta(days=14), cooldown_labels=2000)
    base = dict(new_labels_since_training=9, last_triggered_at=NOW - timedelta(days=2))
    waiting = policy.evaluate(ev(new_labels_since_trigger=1999, **base))
    assert not waiting and "2,000 new labels (have 1,999)" in waiting.reason
    assert policy.evaluate(ev(new_labels_since_trigger=2000, **base))


def test_the_default_cooldown_is_a_budget_in_time_not_ended_by_labels() -> None:
    policy = policy_pkg.default_policy()
    assert policy.cooldown_labels is None
    trigger = NOW - timedelta(days=11)
    # the champion's accuracy fell 10 points under its baseline: the rules fire
    falling = dict(metric_value=0.70, baseline=0.80, labeled=3000, last_trained_at=trigger)
    promoted = dict(falling, last_triggered_at=trigger, last_outcome="promoted")
    # 11 days and 5,001 labels after a promotion (500 labeled rows a day): still cooling down
    held = policy.evaluate(ev(new_labels_since_trigger=5001, **promoted))
    assert not held and held.cooled_down
    assert held.blocked_until == trigger + timedelta(days=14)
    assert "would fire: accuracy 0.70 < 0.75" in held.reason
    # however many labels arrived: the budget is counted in time
    assert not policy.evaluate(ev(new_labels_since_trigger=500_000, **promoted))
    later = ev(now=trigger + timedelta(days=14), new_labels_since_trigger=7000, **promoted)
    assert policy.evaluate(later)
    # a rejected retraining still retries after a day and 200 new labels, then waits longer
    rejected = dict(falling, last_triggered_at=NOW - timedelta(days=1), last_outcome="rejected")
    assert policy.evaluate(ev(new_labels_since_trigger=200, rejections_in_a_row=1, **rejected))
    twice = policy.evaluate(ev(new_labels_since_trigger=400, rejections_in_a_row=2, **rejected))
    assert not twice and twice.blocked_until == NOW + timedelta(days=1)


def test_new_policy_keys_round_trip_through_config() -> None:
    table = {
        "cooldown": "14d",
        "retry_after": "3d",
        "retry_labels": 500,
        "cooldown_labels": 2000,
        "rules": [{"type": "data_volume", "min_new_labels": 10}],
    }
    policy = policy_from_dict(table)
    assert policy.retry_after == timedelta(days=3) and policy.retry_labels == 500
    assert policy_from_dict(policy.to_dict()) == policy
    with pytest.raises(PolicyError, match="cooldown_labels"):
        policy_from_dict({**table, "cooldown_labels": 0})
    with pytest.raises(PolicyError, match="last_outcome"):
        ev(last_outcome="maybe")


def test_default_policy_falls_back_to_a_schedule_and_reads_drift() -> None:
    policy = policy_pkg.default_policy()
    # a poor baseline does not excuse a poor model for ever: the schedule fires anyway
    stale = ev(
        last_trained_at=NOW - timedelta(days=29),
        metric_value=0.52,
        baseline=0.52,
        labeled=5000,
    )
    decision = policy.evaluate(stale)
    assert decision and "every 4w due" in decision.reason
    fresh = dict(last_trained_at=NOW - timedelta(days=2), metric_value=0.80, baseline=0.80)
    assert not policy.evaluate(ev(labeled=5000, **fresh))
    # drift corroborates a smaller rise in the served errors
    rose = dict(fresh, error_change_z=3.5, rows_since_change=300)
    assert not policy.evaluate(ev(labeled=5000, **rose))
    assert policy.evaluate(ev(labeled=5000, drift_share=0.8, **rose))
    assert policy.evaluate(ev(labeled=5000, **dict(rose, error_change_z=4.5)))
    floor = policy_pkg.default_policy(floor=0.9)
    assert floor.evaluate(ev(labeled=5000, **fresh))  # 0.80 is under the user's floor
    assert policy_from_dict(policy.to_dict()) == policy


def test_error_increase_needs_a_significant_rise_and_rows_to_learn_from() -> None:
    rule = policy_pkg.ErrorIncrease(min_z=4.0, min_rows=200)
    assert not rule.evaluate(ev())
    assert not rule.evaluate(ev(error_change_z=3.9, rows_since_change=1000))
    early = rule.evaluate(ev(error_change_z=6.0, rows_since_change=150))
    assert not early and "only 150 rows since; need 200" in early.reason
    assert rule.evaluate(ev(error_change_z=6.0, rows_since_change=200))
    assert policy_from_dict({"rules": [rule.to_dict()]}).rule == rule


def test_each_rejection_in_a_row_doubles_the_retry_wait() -> None:
    policy = Policy(
        DataVolume(1),
        cooldown=timedelta(days=14),
        retry_after=timedelta(days=1),
        retry_labels=200,
    )
    base = dict(last_outcome="rejected", new_labels_since_training=9)
    two_days = dict(base, last_triggered_at=NOW - timedelta(days=2), new_labels_since_trigger=300)
    assert policy.evaluate(ev(rejections_in_a_row=1, **two_days))
    second = policy.evaluate(ev(rejections_in_a_row=2, **two_days))  # 2 days and 400 labels
    assert not second and "2 in a row" in second.reason and "400 new labels" in second.reason
    assert policy.evaluate(
        ev(rejections_in_a_row=2, **dict(two_days, new_labels_since_trigger=400))
    )
    # never longer than the cooldown, however many in a row
    late = dict(base, last_triggered_at=NOW - timedelta(days=14), new_labels_since_trigger=10)
    assert policy.evaluate(ev(rejections_in_a_row=9, **late))
