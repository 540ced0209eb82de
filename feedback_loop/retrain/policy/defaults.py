"""The default retraining policy: what a loop does when nobody configured one.

Measured on streams it was not tuned on (``benchmarks/loop_quality.py``), each part answers a
way the simpler policy failed:

* **a drop from the champion's own baseline** (its holdout score at the gate) fires quickly
  after a change: ``PerformanceThreshold(max_drop=0.05)`` on at least 100 labeled rows;
* **a significant rise in the champion's served errors** (the change detector over its rows
  in the training window, z ≥ 4) once 200 labeled rows followed it, enough to learn from: it catches
  moderate changes a fixed drop misses, measured against the errors' own variation;
* **an absolute floor**, when the user gave one (``default_policy(floor=...)``): a baseline that is
  itself poor (a model promoted in the middle of a change) must not excuse a poor model;
* **a schedule fallback** (every 28 days): whatever the threshold says, the model learns the
  newest data now and then, so a poor baseline cannot ratchet the loop into never acting;
* **drift evidence corroborates a smaller rise in errors**: when most features drifted, a
  rise in the served errors at z ≥ 3 (instead of 4) is enough. A drift check that flags a
  volatile stream every day must not retrain it every day: drift says the inputs moved, not
  that the model got worse;
* **a retrain budget, counted in time**: after a promotion, no retraining for 14 days however
  many labels arrived, so the loop retrains after promotions at most once per 14 days (half
  the cost of a weekly refit) at any traffic. A model goes stale in time, not in rows: the
  share of the traffic a stale model serves is the same at 50 or 5,000 rows a day, so high
  volume is no reason to retrain sooner. Ending the cooldown at a number of labels as well
  (5,000, as this policy once did) made the cost grow with the traffic: under gradual drift
  the rules fire again as soon as the cooldown lets them, and the label count became the
  retrain rate (measured: every 11 days on a random RBF stream at 500 rows a day, labels one
  day late; at 5,000 rows a day it would be every 2 days). The price is paid on a stream that
  drifts without pause, where a model 14 days old is worse than one 11 days old (3 points on
  that stream). ``Policy(cooldown_labels=...)`` remains for a user who trades cost for
  reaction;
* **retries after a rejection spend the same budget, sooner**: after a retraining that
  promoted nothing, 1 day and 200 new labels, doubled for each rejection in a row and at
  most the full cooldown (after an abrupt change the first try often has too little new
  data, and the retry must not wait three weeks; nor should it retry on nearly the same
  rows). The first retries run ahead of the budget (three tries within three days); the doubling
  brings a gate that keeps rejecting back to one retraining per 14 days.

The gate still decides whether a candidate is promoted, and the watch rolls a regressing one
back: the policy decides only when to try.
"""

from __future__ import annotations

from datetime import timedelta

from feedback_loop.retrain.policy.rules import (
    AllOf,
    AnyOf,
    DriftShare,
    ErrorIncrease,
    PerformanceThreshold,
    Policy,
    Rule,
    Scheduled,
)

MAX_DROP = 0.05
MIN_LABELED = 100
SCHEDULE = timedelta(days=28)
CHANGE_Z = 4.0
CHANGE_MIN_ROWS = 200
DRIFT_SHARE = 0.5
DRIFT_CHANGE_Z = 3.0
COOLDOWN = timedelta(days=14)
RETRY_AFTER = timedelta(days=1)
RETRY_LABELS = 200


def default_policy(floor: float | None = None) -> Policy:
    """The default policy; ``floor``: an absolute limit of the primary metric as well.

    >>> policy = default_policy(floor=0.9)
    >>> [rule.kind for rule in policy.rule.rules]
    ['threshold', 'threshold', 'error_increase', 'scheduled', 'all']
    """
    rules: list[Rule] = [PerformanceThreshold(max_drop=MAX_DROP, min_labeled=MIN_LABELED)]
    if floor is not None:
        rules.append(PerformanceThreshold(threshold=floor, min_labeled=MIN_LABELED))
    rules.append(ErrorIncrease(min_z=CHANGE_Z, min_rows=CHANGE_MIN_ROWS))
    rules.append(Scheduled(every=SCHEDULE))
    rules.append(
        AllOf(
            [
                DriftShare(max_share=DRIFT_SHARE),
                ErrorIncrease(min_z=DRIFT_CHANGE_Z, min_rows=CHANGE_MIN_ROWS),
            ]
        )
    )
    return Policy(
        AnyOf(rules),
        cooldown=COOLDOWN,
        name="default",
        retry_after=RETRY_AFTER,
        retry_labels=RETRY_LABELS,
    )
