"""The writer lock of a SQLite database: an exclusive ``flock`` on a file beside it.

Every write transaction takes it before ``BEGIN IMMEDIATE``, so writers in any thread or
process queue on it and wake the moment it is free, instead of polling in SQLite's busy handler,
whose sleeps (up to 100 ms each) would set the tail latency of a busy server. The background
checkpointer takes it too, for the moment it needs the log to stand still.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def writer_lock(database_path: str) -> Iterator[None]:
    """Hold the lock (every open file is its own holder, so threads exclude each other too)."""
    if sys.platform == "win32":  # no flock: SQLite's busy timeout does the queueing
        yield
        return
    import fcntl

    with open(f"{database_path}-writer.lock", "ab") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield  # closing the file releases the lock, also if this thread dies
