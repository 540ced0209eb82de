"""Server settings, from keyword arguments or ``FEEDBACK_LOOP_*`` environment variables.

Environment variables are how ``feedback-loop serve`` hands settings to its uvicorn workers,
which build the app in fresh processes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from feedback_loop.server.webhooks import ENV_ALLOW_PRIVATE

ENV_DB = "FEEDBACK_LOOP_DB"
ENV_NO_AUTH = "FEEDBACK_LOOP_NO_AUTH"
ENV_PUBLIC_ORIGINS = "FEEDBACK_LOOP_PUBLIC_ORIGINS"


@dataclass(frozen=True)
class Settings:
    """Limits and webhook delivery timing."""

    max_body_bytes: int = 32 * 1024 * 1024
    webhooks: bool = True  # run the webhook dispatcher thread
    webhook_poll_s: float = 2.0
    webhook_timeout_s: float = 10.0
    webhook_max_attempts: int = 6
    webhook_backoff_s: float = 5.0  # first retry after this, doubling each time
    webhook_backoff_max_s: float = 900.0
    # Let every webhook reach loopback and private addresses (FEEDBACK_LOOP_WEBHOOK_ALLOW_PRIVATE).
    webhook_allow_private: bool = False
    # Origins the dashboard's pages are also served from, behind a proxy that sends another
    # Host (FEEDBACK_LOOP_PUBLIC_ORIGINS, comma-separated: https://ml.example.com).
    public_origins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        default = cls()

        def number(name: str, fallback: float) -> float:
            raw = env.get(f"FEEDBACK_LOOP_{name}")
            if raw is None or raw == "":
                return fallback
            try:
                value = float(raw)
            except ValueError as exc:
                raise ValueError(f"FEEDBACK_LOOP_{name} must be a number, got {raw!r}") from exc
            if value <= 0:
                raise ValueError(f"FEEDBACK_LOOP_{name} must be positive, got {raw!r}")
            return value

        return cls(
            max_body_bytes=int(number("MAX_BODY_BYTES", default.max_body_bytes)),
            webhooks=env.get("FEEDBACK_LOOP_WEBHOOKS", "1").lower() not in ("0", "false", "no"),
            webhook_poll_s=number("WEBHOOK_POLL_S", default.webhook_poll_s),
            webhook_timeout_s=number("WEBHOOK_TIMEOUT_S", default.webhook_timeout_s),
            webhook_max_attempts=int(number("WEBHOOK_MAX_ATTEMPTS", default.webhook_max_attempts)),
            webhook_backoff_s=number("WEBHOOK_BACKOFF_S", default.webhook_backoff_s),
            webhook_backoff_max_s=number("WEBHOOK_BACKOFF_MAX_S", default.webhook_backoff_max_s),
            webhook_allow_private=env.get(ENV_ALLOW_PRIVATE, "").lower() in ("1", "true", "yes"),
            public_origins=public_origins(env.get(ENV_PUBLIC_ORIGINS, "")),
        )


def public_origins(raw: str) -> tuple[str, ...]:
    """``scheme://host[:port]`` origins from a comma-separated list, lower-cased."""
    origins = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
            raise ValueError(
                f"{ENV_PUBLIC_ORIGINS}: {item!r} is not an origin such as https://ml.example.com"
            )
        origins.append(f"{parts.scheme}://{parts.netloc}".lower())
    return tuple(origins)


def auth_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Authentication is on unless ``FEEDBACK_LOOP_NO_AUTH`` is set to a true value."""
    env = os.environ if environ is None else environ
    return env.get(ENV_NO_AUTH, "").lower() not in ("1", "true", "yes")
