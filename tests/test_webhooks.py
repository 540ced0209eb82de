"""Webhooks against real HTTP receivers on the loopback interface: signed bodies, retries with
backoff, recorded failures, one sender per attempt, and the CLI."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address

import pytest
from fastapi.testclient import TestClient
from servers import wait_until
from typer.testing import CliRunner

from feedback_loop import FeedbackLoop
from feedback_loop.cli import app as cli
from feedback_loop.server import webhooks
from feedback_loop.server.app import create_app
from feedback_loop.server.dispatcher import Dispatcher
from feedback_loop.server.outbox import Outbox
from feedback_loop.server.settings import Settings
from feedback_loop.server.webhooks import WebhookStore
from feedback_loop.store.engine import make_engine
from feedback_loop.store.migrate import ensure_schema

runner = CliRunner()
SECRET = "s3cret-for-signing-bodies"


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 answering with ``statuses`` in turn (the last one repeats)."""

    statuses: list[int]
    requests: list[tuple[float, dict[str, str], bytes]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((time.monotonic(), dict(self.headers), body))
                index = min(len(receiver.requests), len(receiver.statuses)) - 1
                self.send_response(receiver.statuses[index])
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    for receiver in started:
        receiver.stop()


def _receiver(receivers: list[Receiver], *statuses: int) -> Receiver:
    receiver = Receiver(list(statuses)).start()
    receivers.append(receiver)
    return receiver


def _settled(outbox: Outbox, count: int) -> bool:
    found = outbox.deliveries()
    return len(found) == count and all(d.status != "pending" for d in found)


@pytest.fixture
def stores(db_url) -> Iterator[tuple[WebhookStore, Outbox]]:
    engine = make_engine(db_url)
    ensure_schema(engine)
    yield WebhookStore(engine), Outbox(engine)
    engine.dispose()


def test_server_sends_signed_events_of_the_chosen_kinds(db_url, clock, receivers) -> None:
    receiver = _receiver(receivers, 200)
    loop = FeedbackLoop("m", tracking_db=db_url, clock=clock, task="binary")
    loop.record_event("drift_detected", reason="before the webhook existed")
    added = runner.invoke(
        cli,
        [
            "webhooks",
            "add",
            receiver.url,
            "--secret",
            SECRET,
            "--kind",
            "drift_detected",
            "--kind",
            "promoted",
            "--allow-private",  # the receiver is on loopback
            "--db",
            db_url,
        ],
    )
    assert added.exit_code == 0, added.output
    loop.record_event("reference_set", reason="not a kind the webhook wants")
    wanted = loop.record_event("drift_detected", reason="x drifted", evidence={"share": 0.5})

    settings = Settings(webhook_poll_s=0.05)
    with TestClient(create_app(db_url, clock=clock, settings=settings)):
        wait_until(lambda: len(receiver.requests) >= 1, "the first delivery")
        time.sleep(0.3)  # a few more polls: nothing else is due
    assert len(receiver.requests) == 1
    _, headers, body = receiver.requests[0]
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Feedback-Loop-Signature"] == f"sha256={expected}"
    assert headers["X-Feedback-Loop-Event"] == "drift_detected"
    assert headers["Content-Type"] == "application/json"
    event = json.loads(body)["event"]
    assert (event["id"], event["kind"], event["model"]) == (wanted, "drift_detected", "m")
    assert event["evidence"] == {"share": 0.5} and event["reason"] == "x drifted"

    listed = runner.invoke(cli, ["webhooks", "deliveries", "--db", db_url, "--json"])
    (delivery,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (delivery["event_id"], delivery["status"], delivery["attempts"]) == (
        wanted,
        "delivered",
        1,
    )
    assert delivery["delivered_at"] is not None and delivery["last_error"] is None


def test_failures_are_retried_with_backoff_then_recorded(stores, db_url, clock, receivers) -> None:
    hooks_store, outbox = stores
    down = _receiver(receivers, 500)
    flaky = _receiver(receivers, 503, 200)
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    hooks = {
        name: hooks_store.add(url, SECRET, ["promoted"], now_us=0, allow_private=True).id
        for name, url in (("down", down.url), ("flaky", flaky.url), ("closed", closed))
    }
    FeedbackLoop("m", tracking_db=db_url, clock=clock).record_event("promoted", reason="v2")

    settings = Settings(
        webhook_poll_s=0.02, webhook_backoff_s=0.1, webhook_max_attempts=3, webhook_timeout_s=30
    )
    dispatcher = Dispatcher(outbox, settings)
    assert [dispatcher.backoff_s(n) for n in (1, 2, 3)] == [0.1, 0.2, 0.4]
    dispatcher.start()
    try:
        wait_until(lambda: _settled(outbox, 3), "three deliveries to settle")
    finally:
        dispatcher.stop()

    by_hook = {d.webhook_id: d for d in outbox.deliveries()}
    gave_up = by_hook[hooks["down"]]
    assert (gave_up.status, gave_up.attempts, gave_up.last_error) == ("failed", 3, "HTTP 500")
    assert gave_up.delivered_at is None
    times = [t for t, _, _ in down.requests]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.1 and times[2] - times[1] >= 0.2  # doubling waits

    recovered = by_hook[hooks["flaky"]]
    assert (recovered.status, recovered.attempts) == ("delivered", 2)
    assert recovered.last_error is None and len(flaky.requests) == 2

    refused = by_hook[hooks["closed"]]
    assert (refused.status, refused.attempts) == ("failed", 3)
    assert refused.last_error is not None and "ConnectError" in refused.last_error


def test_an_attempt_is_claimed_once(stores, db_url, clock, receivers) -> None:
    hooks_store, outbox = stores
    receiver = _receiver(receivers, 200)
    hooks_store.add(receiver.url, SECRET, ["retrain_due"], now_us=0, allow_private=True)
    FeedbackLoop("m", tracking_db=db_url, clock=clock).record_event("retrain_due", reason="r")
    now = int(time.time() * 1e6)
    assert outbox.enqueue(now_us=now) == 1
    assert outbox.enqueue(now_us=now) == 0  # queuing again adds nothing
    (due,) = outbox.due(now_us=now)
    (seen_by_other,) = outbox.due(now_us=now)
    hour = 3600 * 10**6
    assert outbox.claim(due, until_us=now + hour)
    assert not outbox.claim(seen_by_other, until_us=now + hour)  # another process lost the race
    assert outbox.due(now_us=now + 1) == []  # leased for the attempt

    # two dispatchers on one database send each new event once
    first, second = Dispatcher(outbox, Settings()), Dispatcher(outbox, Settings())
    FeedbackLoop("m", tracking_db=db_url, clock=clock).record_event("retrain_due", reason="r2")
    assert first.run_once() + second.run_once() == 1
    first.stop()
    second.stop()
    assert len(receiver.requests) == 1


def test_cli_add_list_remove(db_url, monkeypatch) -> None:
    # A public address for every name, as a resolver on the internet would answer.
    monkeypatch.setattr(webhooks, "resolve", lambda host, port: [ip_address("93.184.216.34")])
    made = runner.invoke(cli, ["webhooks", "add", "https://example.invalid/x", "--db", db_url])
    assert made.exit_code == 0, made.output
    generated = made.stdout.strip().splitlines()[-1]
    assert len(generated) >= 32  # a secret was made and shown once

    listed = runner.invoke(cli, ["webhooks", "list", "--db", db_url, "--json"])
    (hook,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (
        hook["active"] is True and "promoted" in hook["kinds"] and "drift_detected" in hook["kinds"]
    )
    assert generated not in listed.output
    assert "example.invalid" in runner.invoke(cli, ["webhooks", "list", "--db", db_url]).output

    removed = runner.invoke(cli, ["webhooks", "remove", str(hook["id"]), "--db", db_url])
    assert removed.exit_code == 0
    listed = runner.invoke(cli, ["webhooks", "list", "--db", db_url, "--json"])
    assert json.loads(listed.stdout)["active"] is False
    assert runner.invoke(cli, ["webhooks", "remove", "99", "--db", db_url]).exit_code == 1

    for bad in (
        ["ftp://host/x"],
        ["https://h/x", "--kind", "Not A Kind"],
        ["https://h/x", "--secret", "short"],
    ):
        result = runner.invoke(cli, ["webhooks", "add", *bad, "--db", db_url])
        assert result.exit_code == 1, result.output
