"""Group commit: concurrent single writes share a transaction, and each caller gets its own
answer (on SQLite and PostgreSQL where the database is involved)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from feedback_loop import DuplicatePredictionError, FeedbackLoop, ValidationError
from feedback_loop.collect.batches import single_prediction
from feedback_loop.collect.group_commit import GroupCommit
from feedback_loop.collect.recording import store_prediction_groups

HANG_S = 120.0  # a wait this long is a hang, not a slow machine


class SlowDoubler:
    """``write_many`` that takes a while, records its groups, and fails on negative items."""

    def __init__(self, seconds: float = 0.02):
        self.seconds = seconds
        self.groups: list[list[int]] = []
        self.lock = threading.Lock()

    def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        with self.lock:
            self.groups.append(list(items))
        time.sleep(self.seconds)
        return [ValueError(f"bad {i}") if i < 0 else i * 2 for i in items]


def test_a_lone_caller_writes_at_once() -> None:
    writer = SlowDoubler(0)
    group = GroupCommit(writer)
    assert [group.submit(i) for i in range(3)] == [0, 2, 4]
    assert writer.groups == [[0], [1], [2]]


def test_concurrent_threads_share_groups_and_get_their_own_answers() -> None:
    writer = SlowDoubler()
    group = GroupCommit(writer, max_group=8)
    items = list(range(-3, 40))

    def call(i: int) -> int | str:
        try:
            return group.submit(i)
        except ValueError as exc:
            return str(exc)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(call, items))
    assert answers == [f"bad {i}" if i < 0 else i * 2 for i in items]
    written = sorted(i for g in writer.groups for i in g)
    assert written == items  # every item written exactly once
    assert max(len(g) for g in writer.groups) > 1  # callers did share
    assert max(len(g) for g in writer.groups) <= 8


def test_a_failing_write_fails_its_whole_group_only() -> None:
    calls = []

    def write_many(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        if 13 in items:
            raise RuntimeError("disk on fire")
        return list(items)

    group = GroupCommit(write_many)
    with pytest.raises(RuntimeError, match="disk on fire"):
        group.submit(13)
    assert group.submit(1) == 1  # the group is usable afterwards


def test_asyncio_callers_and_threads_together() -> None:
    writer = SlowDoubler()
    group = GroupCommit(writer)

    async def main() -> tuple[list[int], list[int]]:
        loop = asyncio.get_running_loop()
        threaded = [loop.run_in_executor(None, group.submit, i) for i in range(100, 110)]
        tasks = [group.submit_async(i) for i in range(30)]
        return list(await asyncio.gather(*tasks)), list(await asyncio.gather(*threaded))

    from_tasks, from_threads = asyncio.run(main())
    assert from_tasks == [i * 2 for i in range(30)]
    assert from_threads == [i * 2 for i in range(100, 110)]
    assert sorted(i for g in writer.groups for i in g) == [*range(30), *range(100, 110)]
    assert max(len(g) for g in writer.groups) > 1


def test_an_async_error_reaches_its_task() -> None:
    group = GroupCommit(SlowDoubler(0))

    async def main() -> None:
        assert await group.submit_async(4) == 8
        with pytest.raises(ValueError, match="bad -1"):
            await group.submit_async(-1)

    asyncio.run(main())


# -- the library: several callers' predictions in one transaction ----------------------------


def _one(loop: FeedbackLoop, pid: str, label: int, **extra):
    state = loop.handle.model_state(label)
    return single_prediction(
        state.spec,
        loop.handle.now_us(),
        prediction_id=pid,
        prediction=label,
        features=extra.get("features"),
        actual=extra.get("actual"),
        timestamp=None,
        version=None,
        tags=extra.get("tags"),
        latency_ms=None,
    )


def test_one_transaction_answers_each_caller(db_url, clock) -> None:
    loop = FeedbackLoop("grouped", tracking_db=db_url, clock=clock, task="binary")
    loop.log_prediction("old", prediction=1)
    loop.log_outcome("early", 1)  # waits for its prediction
    batches = [
        _one(loop, "a", 1, features={"x": 1.0}),
        _one(loop, "old", 1),  # an identical retry
        _one(loop, "early", 0),  # joins the outcome that came first
        _one(loop, "b", 0, actual=0),  # with its actual
    ]
    results = store_prediction_groups(
        loop.engine, loop.handle.model_state(), batches, loop.handle.now_us()
    )
    summary = [(r.inserted, r.retried, r.outcomes, r.joined, r.prediction_ids) for r in results]  # type: ignore[union-attr]
    assert summary == [
        (1, 0, 0, 0, ["a"]),
        (0, 1, 0, 0, ["old"]),
        (1, 0, 0, 1, ["early"]),
        (1, 0, 1, 0, ["b"]),
    ]
    metrics = loop.get_metrics(window="all")
    assert (metrics["predictions"], metrics["labeled"]) == (4, 2)
    assert loop.unmatched_outcomes() == 0


def test_a_bad_row_fails_only_its_caller(db_url, clock) -> None:
    loop = FeedbackLoop("grouped", tracking_db=db_url, clock=clock, task="binary")
    loop.log_prediction("taken", prediction=1)
    batches = [
        _one(loop, "x", 1),
        _one(loop, "taken", 0),  # conflicts with what is stored
        _one(loop, "y", 0),
        _one(loop, "y", 0),  # the same id twice in one group: a retry of the first
    ]
    results = store_prediction_groups(
        loop.engine, loop.handle.model_state(), batches, loop.handle.now_us()
    )
    assert isinstance(results[1], DuplicatePredictionError)
    assert [(r.inserted, r.retried) for r in (results[0], results[2], results[3])] == [  # type: ignore[union-attr]
        (1, 0),
        (1, 0),
        (0, 1),
    ]
    assert loop.get_metrics(window="all")["predictions"] == 3


def test_threads_logging_at_once_all_land(db_url, clock) -> None:
    loop = FeedbackLoop("threads", tracking_db=db_url, clock=clock, task="binary")
    loop.log_prediction("first", prediction=1)

    def log(i: int) -> tuple[int, int]:
        result = loop.log_prediction(f"p{i}", prediction=i % 2, features={"i": i})
        return result.inserted, result.retried

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(log, range(200)))
    assert answers == [(1, 0)] * 200
    with pytest.raises(ValidationError, match="features"):
        loop.log_prediction("bad", prediction=1, features=[1, 2])
    assert loop.get_metrics(window="all")["predictions"] == 201


def test_log_prediction_async(db_url, clock) -> None:
    loop = FeedbackLoop("async", tracking_db=db_url, clock=clock)

    async def main() -> list[int]:
        results = await asyncio.gather(
            *(loop.log_prediction_async(f"a{i}", prediction=i % 2) for i in range(50))
        )
        with pytest.raises(DuplicatePredictionError):
            await loop.log_prediction_async("a1", prediction=0)
        return [r.inserted for r in results]

    assert asyncio.run(main()) == [1] * 50
    assert loop.task == "binary"
    assert loop.get_metrics(window="all")["predictions"] == 50


def test_outcomes_share_a_transaction_and_answer_each_caller(db_url, clock) -> None:
    from feedback_loop.collect.batches import outcome_batch, to_frame
    from feedback_loop.collect.recording import store_outcome_groups

    loop = FeedbackLoop("outcomes", tracking_db=db_url, clock=clock, task="binary")
    loop.log_predictions([{"prediction_id": p, "prediction": 1} for p in ("a", "b")])
    state = loop.handle.model_state()

    def one(pid: str, actual: object):
        row = to_frame([{"prediction_id": pid, "actual": actual}])
        return outcome_batch(row, state.spec, loop.handle.now_us())

    batches = [one("a", 1), one("later", 0), one("b", 7), one("b", 0)]  # 7: a third label
    results = store_outcome_groups(loop.engine, state, batches, loop.handle.now_us())
    assert isinstance(results[2], ValidationError)
    answers = [(r.stored, r.matched, r.unmatched) for r in results if not isinstance(r, Exception)]
    assert answers == [(1, 1, 0), (1, 0, 1), (1, 1, 0)]
    metrics = loop.get_metrics(window="all")
    assert (metrics["labeled"], metrics["accuracy"]) == (2, 0.5)
    assert loop.unmatched_outcomes() == 1

    def log(i: int) -> tuple[int, int]:
        result = loop.log_outcome("a" if i % 2 else "b", i % 2)
        return result.stored, result.matched

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(log, range(40))) == [(1, 1)] * 40


class HeldGroups:
    """``write_many`` that holds the first group until another caller has queued, and every
    later group until ``release`` is set: the test decides what is in flight, not the clock."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.queued = threading.Event()
        self.release = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.groups.append(list(items))
        held = self.queued if len(self.groups) == 1 else self.release
        assert held.wait(HANG_S), "the test never let the group through"
        return [i * 2 for i in items]


def test_an_async_leader_is_answered_while_later_groups_are_written() -> None:
    """The task that started the writer gets its answer with its own group, while the writer
    is still busy with the next group (it must not wait for the queue to empty)."""
    writer = HeldGroups()
    group = GroupCommit(writer)

    async def main() -> None:
        first = asyncio.ensure_future(group.submit_async(1))
        while not writer.groups:  # the writer has taken the first group, alone
            await asyncio.sleep(0.001)
        second = asyncio.ensure_future(group.submit_async(2))
        await asyncio.sleep(0)  # queued behind the first group
        writer.queued.set()
        assert await asyncio.wait_for(asyncio.shield(first), HANG_S) == 2
        assert not second.done()  # its group is still being written
        writer.release.set()
        assert await second == 4

    asyncio.run(main())
