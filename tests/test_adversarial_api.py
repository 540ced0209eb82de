"""Attacks on the REST API kept as a regression suite: reads that wrote events (and sent
webhooks), events recorded under no key's name, webhook targets on private networks, webhook
secrets readable in a database dump, and sizes a request could make unbounded.

The read/write rule runs against a real ``feedback-loop serve`` process on each database; the
webhook store runs on both databases in-process; the size bounds go through the app in-process.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from servers import create_key, served_database, wait_until
from sqlalchemy import select, text
from test_webhooks import Receiver, runner

from feedback_loop import FeedbackLoop, ValidationError
from feedback_loop.cli import app as cli
from feedback_loop.client import AuthError, Client
from feedback_loop.core import secretbox
from feedback_loop.loop import dispose_engines
from feedback_loop.server import webhooks
from feedback_loop.server.app import create_app
from feedback_loop.server.dispatcher import Dispatcher
from feedback_loop.server.outbox import Outbox
from feedback_loop.server.settings import Settings
from feedback_loop.server.webhooks import WebhookStore
from feedback_loop.store import tables
from feedback_loop.store.engine import make_engine
from feedback_loop.store.migrate import ensure_schema, upgrade

SECRET = "a-signing-secret-of-some-length"
_wait = wait_until  # poll until a condition holds; generous limit, the machine may be loaded


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
        env.setenv("FEEDBACK_LOOP_WEBHOOK_POLL_S", "0.1")
        server = stack.enter_context(served_database(request.param, tmp))
        db_url = server.db_url
        engine = make_engine(db_url)
        stack.callback(engine.dispose)
        receiver = Receiver([200]).start()
        stack.callback(receiver.stop)
        WebhookStore(engine).add(
            receiver.url, SECRET, None, now_us=0, allow_private=True
        )  # a receiver on loopback, allowed explicitly
        yield Served(
            url=server.url,
            db_url=db_url,
            reader=create_key(db_url, "dashboard", "read"),
            ingest=create_key(db_url, "collector", "ingest"),
            admin=create_key(db_url, "ops", "admin"),
            receiver=receiver,
            outbox=Outbox(engine),
        )


def _failing_model(served: Served, name: str, *, reference: bool = False) -> FeedbackLoop:
    """A model whose accuracy (0.5 on 10 labels) breaches any threshold above it.

    With ``reference``, it also has a reference (so drift and estimate evaluate rather than
    answer 422 for the want of one) from which its logged feature ``x`` has clearly drifted."""
    loop = FeedbackLoop(name, tracking_db=served.db_url, task="binary")
    if reference:
        rng = np.random.default_rng(0)
        loop.set_reference(
            pd.DataFrame({"x": rng.normal(size=200)}),
            predictions=rng.uniform(size=200),
            actuals=rng.integers(0, 2, size=200),
        )
    now = datetime.now(UTC)
    loop.log_predictions(
        [
            {
                "prediction_id": f"{name}-{i}",
                "timestamp": now - timedelta(minutes=i + 1),
                "prediction": {"label": i % 2, "score": 0.8 if i % 2 else 0.2},
                "actual": 0,
                "features": {"x": 50.0 + i},
                "tags": {"region": "eu"},
            }
            for i in range(10)
        ]
    )
    return loop


def test_gets_write_nothing_and_the_post_records_with_the_key(served: Served) -> None:
    loop = _failing_model(served, "quiet", reference=True)
    before = loop.events()  # the reference's own event
    headers = {"Authorization": f"Bearer {served.reader}"}
    url = f"{served.url}/v1/models/quiet"
    query = {"threshold": "0.99", "min_labeled": "1", "window": "7d"}
    with httpx.Client(timeout=120) as http:
        for _ in range(20):
            answer = http.get(f"{url}/should-retrain", params=query, headers=headers)
            assert answer.status_code == 200, answer.text
            assert answer.json()["retrain"] is True
        # every evaluation runs to the end: a read finds what a POST would record
        read = {}
        for path in ("drift", "estimate", "concept-drift", "segments", "metrics"):
            params = {"by": "region", "min_support": "1"} if path == "segments" else None
            answer = http.get(f"{url}/{path}", params=params, headers=headers)
            assert answer.status_code == 200, (path, answer.text)
            read[path] = answer.json()
        assert read["drift"]["drifted"] and "x" in read["drift"]["drifted_columns"]
        assert read["estimate"]["calibrated"] is True  # on the reference's labeled scores
        assert read["segments"]["segments"][0]["segment"] == {"region": "eu"}
        assert loop.events() == before

        for key in (served.reader, served.ingest):  # recording needs a key that may write
            refused = http.post(
                f"{url}/should-retrain",
                params=query,
                headers={"Authorization": f"Bearer {key}"},
            )
            assert refused.status_code == 403, refused.text
        assert loop.events() == before

        recorded = http.post(
            f"{url}/should-retrain",
            params=query,
            headers={"Authorization": f"Bearer {served.admin}"},
        )
        assert recorded.status_code == 200, recorded.text
    (event,) = [e for e in loop.events() if e not in before]
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


# -- webhook targets and secrets (both databases) ---------------------------------------------

REFUSED_TARGETS = {
    "http://127.0.0.1:8080/hook": "loopback",
    "http://169.254.169.254/latest/meta-data/": "link-local",
    "http://localhost/hook": "loopback",
    "http://[::1]/hook": "loopback",
    "http://[fe80::1]/hook": "link-local",
    "http://10.1.2.3/hook": "private",
    "http://172.16.0.1/hook": "private",
    "https://192.168.1.10/hook": "private",
    "http://[fc00::5]/hook": "private",
    "http://0.0.0.0/hook": "unspecified",
    "http://224.0.0.1/hook": "multicast",
    "http://[::ffff:127.0.0.1]/hook": "loopback",
    "http://2130706433/hook": "loopback",  # 127.0.0.1 as one number
    "http://[2002:a9fe:a9fe::]/hook": "link-local",  # 6to4 of 169.254.169.254
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook": "loopback",  # Teredo of 127.0.0.1
}


@pytest.fixture
def hooks(db_url: str) -> Iterator[tuple[WebhookStore, Outbox, str]]:
    engine = make_engine(db_url)
    ensure_schema(engine)
    yield WebhookStore(engine), Outbox(engine), db_url
    engine.dispose()


def _resolving_to(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    """Every host name resolves to ``address`` (a resolver the test controls)."""
    monkeypatch.setattr(webhooks, "resolve", lambda host, port: [ip_address(address)])


def _dispatch_once(outbox: Outbox) -> int:
    """One pass of the dispatcher over the due deliveries, one attempt each (a failure is
    final, so its error can be read at once); how many it handled."""
    dispatcher = Dispatcher(outbox, Settings(webhook_max_attempts=1))
    try:
        return dispatcher.run_once()
    finally:
        dispatcher.stop()


def test_private_webhook_targets_are_refused_unless_allowed(
    hooks: tuple[WebhookStore, Outbox, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _, db_url = hooks
    monkeypatch.delenv(webhooks.ENV_ALLOW_PRIVATE, raising=False)
    for url, kind in REFUSED_TARGETS.items():
        with pytest.raises(ValidationError) as refused:
            store.add(url, SECRET, None, now_us=0)
        assert refused.value.field == "url", url
        assert f" {kind} address:" in refused.value.message, (url, refused.value.message)
    for url in ("ftp://example.com/x", "file:///etc/passwd", "gopher://example.com/"):
        with pytest.raises(ValidationError, match="http:// or https://"):
            store.add(url, SECRET, None, now_us=0)
    assert store.list_webhooks() == []

    refused = runner.invoke(cli, ["webhooks", "add", "http://169.254.169.254/", "--db", db_url])
    assert refused.exit_code == 1
    assert "link-local address" in refused.output and "--allow-private" in refused.output
    allowed = runner.invoke(
        cli, ["webhooks", "add", "http://127.0.0.1:9/hook", "--allow-private", "--db", db_url]
    )
    assert allowed.exit_code == 0, allowed.output
    monkeypatch.setenv(webhooks.ENV_ALLOW_PRIVATE, "1")  # the operator allows every webhook
    with pytest.raises(ValidationError, match="link-local"):  # the store reads no environment
        store.add("http://169.254.169.254/store", SECRET, None, now_us=0)
    added = store.add(
        "http://169.254.169.254/x", SECRET, None, now_us=0, server_allows_private=True
    )
    assert added.allow_private is False  # the server's setting is not kept with the webhook
    by_cli = runner.invoke(cli, ["webhooks", "add", "http://10.0.0.1/cli", "--db", db_url])
    assert by_cli.exit_code == 0, by_cli.output  # the CLI reads the setting as the server does
    listed = [h.to_dict() for h in store.list_webhooks()]
    assert [(h["url"], h["allow_private"]) for h in listed] == [
        ("http://127.0.0.1:9/hook", True),
        ("http://169.254.169.254/x", False),
        ("http://10.0.0.1/cli", False),
    ]

    _resolving_to(monkeypatch, "93.184.216.34")  # a public name is accepted
    assert store.add("https://hooks.example.com/x", SECRET, None, now_us=0).id > 0


def test_a_name_rebound_to_a_private_address_is_refused_at_delivery(
    hooks: tuple[WebhookStore, Outbox, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, outbox, db_url = hooks
    monkeypatch.delenv(webhooks.ENV_ALLOW_PRIVATE, raising=False)
    receiver = Receiver([200]).start()
    try:
        port = receiver.url.split(":")[2].split("/")[0]
        _resolving_to(monkeypatch, "93.184.216.34")
        store.add(f"http://rebind.example:{port}/hook", SECRET, ["promoted"], now_us=0)
        _resolving_to(monkeypatch, "127.0.0.1")  # the name now points at the server itself
        FeedbackLoop("m", tracking_db=db_url).record_event("promoted", reason="v2")
        assert _dispatch_once(outbox) == 1
        (delivery,) = outbox.deliveries()
        assert delivery.status == "failed" and delivery.last_error is not None
        assert "refused" in delivery.last_error and "loopback" in delivery.last_error
        assert receiver.requests == []
    finally:
        receiver.stop()


def test_deliveries_go_to_the_address_that_was_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    _resolving_to(monkeypatch, "93.184.216.34")
    target = webhooks.check_target("https://hooks.example.com:8443/p?t=1", allow_private=False)
    assert target.url == "https://93.184.216.34:8443/p?t=1"
    assert target.headers == {"Host": "hooks.example.com:8443"}
    assert target.extensions == {"sni_hostname": "hooks.example.com"}  # TLS checks the name
    _resolving_to(monkeypatch, "2606:2800:220:1:248:1893:25c8:1946")
    target = webhooks.check_target("http://hooks.example.com/p", allow_private=False)
    assert target.url == "http://[2606:2800:220:1:248:1893:25c8:1946]/p"
    assert target.headers == {"Host": "hooks.example.com"} and target.extensions == {}
    literal = webhooks.check_target("http://[2606:2800:220:1::1]:81/p", allow_private=False)
    assert literal.headers == {"Host": "[2606:2800:220:1::1]:81"}


def _dump(db_url: str) -> str:
    """The webhooks table as a dump shows it: every column of every row."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return repr(conn.execute(select(tables.webhooks)).all())
    finally:
        engine.dispose()


def test_webhook_secrets_are_encrypted_at_rest_and_still_sign(
    hooks: tuple[WebhookStore, Outbox, str],
) -> None:
    store, outbox, db_url = hooks
    receiver = Receiver([200]).start()
    try:
        store.add(receiver.url, SECRET, ["promoted"], now_us=0, allow_private=True)
        dumped = _dump(db_url)
        assert SECRET not in dumped and "fernet:" in dumped
        assert SECRET not in repr(store.list_webhooks()) + repr(outbox.due(now_us=0))
        listed = runner.invoke(cli, ["webhooks", "list", "--db", db_url, "--json"])
        assert listed.exit_code == 0 and SECRET not in listed.output
        assert "fernet:" not in listed.output

        FeedbackLoop("m", tracking_db=db_url).record_event("promoted", reason="v2")
        assert _dispatch_once(outbox) == 1
        (_, headers, body) = receiver.requests[0]
        expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Feedback-Loop-Signature"] == f"sha256={expected}"
    finally:
        receiver.stop()


def test_clear_text_secrets_are_encrypted_by_the_migration(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0008")  # a database from before encryption, holding a clear secret
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO webhooks (url, secret, kinds, active, created_at, after_event_id)"
                    " VALUES (:url, :secret, :kinds, :active, 0, 0)"
                ),
                {
                    "url": "https://h.example/x",
                    "secret": SECRET,
                    "kinds": '["promoted"]',
                    "active": True,
                },
            )
        ensure_schema(engine)
        assert SECRET not in _dump(db_url)
        with engine.connect() as conn:
            stored = conn.execute(select(tables.webhooks.c.secret)).scalar_one()
        assert secretbox.decrypt(stored) == SECRET
        assert secretbox.decrypt(SECRET) == SECRET  # a clear row not yet migrated still reads
    finally:
        engine.dispose()


def test_the_secret_key_file_is_made_private_and_a_wrong_key_is_named(tmp_path: Path) -> None:
    env = {secretbox.ENV_KEY_FILE: str(tmp_path / "keys" / "secret.key")}
    stored = secretbox.encrypt(SECRET, env)
    assert (tmp_path / "keys" / "secret.key").stat().st_mode & 0o777 == 0o600
    assert secretbox.decrypt(stored, env) == SECRET
    other = {secretbox.ENV_KEY: Fernet.generate_key().decode()}
    with pytest.raises(secretbox.SecretKeyError, match="not the one it was stored with"):
        secretbox.decrypt(stored, other)
    with pytest.raises(secretbox.SecretKeyError, match="not a Fernet key"):
        secretbox.encrypt(SECRET, {secretbox.ENV_KEY: "short"})


def test_a_delivery_connects_to_the_checked_address_with_the_name_as_host(
    hooks: tuple[WebhookStore, Outbox, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request goes to the address the check saw, not to a second lookup of the name."""
    store, outbox, db_url = hooks
    receiver = Receiver([200]).start()
    try:
        port = receiver.url.split(":")[2].split("/")[0]
        _resolving_to(monkeypatch, "93.184.216.34")
        store.add(f"http://hooks.example:{port}/hook", SECRET, ["promoted"], now_us=0)
        # From here the name resolves to the receiver's address, which the check is told to
        # accept as if it were public: the request must reach it by address.
        _resolving_to(monkeypatch, "127.0.0.1")
        monkeypatch.setattr(webhooks, "_refused_kind", lambda address: None)
        FeedbackLoop("m", tracking_db=db_url).record_event("promoted", reason="v2")
        assert _dispatch_once(outbox) == 1
        (delivery,) = outbox.deliveries()
        assert delivery.status == "delivered", delivery.last_error
        (_, headers, _) = receiver.requests[0]
        assert headers["Host"] == f"hooks.example:{port}"
    finally:
        receiver.stop()


# -- every user-controlled size of /v1 is bounded ----------------------------------------------

LONG = "x" * 201  # one past a name's width
M = "/v1/models/m"
TOO_MANY = "at most {} items"
TOO_LONG = "at most {} characters"
TOO_BIG = "less than or equal to {}"
# (method, path, query, body, the field the 422 names, what its message says)
OUT_OF_RANGE: list[tuple[str, str, list[tuple[str, str]] | None, object, str, str]] = [
    ("GET", f"{M}/metrics", [("version", LONG)], None, "version", TOO_LONG.format(100)),
    (
        "GET",
        f"{M}/metrics",
        [("segment", f"k{i}:v") for i in range(21)],
        None,
        "segment",
        TOO_MANY.format(20),
    ),
    ("GET", f"{M}/metrics", [("segment", "k:" + "v" * 500)], None, "segment", TOO_LONG.format(401)),
    (
        "GET",
        f"{M}/should-retrain",
        [("min_labeled", str(10**10))],
        None,
        "min_labeled",
        TOO_BIG.format(10**9),
    ),
    ("POST", f"{M}/should-retrain", [("min_labeled", "0")], None, "min_labeled", "greater than"),
    ("GET", f"{M}/should-retrain", [("threshold", "inf")], None, "threshold", "finite number"),
    ("GET", f"{M}/should-retrain", [("metric", LONG)], None, "metric", TOO_LONG.format(200)),
    ("GET", f"{M}/should-retrain", [("window", "99999999999d")], None, "window", "too long"),
    (
        "GET",
        f"{M}/drift",
        [("method", f"f{i}:ks") for i in range(1001)],
        None,
        "method",
        TOO_MANY.format(1000),
    ),
    ("GET", f"{M}/drift", [("reference", LONG)], None, "reference", TOO_LONG.format(100)),
    ("GET", f"{M}/estimate", [("reference", LONG)], None, "reference", TOO_LONG.format(100)),
    ("GET", f"{M}/segments", [("by", f"c{i}") for i in range(6)], None, "by", TOO_MANY.format(5)),
    ("GET", f"{M}/segments", [("by", LONG)], None, "by", TOO_LONG.format(200)),
    (
        "POST",
        f"{M}/segments",
        [("by", "c"), ("min_support", str(10**10))],
        None,
        "min_support",
        TOO_BIG.format(10**9),
    ),
    ("GET", f"{M}/segments", [("by", "c"), ("metric", LONG)], None, "metric", TOO_LONG.format(200)),
    ("GET", f"{M}/segments", [("by", "c"), ("limit", "1001")], None, "limit", TOO_BIG.format(1000)),
    ("GET", f"{M}/events", [("kind", f"k{i}") for i in range(101)], None, "kind", "at most 100"),
    ("GET", f"{M}/events", [("limit", "1001")], None, "limit", TOO_BIG.format(1000)),
    (
        "POST",
        f"{M}/events",
        None,
        {"kind": "note", "reason": "r" * 2001},
        "reason",
        TOO_LONG.format(2000),
    ),
    (
        "POST",
        f"{M}/events",
        None,
        {"kind": "note", "reason": "r", "evidence": {"blob": "e" * 100_001}},
        "evidence",
        "over 100,000 characters",
    ),
    ("POST", f"{M}/promote", None, {"version": 1, "reason": "r" * 2001}, "reason", "at most 2000"),
    ("POST", f"{M}/rollback", None, {"reason": "r" * 2001}, "reason", "at most 2000"),
    ("POST", f"{M}/retrain", None, {"reason": "r" * 2001}, "reason", "at most 2000"),
    (
        "PUT",
        f"{M}/aliases/champion",
        None,
        {"version": 1, "reason": "r" * 2001},
        "reason",
        "at most 2000",
    ),
    ("PUT", f"{M}/aliases/{'a' * 101}", None, {"version": 1}, "alias", TOO_LONG.format(100)),
    ("GET", f"{M}/aliases/{'a' * 101}/history", None, None, "alias", TOO_LONG.format(100)),
    ("POST", f"{M}/watch", None, {"min_samples": 10**7}, "min_samples", TOO_BIG.format(10**6)),
    ("PUT", M, None, {"label_key": LONG}, "label_key", TOO_LONG.format(200)),
    ("PUT", M, None, {"primary_metric": "m" * 41}, "primary_metric", TOO_LONG.format(40)),
    (
        "POST",
        "/v1/keys",
        None,
        {"name": "k", "scopes": ["read"], "models": ["m"] * 1001},
        "models",
        TOO_MANY.format(1000),
    ),
    (
        "POST",
        "/v1/keys",
        None,
        {"name": "k", "scopes": ["read"], "models": [LONG]},
        "models",
        TOO_LONG.format(200),
    ),
]


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    db = tmp_path_factory.mktemp("bounds") / "bounds.db"
    app = create_app(f"sqlite:///{db}", settings=Settings(webhooks=False), auth=False)
    with TestClient(app) as client:
        yield client
    dispose_engines()


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "field", "says"),
    OUT_OF_RANGE,
    ids=[f"{m} {p.removeprefix(M)[:30] or '/'} {f}" for m, p, _, _, f, _ in OUT_OF_RANGE],
)
def test_sizes_out_of_range_are_refused_naming_the_field(
    app_client: TestClient,
    method: str,
    path: str,
    query: list[tuple[str, str]] | None,
    body: object,
    field: str,
    says: str,
) -> None:
    """Refused as input, before the model is even looked up (there is no model ``m``)."""
    answer = app_client.request(method, path, params=query, json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == field and says in error["message"], error


# -- review: the champion's rule and the rejected verdict through the server -------------------


def test_moving_champion_to_a_rejected_version_answers_409_with_the_verdict(
    served: Served, tmp_path: Path
) -> None:
    from feedback_loop import RejectedVersionError

    loop = FeedbackLoop("alias-gate", tracking_db=served.db_url, artifact_root=str(tmp_path))
    loop.register_model({"weights": 1})
    loop.register_model({"weights": 2})
    loop.promote(1)
    verdict = "candidate 2 vs champion 1: failed improvement"
    loop.record_event("gate_rejected", reason=verdict, version="2")
    answer = httpx.put(
        f"{served.url}/v1/models/alias-gate/aliases/champion",
        json={"version": 2},
        headers={"Authorization": f"Bearer {served.admin}"},
    )
    assert answer.status_code == 409, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["version"], error["verdict"]) == ("rejected_version", 2, verdict)
    admin = Client(served.url, model_name="alias-gate", api_key=served.admin, timeout=120.0)
    for attempt in (lambda: admin.set_alias("champion", 2), lambda: admin.promote(2)):
        with pytest.raises(RejectedVersionError) as raised:
            attempt()
        assert (raised.value.version, raised.value.verdict) == (2, verdict)
    assert loop.aliases()["champion"] == 1
    admin.set_alias("champion", 2, force=True, reason="the gate is wrong here")
    assert loop.aliases()["champion"] == 2


def test_key_model_limits_follow_the_model_naming_rule(app_client: TestClient) -> None:
    answer = app_client.post("/v1/keys", json={"name": "k", "scopes": ["read"], "models": [".."]})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == "models"
    store = app_client.app.state.context.keys  # type: ignore[attr-defined]
    with pytest.raises(ValidationError) as raised:
        store.create("k", ["read"], models=["a/b"], now_us=0)
    assert raised.value.field == "models"


def test_the_api_and_the_library_give_one_message_for_a_bad_id_alias_or_reason(
    app_client: TestClient, tmp_path: Path
) -> None:
    loop = FeedbackLoop("same-rule", tracking_db=f"sqlite:///{tmp_path / 'l.db'}", task="binary")
    cases = [
        (
            "POST",
            f"{M}/predictions",
            {"rows": [{"prediction_id": True, "prediction": 1}]},
            lambda: loop.log_prediction(True, prediction=1),  # type: ignore[arg-type]
        ),
        (
            "PUT",
            f"{M}/aliases/{'a' * 101}",
            {"version": 1},
            lambda: loop.set_alias("a" * 101, 1),
        ),
        (
            "POST",
            f"{M}/events",
            '{"kind": "note", "reason": "r\\ud800"}',  # JSON's escape: httpx cannot encode it
            lambda: loop.record_event("note", reason="r\ud800"),
        ),
    ]
    for method, path, body, library in cases:
        if isinstance(body, str):
            answer = app_client.request(
                method, path, content=body, headers={"Content-Type": "application/json"}
            )
        else:
            answer = app_client.request(method, path, json=body)
        assert answer.status_code == 422, answer.text
        with pytest.raises(ValidationError) as raised:
            library()
        error = answer.json()["error"]
        assert (error["field"], error["message"]) == (raised.value.field, raised.value.message)
