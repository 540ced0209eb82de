"""The post-promotion watch: is the new champion significantly worse live than the one it
replaced? If so, roll it back."""

from __future__ import annotations

from typing import Any

import numpy as np

from feedback_loop.collect.handle import ModelHandle
from feedback_loop.core.timeutil import to_us
from feedback_loop.deploy import registry
from feedback_loop.deploy.promotion import CHAMPION, rollback
from feedback_loop.deploy.watch_verdict import WatchVerdict, compare_live
from feedback_loop.store.reader import Rows, WindowFilter, read_rows


def watch_champion(
    handle: ModelHandle,
    *,
    min_samples: int = 200,
    margin: float = 0.0,
    alpha: float = 0.01,
    auto_rollback: bool = True,
    actor: str = "watch",
) -> WatchVerdict | None:
    """Compare the newest champion's first labeled predictions with the previous champion's
    last ones before the promotion; roll back on a significant regression. Once a promotion has
    been judged (``watch_passed`` or ``rolled_back``), it is not watched again."""
    moves = [m for m in registry.alias_history(handle, CHAMPION) if m["version"] is not None]
    if not moves or moves[-1]["previous_version"] is None:
        return None
    last = moves[-1]
    new, previous, since = last["version"], last["previous_version"], last["time"]
    judged = handle.events(kinds=["watch_passed", "rolled_back"], since=since, limit=1)
    if judged:
        return None
    state = handle.read_state()
    regression = state.spec.task == "regression"
    since_us = to_us(since)
    with handle.engine.connect() as conn, conn.begin():
        after = read_rows(
            conn,
            WindowFilter(state.id, since_us, handle.now_us() + 1, str(new)),
            regression=regression,
        )
        before = read_rows(
            conn, WindowFilter(state.id, 0, since_us, str(previous)), regression=regression
        )
    new_errors = _errors(after, regression)[: min_samples * 5]
    old_errors = _errors(before, regression)[-min_samples * 5 :]
    verdict = compare_live(
        new_errors,
        old_errors,
        binary_errors=not regression,
        min_samples=min_samples,
        margin=margin,
        alpha=alpha,
    )
    if verdict.ready and verdict.regressed and auto_rollback:
        rollback(handle, actor=actor, reason=verdict.reason, evidence=verdict.to_dict())
    elif verdict.ready and not verdict.regressed:
        handle.write_event(
            "watch_passed",
            reason=verdict.reason,
            version=str(new),
            actor=actor,
            evidence=verdict.to_dict(),
        )
    return verdict


def _promised_error(
    handle: ModelHandle, version: int, since: Any, regression: bool
) -> float | None:
    """The error level the gate measured for ``version`` on its holdout, if it was gated."""
    for event in handle.events(kinds=["promoted"], since=since, limit=5):
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
