"""The writer lock of a SQLite database: an exclusive ``flock`` on a file beside it.

Every write transaction takes it before ``BEGIN IMMEDIATE``, so writers in any thread or
process queue on it and wake the moment it is free, instead of polling in SQLite's busy handler,
whose sleeps (up to 100 ms each) would set the tail latency of a busy server. The background
checkpointer takes it too, for the moment it needs the log to stand still.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

# Each thread keeps its own open lock file per database: an open file is a lock holder of its
# own, so threads exclude each other as processes do, and no write pays for an open and close.
_files = threading.local()


@contextmanager
def writer_lock(database_path: str) -> Iterator[None]:
    """Hold the lock for the block."""
    if sys.platform == "win32":  # no flock: SQLite's busy timeout does the queueing
        yield
        return
    import fcntl

    lock = _lock_file(database_path)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)


def _lock_file(database_path: str) -> BinaryIO:
    files: dict[str, BinaryIO] = _files.__dict__.setdefault("by_path", {})
    lock = files.get(database_path)
    if lock is None or lock.closed:
        lock = files[database_path] = open(f"{database_path}-writer.lock", "ab")  # noqa: SIM115
    return lock
