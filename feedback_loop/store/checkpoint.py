"""WAL checkpoints off the write path, for a SQLite database under steady write load.

By default SQLite checkpoints inside the commit that pushes the write-ahead log past 1,000
pages; that commit then copies the log into the database and waits for the disk to flush it
(often 50–150 ms), and every writer queued behind it waits as well. A server sets
``FEEDBACK_LOOP_SQLITE_CHECKPOINT=background``: connections then never checkpoint on commit,
and one daemon thread per database file and process checkpoints every ``EVERY_S`` seconds:
first a ``PASSIVE`` pass beside the writers, which copies the bulk of the log; then, holding the
writer lock, a second pass for the few pages written meanwhile. The log is then wholly in the
database and no writer has added to it, so the next writer starts it over from the beginning;
without that moment a log under steady writes would never start over and grow without end.
The second pass holds writers back for about a millisecond.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading

from feedback_loop.store.writer_lock import writer_lock

ENV_CHECKPOINT = "FEEDBACK_LOOP_SQLITE_CHECKPOINT"
EVERY_S = 1.0
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes kept of the log file when it restarts

logger = logging.getLogger("feedback_loop.store")
_started: dict[str, threading.Thread] = {}
_lock = threading.Lock()


def in_background() -> bool:
    """Whether this process checkpoints in the background (``auto`` or ``background``)."""
    mode = os.environ.get(ENV_CHECKPOINT, "auto").lower()
    if mode not in ("auto", "background"):
        raise ValueError(f"{ENV_CHECKPOINT} must be auto or background")
    return mode == "background"


def ensure_checkpointer(path: str) -> None:
    """Start the checkpoint thread for the database at ``path`` unless it runs already."""
    with _lock:
        thread = _started.get(path)
        if thread is not None and thread.is_alive():
            return
        thread = threading.Thread(
            target=_checkpoint_forever, args=(path,), name="sqlite-checkpoint", daemon=True
        )
        _started[path] = thread
        thread.start()


def _checkpoint_forever(path: str) -> None:
    stop = threading.Event()  # never set: the thread dies with the process
    connection = sqlite3.connect(path, timeout=0, check_same_thread=False)
    try:
        while not stop.wait(EVERY_S):
            try:
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                with writer_lock(path):
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # busy, or the file went away: try again later
                logger.debug("background checkpoint of %s: %s", path, exc)
    finally:
        connection.close()
