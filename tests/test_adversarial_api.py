"""Attacks on the REST API kept as a regression suite: reads that wrote events (and sent
webhooks), events recorded under no key's name, webhook targets on private networks, webhook
secrets readable in a database dump, and sizes a request could make unbounded.

The read/write rule runs against a real ``feedback-loop serve`` process on each database; the
webhook store runs on both databases in-process; the size bounds go through the app in-process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from conftest import postgres_schema
from test_client_e2e import ServerProcess, create_key
from test_webhooks import Receiver

from feedback_loop import FeedbackLoop
from feedback_loop.client import AuthError, Client
from feedback_loop.loop import dispose_engines
from feedback_loop.server.outbox import Outbox
from feedback_loop.server.webhooks import WebhookStore
from feedback_loop.store.engine import make_engine
from feedback_loop.store.migrate import ensure_schema

WAIT_S = 60.0  # generous: the suite must pass on a loaded machine
SECRET = "a-signing-secret-of-some-length"


def _wait(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- reads write nothing (a real server process) ---------------------------------------------


@dataclass
class Served:
    url: str
    db_url: str
    reader: str
    ingest: str
    admin: str
    receiver: Receiver
    outbox: Outbox


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp(f"adversarial-{request.param}")
    with ExitStack() as stack, pytest.MonkeyPatch.context() as env:
        if request.param == "sqlite":
            db_url = f"sqlite:///{tmp / 'server.db'}"
        else:
            db_url = stack.enter_context(postgres_schema())
        env.setenv("FEEDBACK_LOOP_WEBHOOK_POLL_S", "0.1")
        engine = make_engine(db_url)
        ensure_schema(engine)
        stack.callback(engine.dispose)
        receiver = Receiver([200]).start()
        stack.callback(receiver.stop)
        WebhookStore(engine).add(
            receiver.url, SECRET, None, now_us=0, allow_private=True
        )  # a receiver on loopback, allowed explicitly
        server = ServerProcess(db_url, tmp / "server.log")
        stack.callback(dispose_engines)
        stack.callback(server.stop)
        server.start()
        yield Served(
            url=server.url,
            db_url=db_url,
            reader=create_key(db_url, "dashboard", "read"),
            ingest=create_key(db_url, "collector", "ingest"),
            admin=create_key(db_url, "ops", "admin"),
            receiver=receiver,
            outbox=Outbox(engine),
        )


def _failing_model(served: Served, name: str) -> FeedbackLoop:
    """A model whose accuracy (0.5 on 10 labels) breaches any threshold above it."""
    loop = FeedbackLoop(name, tracking_db=served.db_url, task="binary")
    now = datetime.now(UTC)
    loop.log_predictions(
        [
            {
                "prediction_id": f"{name}-{i}",
                "timestamp": now - timedelta(minutes=i + 1),
                "prediction": i % 2,
                "actual": 0,
            }
            for i in range(10)
        ]
    )
    return loop


def test_gets_write_nothing_and_the_post_records_with_the_key(served: Served) -> None:
    loop = _failing_model(served, "quiet")
    headers = {"Authorization": f"Bearer {served.reader}"}
    url = f"{served.url}/v1/models/quiet"
    query = {"threshold": "0.99", "min_labeled": "1", "window": "7d"}
    with httpx.Client(timeout=30) as http:
        for _ in range(20):
            answer = http.get(f"{url}/should-retrain", params=query, headers=headers)
            assert answer.status_code == 200, answer.text
            assert answer.json()["retrain"] is True
        for path in ("drift", "estimate", "concept-drift", "segments?by=x", "metrics"):
            assert http.get(f"{url}/{path}", headers=headers).status_code in (200, 422)
        assert loop.events() == []

        for key in (served.reader, served.ingest):  # recording needs a key that may write
            refused = http.post(
                f"{url}/should-retrain",
                params=query,
                headers={"Authorization": f"Bearer {key}"},
            )
            assert refused.status_code == 403, refused.text
        assert loop.events() == []

        recorded = http.post(
            f"{url}/should-retrain",
            params=query,
            headers={"Authorization": f"Bearer {served.admin}"},
        )
        assert recorded.status_code == 200, recorded.text
    (event,) = loop.events()
    assert (event.kind, event.actor) == ("retrain_due", "api:ops")

    # The dispatcher sends in event order: once the recorded event is delivered, any event the
    # reads had written would have been queued too.
    _wait(lambda: len(served.receiver.requests) >= 1, "the recorded event's delivery")
    assert len(served.receiver.requests) == 1
    assert [d.event_id for d in served.outbox.deliveries()] == [event.id]


def test_client_should_retrain_records_only_when_asked(served: Served) -> None:
    loop = _failing_model(served, "asked")
    reader = Client(
        served.url, model_name="asked", api_key=served.reader, retrain_threshold=0.99, min_labeled=1
    )
    assert reader.should_retrain(record=False)
    with pytest.raises(AuthError):
        reader.should_retrain()  # recording is a write: a read key is refused
    assert loop.events() == []
    admin = Client(
        served.url, model_name="asked", api_key=served.admin, retrain_threshold=0.99, min_labeled=1
    )
    assert admin.should_retrain()
    assert [(e.kind, e.actor) for e in loop.events()] == [("retrain_due", "api:ops")]


def test_library_should_retrain_record_false_writes_nothing(tmp_path: Path) -> None:
    loop = FeedbackLoop(
        "lib", tracking_db=f"sqlite:///{tmp_path / 'lib.db'}", retrain_threshold=0.99, min_labeled=1
    )
    loop.log_predictions([{"prediction_id": "a", "prediction": 1, "actual": 0}])
    assert loop.should_retrain(record=False)
    assert loop.events() == []
    assert loop.should_retrain()
    assert [(e.kind, e.actor) for e in loop.events()] == [("retrain_due", "feedback-loop")]
