"""The post-promotion watch: is the new champion significantly worse live than the one it
replaced? If so, roll it back."""

from __future__ import annotations

from typing import Any

import numpy as np

from feedback_loop.collect.handle import ModelHandle
from feedback_loop.core.timeutil import to_us
from feedback_loop.deploy import registry
from feedback_loop.deploy.promotion import CHAMPION, rollback
from feedback_loop.deploy.watch_verdict import WatchVerdict, compare_live, compare_paired
from feedback_loop.retrain.scoring import score_model
from feedback_loop.retrain.step import labeled_rows
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
    """Score the newest champion and the one it replaced on the same labeled rows since the
    promotion (paired: the same period, so a drift at the promotion is no evidence against
    the new model); roll back when the new one is significantly worse. The verdict comes once
    ``min_samples`` rows are labeled, on up to five times as many. Once a promotion has been
    judged (``watch_passed`` or ``rolled_back``), it is not watched again. When the previous
    version cannot be scored (its artifact is gone, its features are not logged), its live
    errors before the promotion stand in, as an unpaired comparison."""
    moves = [m for m in registry.alias_history(handle, CHAMPION) if m["version"] is not None]
    if not moves or moves[-1]["previous_version"] is None:
        return None
    last = moves[-1]
    new, previous, since = last["version"], last["previous_version"], last["time"]
    judged = handle.events(kinds=["watch_passed", "rolled_back"], since=since, limit=1)
    if judged:
        return None
    regression = handle.read_state().spec.task == "regression"
    since_us = to_us(since)
    verdict = _paired_verdict(
        handle, new, previous, since_us, regression, min_samples, margin, alpha
    )
    if verdict is None:
        verdict = _unpaired_verdict(
            handle, new, previous, since_us, regression, min_samples, margin, alpha
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


def _paired_verdict(
    handle: ModelHandle,
    new: int,
    previous: int,
    since_us: int,
    regression: bool,
    min_samples: int,
    margin: float = 0.0,
    alpha: float = 0.01,
) -> WatchVerdict | None:
    state = handle.read_state()
    flt = WindowFilter(state.id, since_us, handle.now_us() + 1)
    features, y, ts, _tags, _served = labeled_rows(handle, flt)
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
            score_model(
                registry.load_model(handle, v), features, y, task=task, positive=state.spec.positive
            )
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
    handle: ModelHandle,
    new: int,
    previous: int,
    since_us: int,
    regression: bool,
    min_samples: int,
    margin: float,
    alpha: float,
) -> WatchVerdict:
    state = handle.read_state()
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
    return compare_live(
        new_errors,
        old_errors,
        binary_errors=not regression,
        min_samples=min_samples,
        margin=margin,
        alpha=alpha,
    )


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
