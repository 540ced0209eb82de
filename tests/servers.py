"""Real server processes for the tests: ``feedback-loop serve`` on a loopback port over a fresh
database of either kind, its API keys made with ``feedback-loop keys create``, a model for its
pages to show, and event-driven waits.

Waits are generous and poll for the event they wait for (a server answering ``/readyz``, a
process exiting): they end as soon as it happens, so a generous limit costs nothing on an idle
machine and keeps a loaded one (another test run on the same cores) from failing on time alone.
A server process that exits while being waited for fails the wait at once, with its output.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from conftest import postgres_schema
from sklearn.linear_model import LogisticRegression

from feedback_loop import FeedbackLoop
from feedback_loop.loop import dispose_engines

READY_TIMEOUT_S = 120.0  # a loaded machine may take this long to import and migrate
STOP_TIMEOUT_S = 60.0
COMMAND_TIMEOUT_S = 300.0  # one CLI command, start to exit
KEY_PATTERN = r"fl_[a-z0-9]{8}_[A-Za-z0-9_-]{20,100}"
# What uvicorn prints when the port was taken between the probe and the bind.
PORT_TAKEN = re.compile(r"address already in use|errno 98", re.IGNORECASE)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    condition: Callable[[], bool],
    what: str,
    *,
    timeout: float = READY_TIMEOUT_S,
    every: float = 0.05,
    diagnostics: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``condition`` until it holds; past ``timeout``, fail naming ``what`` it waited for."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what}\n{diagnostics()}"
            )
        time.sleep(every)


def wait_ready(process: subprocess.Popen[Any], url: str) -> None:
    """Poll ``url/readyz`` until it answers 200; fail at once, with the process's output, if
    the process exits first, and after ``READY_TIMEOUT_S`` otherwise."""

    def output() -> str:
        stream = process.stdout
        if process.poll() is None or stream is None:
            return ""
        text = stream.read()
        return text.decode(errors="replace") if isinstance(text, bytes) else str(text)

    def ready() -> bool:
        assert process.poll() is None, f"the server exited ({process.returncode}):\n{output()}"
        try:
            return httpx.get(f"{url}/readyz", timeout=5.0).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, f"{url}/readyz to answer 200")


def serve_argv(db_url: str, port: int, extra: Sequence[str] = ()) -> list[str]:
    """The command line of one server on ``127.0.0.1:port`` over ``db_url``."""
    return [
        *(sys.executable, "-m", "feedback_loop.cli", "serve", "--host", "127.0.0.1"),
        *("--port", str(port), "--db", db_url, *extra),
    ]


class ServerProcess:
    """A server process on a loopback port, started, awaited and stopped by pid.

    ``argv`` builds the command line for a port (default: ``feedback-loop serve`` over
    ``db_url`` with ``extra`` options); ``port`` fixes the port (a server restarted on the same
    address), else a free one is probed and, if taken meanwhile, another is tried.
    """

    def __init__(
        self,
        db_url: str,
        log_path: Path,
        *,
        extra: tuple[str, ...] = (),
        port: int | None = None,
        argv: Callable[[int], Sequence[str]] | None = None,
        env: dict[str, str] | None = None,
    ):
        self.db_url = db_url
        self.log_path = log_path
        self.extra = extra
        self.fixed_port = port
        self.port = port or 0
        self.argv = argv or (lambda p: serve_argv(self.db_url, p, self.extra))
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server is not running"
        return self.process.pid

    def start(self) -> ServerProcess:
        """Start the server and return once ``/readyz`` answers 200."""
        for _ in range(1 if self.fixed_port else 3):
            self.port = self.fixed_port or free_port()
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    list(self.argv(self.port)),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env if self.env is not None else _without_api_key(os.environ),
                )
            if self.wait_ready():
                return self
            if self.fixed_port or not PORT_TAKEN.search(self._log_since(offset)):
                break
        raise RuntimeError(f"the server exited before it was ready:\n{self.log_tail()}")

    def wait_ready(self) -> bool:
        """Poll ``/readyz`` until it answers 200: True; False at once if the process exits."""
        process = self.process
        assert process is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5.0).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"the server was not ready in {READY_TIMEOUT_S:.0f} s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """Terminate the server (kill it if it does not exit in time) and reap it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
        self.process = None

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def _log_since(self, offset: int) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")


def _without_api_key(environ: os._Environ[str] | dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k != "FEEDBACK_LOOP_API_KEY"}


def create_key(db_url: str, name: str, *scopes: str) -> str:
    """A new API key, made with the CLI against the server's database."""
    args = [sys.executable, "-m", "feedback_loop.cli", "keys", "create", "--name", name]
    for scope in scopes:
        args += ["--scope", scope]
    done = subprocess.run(
        [*args, "--db", db_url],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=True,
    )
    key = done.stdout.strip()
    assert re.fullmatch(KEY_PATTERN, key), "one key on stdout"
    return key


@contextmanager
def served_database(kind: str, tmp: Path) -> Iterator[ServerProcess]:
    """A started server over a fresh database of ``kind``: ``"sqlite"`` (a file in ``tmp``) or
    ``"postgresql"`` (a schema of its own, dropped afterwards). Its log is ``tmp/server.log``
    and its URL ``server.db_url``. On exit the server is stopped, then this process's engines
    are disposed (before the schema is dropped, which open connections would block)."""
    with ExitStack() as stack:
        if kind == "sqlite":
            db_url = f"sqlite:///{tmp / 'server.db'}"
        else:
            assert kind == "postgresql", kind
            db_url = stack.enter_context(postgres_schema())
        stack.callback(dispose_engines)
        server = ServerProcess(db_url, tmp / "server.log")
        stack.callback(server.stop)
        yield server.start()


# -- a model for the pages to show --------------------------------------------------------------


def seed_two_versions(
    loop: FeedbackLoop,
    now: datetime,
    n: int = 200,
    *,
    every: timedelta = timedelta(hours=1),
    tags: bool = False,
) -> None:
    """Two versions of one model (2 promoted over 1) and ``n`` labeled predictions of version 2,
    one every ``every`` back from ``now``; with ``tags``, each tagged with a region (``eu`` or
    ``us``)."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    y = (X.x1 > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    loop.register_model(
        model,
        features=X,
        predictions=model.predict_proba(X)[:, 1],
        actuals=y.to_numpy(),
        alias="champion",
    )
    loop.register_model(model)
    loop.promote(2, reason="seeded")
    score = model.predict_proba(X)[:, 1]
    rows = X.assign(
        prediction_id=[f"p{i}" for i in range(n)],
        timestamp=[now - every * i for i in range(n)],
        prediction=[{"label": int(s >= 0.5), "score": float(s)} for s in score],
        actual=y.to_numpy(),
        version="2",
    )
    if tags:
        rows["tags"] = [{"region": "eu" if i % 3 else "us"} for i in range(n)]
    loop.log_predictions(rows)
