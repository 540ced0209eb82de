"""SQLite writers: the writer lock queues them across threads and processes, and a server's
background checkpointer keeps the write-ahead log from growing without a checkpoint in any
commit."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from feedback_loop.store import checkpoint
from feedback_loop.store.engine import make_engine, write_transaction


def _make_table(url: str) -> None:
    engine = make_engine(url)
    with write_transaction(engine) as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS t (who TEXT, at REAL)"))
    engine.dispose()


def test_writers_in_threads_take_turns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    _make_table(url)
    engine = make_engine(url)
    inside = threading.Event()
    spans: dict[str, tuple[float, float]] = {}

    def write(name: str, hold: float) -> None:
        with write_transaction(engine) as conn:
            start = time.perf_counter()
            inside.set()
            conn.execute(text("INSERT INTO t VALUES (:w, :a)"), {"w": name, "a": start})
            time.sleep(hold)
            spans[name] = (start, time.perf_counter())

    first = threading.Thread(target=write, args=("first", 0.3))
    first.start()
    assert inside.wait(120)  # the first writer holds the lock (a busy host may be slow)
    write("second", 0.0)  # queued on the lock file, not failed and not interleaved
    first.join()
    assert spans["second"][0] >= spans["first"][1]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM t")).scalar_one() == 2
    assert (tmp_path / "w.db-writer.lock").exists()
    engine.dispose()


def _line_of(process: subprocess.Popen[str], timeout: float = 300.0) -> str:
    """The next line the process prints (generous: a busy host starts Python slowly)."""
    assert process.stdout is not None
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            return pool.submit(process.stdout.readline).result(timeout=timeout)
        except TimeoutError:
            process.kill()  # ends the read too, so leaving the pool does not hang
            raise


def test_a_writer_in_another_process_waits_for_the_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    _make_table(url)
    engine = make_engine(url)
    child = (
        "import sys, time\n"
        "from sqlalchemy import text\n"
        "from feedback_loop.store.engine import make_engine, write_transaction\n"
        f"engine = make_engine({url!r})\n"
        "print('locking', flush=True)\n"
        "with write_transaction(engine) as conn:\n"
        "    conn.execute(text(\"INSERT INTO t VALUES ('child', :a)\"), {'a': time.time()})\n"
        "print(time.time())\n"
    )
    with write_transaction(engine) as conn:
        process = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
        assert _line_of(process) == "locking\n"  # the child has started and goes for the lock
        assert process.poll() is None  # and waits: the lock is held here until the insert
        released = time.time()
        conn.execute(text("INSERT INTO t VALUES ('parent', :a)"), {"a": released})
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0
    assert float(out) >= released
    engine.dispose()


def _checkpointed_in_background(path: Path, monkeypatch, every_s: float) -> Engine:
    """An engine on a fresh database whose log a background thread checkpoints."""
    monkeypatch.setenv(checkpoint.ENV_CHECKPOINT, "background")
    monkeypatch.setattr(checkpoint, "EVERY_S", every_s)
    url = f"sqlite:///{path}"
    _make_table(url)
    return make_engine(url)


def test_background_checkpoints(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "c.db"
    engine = _checkpointed_in_background(path, monkeypatch, 0.05)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 0
    for i in range(200):
        with write_transaction(engine) as conn:
            conn.execute(text("INSERT INTO t VALUES (:w, :a)"), {"w": "x" * 500, "a": i})
    assert str(path.resolve()) in checkpoint._started
    # Commits never checkpoint now, so the rows reach the database file only through the
    # thread: the file grows to hold them (~100 kB) while nobody else touches it.
    deadline = time.monotonic() + 120  # generous: the thread may be slow to run on a busy host
    while path.stat().st_size < 100_000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.stat().st_size >= 100_000
    probe = sqlite3.connect(path)
    assert probe.execute("SELECT COUNT(*) FROM t").fetchone() == (200,)
    probe.close()
    engine.dispose()


def test_without_the_thread_commits_checkpoint_as_sqlite_does(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 1000
    engine.dispose()


def test_checkpoint_mode_is_checked(monkeypatch) -> None:
    monkeypatch.setenv(checkpoint.ENV_CHECKPOINT, "sometimes")
    with pytest.raises(ValueError, match=checkpoint.ENV_CHECKPOINT):
        checkpoint.in_background()


def test_the_log_starts_over_under_steady_writes(tmp_path: Path, monkeypatch) -> None:
    """Writers that never pause must not grow the log without end: the checkpointer's pass
    under the writer lock lets the next writer start the log over."""
    path = tmp_path / "steady.db"
    engine = _checkpointed_in_background(path, monkeypatch, 0.02)
    row = {"w": "x" * 3000, "a": 0.0}
    wal = Path(f"{path}-wal")
    # A log that never starts over holds every commit: at least a page each, so its size never
    # falls under a quarter of what was written. Writes go on until the log shows it started
    # over (at least 2 s and 300 commits), however slow a busy host makes the checkpointer;
    # only a log that keeps growing reaches the hang limit.
    start = time.monotonic()
    commits = 0
    while True:
        with write_transaction(engine) as conn:
            conn.execute(text("INSERT INTO t VALUES (:w, :a)"), row)
        commits += 1
        elapsed = time.monotonic() - start
        if commits % 50 or commits < 300 or elapsed < 2.0:
            continue
        written = commits * 4096
        if wal.stat().st_size < written / 4:
            break
        assert elapsed < 300, f"the log holds every commit: {commits} commits, {wal.stat()}"
    engine.dispose()
