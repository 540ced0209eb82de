"""Group commit: concurrent single writes share one transaction.

When many callers each log one prediction, a transaction per call spends most of its time in
``BEGIN``/``COMMIT`` and in waiting for the database's write lock. A ``GroupCommit`` lets the
first caller write at once, queues the callers that arrive while it writes, and then writes the
whole queue in a single call of ``write_many``. Nobody waits on a timer: a lone caller writes
immediately, exactly as without the group.

Callers are threads (``submit``) or asyncio tasks (``submit_async``, which never blocks the
event loop: the writing happens in a worker thread). A waiting thread is woken to lead the next
group; a queue that starts with asyncio callers is written by the thread that wrote the group
before it.

``write_many(items)`` returns one result per item, an exception standing for that item's
failure; it owns the all-or-nothing question (typically: one transaction, and on failure each
item again on its own so an error reaches only the caller it belongs to).

>>> group = GroupCommit(lambda items: [item * 2 for item in items])
>>> group.submit(21)
42
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Slot(Generic[T, R]):
    """One caller's item, and how to tell it the outcome."""

    __slots__ = ("done", "error", "future", "item", "result", "wake")

    def __init__(self, item: T, future: asyncio.Future[R] | None = None):
        self.item = item
        self.result: R | None = None
        self.error: BaseException | None = None
        self.done = False
        self.wake = threading.Event()  # a thread caller waits on it: done, or lead
        self.future = future  # an asyncio caller awaits it


class GroupCommit(Generic[T, R]):
    """Hands queued items to ``write_many`` in groups of at most ``max_group``."""

    def __init__(
        self, write_many: Callable[[Sequence[T]], Sequence[R | BaseException]], max_group: int = 512
    ):
        self._write_many = write_many
        self._max_group = max_group
        self._lock = threading.Lock()
        self._queue: list[_Slot[T, R]] = []
        self._writing = False

    def submit(self, item: T) -> R:
        """Write ``item`` (with whatever else is queued) and return its result or raise."""
        slot: _Slot[T, R] = _Slot(item)
        if self._enqueue(slot):
            slot.wake.wait()
        if not slot.done:  # woken to lead: the next group holds this item
            self._write_queue()
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]

    async def submit_async(self, item: T) -> R:
        """``submit`` for asyncio code: the event loop goes on while the group is written."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        if not self._enqueue(_Slot(item, future)):
            # Not awaited: the writer may go on to later groups, and this caller's answer
            # must not wait for those.
            loop.run_in_executor(None, self._write_queue)
        return await future

    def _enqueue(self, slot: _Slot[T, R]) -> bool:
        """Queue the slot; True if a writer is at work (it will be served), False if the
        caller must write."""
        with self._lock:
            self._queue.append(slot)
            busy = self._writing
            self._writing = True
        return busy

    def _write_queue(self) -> None:
        """Write groups until the queue is empty or its head is a thread that can lead."""
        while True:
            with self._lock:
                group = self._queue[: self._max_group]
                del self._queue[: self._max_group]
            self._write(group)
            with self._lock:
                if not self._queue:
                    self._writing = False
                    return
                head = self._queue[0]
                if head.future is None:
                    head.wake.set()  # that thread leads; this one returns to its caller
                    return

    def _write(self, group: list[_Slot[T, R]]) -> None:
        try:
            results: Sequence[R | BaseException] = self._write_many([s.item for s in group])
            if len(results) != len(group):
                raise RuntimeError(f"write_many gave {len(results)} results for {len(group)}")
        except BaseException as exc:  # the whole group failed in a way no item owns
            results = [exc] * len(group)
        waiting: dict[asyncio.AbstractEventLoop, list[tuple[_Slot[T, R], R | BaseException]]] = {}
        for slot, result in zip(group, results, strict=True):
            if slot.future is not None:
                waiting.setdefault(slot.future.get_loop(), []).append((slot, result))
                continue
            if isinstance(result, BaseException):
                slot.error = result
            else:
                slot.result = result
            slot.done = True
            slot.wake.set()
        for loop, answers in waiting.items():  # one wake-up per event loop, not per caller
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, answers)


def _settle(answers: list[tuple[_Slot[T, R], R | BaseException]]) -> None:
    for slot, result in answers:
        future = slot.future
        if future is None or future.done():  # a cancelled caller
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
