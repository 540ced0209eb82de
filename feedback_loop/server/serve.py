"""Running the app under uvicorn, with logs that never show an API key.

uvicorn's access log writes the client, the request line and the status, never headers; a
filter on every handler also masks anything shaped like a key, should one end up in a URL or
a message.
"""

from __future__ import annotations

import copy
import inspect
import logging
import os
import shutil
import tempfile
from typing import Any

from feedback_loop.server.keys import redact
from feedback_loop.server.protocol import protocol_path
from feedback_loop.server.settings import ENV_DB, ENV_NO_AUTH
from feedback_loop.store.checkpoint import ENV_CHECKPOINT

APP_FACTORY = "feedback_loop.server.app:create_app_from_env"
# A new worker imports the whole library (numpy, pandas, scikit-learn: seconds on a small
# machine, more when workers start together) before it answers uvicorn's health check.
WORKER_HEALTHCHECK_S = 60


class RedactSecrets(logging.Filter):
    """Mask API keys in log records (message and arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's logging set-up, with the redaction filter and the server's own logger."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": f"{__name__}.RedactSecrets"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    config["loggers"]["feedback_loop"] = {
        "handlers": ["default"],
        "level": "INFO",
        "propagate": False,
    }
    return config


def run(
    host: str,
    port: int,
    *,
    workers: int,
    database_url: str | None,
    auth: bool,
    access_log: bool = True,
) -> None:
    """Serve until interrupted. Settings reach the workers through the environment."""
    import uvicorn

    if database_url:
        os.environ[ENV_DB] = database_url
    if auth:
        os.environ.pop(ENV_NO_AUTH, None)
    else:
        os.environ[ENV_NO_AUTH] = "1"
    # A server writes all the time: checkpoint SQLite's log beside the requests, not in one.
    os.environ.setdefault(ENV_CHECKPOINT, "background")
    metrics_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="feedback-loop-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    options: dict[str, Any] = {}
    if "timeout_worker_healthcheck" in inspect.signature(uvicorn.run).parameters:
        options["timeout_worker_healthcheck"] = WORKER_HEALTHCHECK_S
    try:
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=log_config(),
            server_header=False,
            access_log=access_log,
            http=protocol_path(),
            loop="auto",  # uvloop where installed
            **options,
        )
    finally:
        if metrics_dir is not None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            shutil.rmtree(metrics_dir, ignore_errors=True)
