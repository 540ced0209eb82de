"""The webhook dispatcher: a background thread that sends queued events and retries.

Each poll queues deliveries for new events, then sends those that are due. A failed attempt
(an error status, a timeout, a refused connection) is retried after ``webhook_backoff_s``,
doubling each time up to ``webhook_backoff_max_s``, until ``webhook_max_attempts`` attempts;
then the delivery is marked failed with its last error. Several server processes may run a
dispatcher each: an attempt is claimed in the database first, so only one of them sends it.

Before each attempt the target is checked again (``webhooks.check_target``): a host name that
now resolves to a private address is refused, recorded as the attempt's error, and the request
goes to the address that was checked. The secret is decrypted only to sign.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import httpx

import feedback_loop
from feedback_loop.core.secretbox import decrypt
from feedback_loop.errors import FeedbackLoopError
from feedback_loop.server.keys import redact
from feedback_loop.server.outbox import DueDelivery, Outbox
from feedback_loop.server.settings import Settings
from feedback_loop.server.webhooks import check_target, event_body, sign

logger = logging.getLogger("feedback_loop.server.webhooks")
MAX_ERROR_CHARS = 500


class Dispatcher:
    """Delivers events to webhooks; ``run_once`` is one poll, ``start`` runs polls in a thread."""

    def __init__(
        self,
        outbox: Outbox,
        settings: Settings,
        *,
        client: httpx.Client | None = None,
        now: Callable[[], float] = time.time,
    ):
        self.outbox = outbox
        self.settings = settings
        self.client = client or httpx.Client(
            timeout=settings.webhook_timeout_s, follow_redirects=False
        )
        self.now = now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _now_us(self) -> int:
        return int(self.now() * 1_000_000)

    def backoff_s(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        delay = self.settings.webhook_backoff_s * 2 ** (attempts - 1)
        return float(min(delay, self.settings.webhook_backoff_max_s))

    def run_once(self) -> int:
        """Queue new events and make every due attempt; returns the number of attempts."""
        self.outbox.enqueue(now_us=self._now_us())
        lease_us = int((self.settings.webhook_timeout_s + 30) * 1_000_000)
        attempted = 0
        for delivery in self.outbox.due(now_us=self._now_us()):
            if self._stop.is_set():
                break
            if not self.outbox.claim(delivery, until_us=self._now_us() + lease_us):
                continue
            self._attempt(delivery)
            attempted += 1
        return attempted

    def _send(self, delivery: DueDelivery) -> str | None:
        """One attempt; its error, or None when the receiver answered 2xx."""
        allow_private = delivery.allow_private or self.settings.webhook_allow_private
        try:
            target = check_target(delivery.url, allow_private=allow_private)
            secret = decrypt(delivery.secret)
        except FeedbackLoopError as exc:  # a refused address, or the wrong secret key
            return f"refused: {exc}"[:MAX_ERROR_CHARS]
        body = event_body(delivery.event)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"feedback-loop/{feedback_loop.__version__}",
            "X-Feedback-Loop-Event": delivery.event.kind,
            "X-Feedback-Loop-Delivery": str(delivery.id),
            "X-Feedback-Loop-Signature": sign(secret, body),
            **target.headers,
        }
        try:
            response = self.client.post(
                target.url, content=body, headers=headers, extensions=target.extensions
            )
        except httpx.HTTPError as exc:
            return redact(f"{type(exc).__name__}: {exc}")[:MAX_ERROR_CHARS]
        if not 200 <= response.status_code < 300:
            return f"HTTP {response.status_code}"
        return None

    def _attempt(self, delivery: DueDelivery) -> None:
        error = self._send(delivery)
        attempts = delivery.attempts + 1
        retry_at = None
        if error is not None and attempts < self.settings.webhook_max_attempts:
            retry_at = self._now_us() + int(self.backoff_s(attempts) * 1_000_000)
        if error is not None:
            final = "" if retry_at is not None else " (giving up)"
            # The host only: webhook URLs often carry a token in their path.
            logger.warning(
                "webhook delivery %d to %s, attempt %d: %s%s",
                delivery.id,
                httpx.URL(delivery.url).host,
                attempts,
                error,
                final,
            )
        self.outbox.record(
            delivery.id, attempts=attempts, error=error, now_us=self._now_us(), retry_at_us=retry_at
        )

    # -- the thread ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="feedback-loop-webhooks", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a database hiccup must not end the thread
                logger.exception("webhook dispatcher poll failed")
            self._stop.wait(self.settings.webhook_poll_s)
