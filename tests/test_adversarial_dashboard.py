"""Attacks on the dashboard, kept as a regression suite.

Through a real ``feedback-loop serve`` process on a loopback port (SQLite and PostgreSQL): the
dashboard authorizes exactly as the API does (scopes, model limits, the overview's list);
sign-in checks the key and opens a server-side session whose cookie holds no key; forms carry
CSRF tokens and POSTs from another origin are refused; signing out and revoking the key end the
session; every user-controlled size of a page is bounded; actions are confirmed first. Session
expiry and the Secure flag are checked in-process, with a manual clock.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from servers import seed_two_versions, served_database
from sqlalchemy import select

from feedback_loop import FeedbackLoop, ManualClock
from feedback_loop.core.timeutil import to_us
from feedback_loop.report.build import report_context
from feedback_loop.server.app import create_app
from feedback_loop.server.keys import KeyStore
from feedback_loop.server.settings import Settings
from feedback_loop.store.engine import make_engine, read_transaction

TIMEOUT = 120.0  # generous: the suite runs on a loaded machine
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


# -- a served dashboard ---------------------------------------------------------------------


@dataclass
class Ui:
    url: str
    db_url: str
    tmp: Path
    log: Path
    keys: dict[str, str]  # role -> key
    key_ids: dict[str, int]

    def loop(self, model: str) -> FeedbackLoop:
        return FeedbackLoop(model, tracking_db=self.db_url, artifact_root=str(self.tmp / "art"))

    def browser(self, origin: str | None = None) -> httpx.Client:
        """A client that posts as the dashboard's own pages do (``Origin`` of the server)."""
        headers = {"Origin": self.url if origin is None else origin}
        return httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT)

    @contextmanager
    def signed_in(self, role: str) -> Iterator[httpx.Client]:
        with self.browser() as client:
            done = client.post("/ui/login", data={"key": self.keys[role]})
            assert done.status_code == 303 and done.headers["location"] == "/ui", done.text
            yield client


def csrf_of(client: httpx.Client, path: str = "/ui") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found is not None
    return found.group(1)


_seed = seed_two_versions  # two versions (2 promoted over 1), n labeled predictions, hourly


ROLES = {
    "admin": (["admin"], None),
    "admin_a": (["admin"], ["a"]),
    "read_a": (["read"], ["a"]),
    "reader": (["read"], None),
    "ingest": (["ingest"], None),
    "revocable": (["read"], None),
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def ui(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ui]:
    tmp = tmp_path_factory.mktemp(f"ui-{request.param}")
    with served_database(request.param, tmp) as server:
        db_url = server.db_url
        now = datetime.now(UTC)
        for name in ("a", "b"):
            _seed(
                FeedbackLoop(
                    name, tracking_db=db_url, task="binary", artifact_root=str(tmp / "art")
                ),
                now,
            )
        store = KeyStore(make_engine(db_url))
        keys, ids = {}, {}
        for role, (scopes, models) in ROLES.items():
            record, key = store.create(role, scopes, models=models, now_us=to_us(now))
            keys[role], ids[role] = key, record.id
        yield Ui(server.url, db_url, tmp, server.log_path, keys, ids)


# -- 1. the dashboard authorizes as the API does ---------------------------------------------


def test_the_dashboard_authorizes_exactly_as_the_api(ui: Ui) -> None:
    # an ingest-only key cannot sign in (the API would refuse it every read)
    with ui.browser() as client:
        refused = client.post("/ui/login", data={"key": ui.keys["ingest"]})
        assert refused.status_code == 403 and "read" in refused.text
        assert "set-cookie" not in refused.headers

    # a read key limited to model a: sees a only, acts nowhere
    with ui.signed_in("read_a") as client:
        overview = client.get("/ui")
        assert overview.status_code == 200
        assert 'href="/ui/models/a"' in overview.text
        assert 'href="/ui/models/b"' not in overview.text
        assert client.get("/ui/models/a").status_code == 200
        assert client.get("/ui/models/b").status_code == 403
        assert client.get("/ui/models/a/rollback").status_code == 403
        csrf = csrf_of(client)
        assert client.post("/ui/models/a/rollback", data={"csrf": csrf}).status_code == 403

    # an admin key limited to model a: 403 on model b's page and on each of its actions
    before = ui.loop("b").events(limit=None)
    with ui.signed_in("admin_a") as client:
        assert client.get("/ui/models/b").status_code == 403
        assert client.get("/ui/models/b/promote", params={"version": "1"}).status_code == 403
        csrf = csrf_of(client)
        for action, data in [("promote", {"version": "1"}), ("rollback", {}), ("retrain", {})]:
            done = client.post(f"/ui/models/b/{action}", data={"csrf": csrf, **data})
            assert done.status_code == 403, (action, done.text)
            api = httpx.post(
                f"{ui.url}/v1/models/b/{action}",
                json={"version": 1} if data else {},
                headers={"Authorization": f"Bearer {ui.keys['admin_a']}"},
                timeout=TIMEOUT,
            )
            assert api.status_code == 403  # the same answer as the API's
    assert ui.loop("b").events(limit=None) == before
    assert ui.loop("b").aliases()["champion"] == 2


# -- 3. sessions, CSRF and the same-origin rule -----------------------------------------------


def test_sign_in_checks_the_key_and_the_cookie_holds_no_key(ui: Ui) -> None:
    key = ui.keys["reader"]
    forged = key[:12] + "x" * (len(key) - 12)
    with ui.browser() as client:
        bad = client.post("/ui/login", data={"key": forged})
        assert bad.status_code == 401 and 'id="error"' in bad.text
        assert "set-cookie" not in bad.headers and not client.cookies

        good = client.post("/ui/login", data={"key": key})
        assert good.status_code == 303
        cookie = good.headers["set-cookie"]
        assert cookie.startswith("fl_session=")
        for attribute in ("HttpOnly", "Path=/ui", "SameSite=strict"):
            assert attribute.lower() in cookie.lower()
        assert "secure" not in cookie.lower()  # plain http here; see the https test
        token = client.cookies["fl_session"]
        assert key not in cookie and key.split("_", 2)[2] not in cookie
        assert client.get("/ui").status_code == 200

    # the database holds only the hash of the session id
    from feedback_loop.store.tables import dashboard_sessions

    with read_transaction(make_engine(ui.db_url)) as conn:
        hashes = [r.hash for r in conn.execute(select(dashboard_sessions)).all()]
    assert hashlib.sha256(token.encode()).hexdigest() in hashes and token not in hashes

    # the API does not take the dashboard's cookie
    api = httpx.get(f"{ui.url}/v1/models", cookies={"fl_session": token}, timeout=TIMEOUT)
    assert api.status_code == 401
    old = httpx.get(f"{ui.url}/v1/models", cookies={"fl_key": key}, timeout=TIMEOUT)
    assert old.status_code == 401
    # nothing secret in the server's log
    log = ui.log.read_text(errors="replace")
    assert key.split("_", 2)[2] not in log and token not in log


def test_forms_need_the_session_csrf_token_and_this_origin(ui: Ui) -> None:
    loop = ui.loop("a")
    champion, events = loop.aliases()["champion"], len(loop.events(limit=None))
    with ui.signed_in("admin") as client:
        csrf = csrf_of(client, "/ui/models/a/rollback")
        assert client.post("/ui/models/a/rollback", data={}).status_code == 403
        assert client.post("/ui/models/a/rollback", data={"csrf": "0" * 64}).status_code == 403
        foreign = {"Origin": "https://evil.example"}
        refused = client.post("/ui/models/a/rollback", data={"csrf": csrf}, headers=foreign)
        assert refused.status_code == 403
        referer = {"Origin": "", "Referer": "https://evil.example/page"}
        assert (
            client.post("/ui/models/a/retrain", data={"csrf": csrf}, headers=referer).status_code
            == 403
        )
        nothing = {"Origin": ""}
        assert (
            client.post("/ui/models/a/retrain", data={"csrf": csrf}, headers=nothing).status_code
            == 403
        )
        # another session's token does not pass either
        with ui.signed_in("admin") as other:
            theirs = csrf_of(other)
        assert theirs != csrf
        assert client.post("/ui/models/a/rollback", data={"csrf": theirs}).status_code == 403
        assert loop.aliases()["champion"] == champion
        assert len(loop.events(limit=None)) == events  # a refused request changes nothing

        done = client.post("/ui/models/a/rollback", data={"csrf": csrf, "reason": "check"})
        assert done.status_code == 303 and done.headers["location"] == "/ui/models/a"
    rolled = loop.events(kinds=["rolled_back"])[0]
    assert rolled.actor == "api:admin" and "check" in rolled.reason
    loop.promote(2, reason="restore")

    # sign-in from another site is refused too
    with ui.browser(origin="https://evil.example") as client:
        refused = client.post("/ui/login", data={"key": ui.keys["admin"]})
        assert refused.status_code == 403 and "set-cookie" not in refused.headers


def test_sign_out_and_key_revocation_end_the_session(ui: Ui) -> None:
    with ui.signed_in("reader") as client:
        token = client.cookies["fl_session"]
        assert client.post("/ui/logout", data={}).status_code == 403  # no CSRF token
        out = client.post("/ui/logout", data={"csrf": csrf_of(client)})
        assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    stale = httpx.get(f"{ui.url}/ui", cookies={"fl_session": token}, timeout=TIMEOUT)
    assert stale.status_code == 303 and stale.headers["location"] == "/ui/login"

    with ui.signed_in("revocable") as client:
        assert client.get("/ui").status_code == 200
        revoked = httpx.delete(
            f"{ui.url}/v1/keys/{ui.key_ids['revocable']}",
            headers={"Authorization": f"Bearer {ui.keys['admin']}"},
            timeout=TIMEOUT,
        )
        assert revoked.status_code == 200
        gone = client.get("/ui")
        assert gone.status_code == 303 and gone.headers["location"] == "/ui/login"


def test_sessions_expire_when_idle_and_after_twelve_hours(db_url: str) -> None:
    clock = ManualClock(datetime(2024, 10, 18, 12, 0, tzinfo=UTC))
    app = create_app(db_url, clock=clock, settings=Settings(webhooks=False))
    context = app.state.context
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        _, key = context.keys.create("ops", ["read"], now_us=to_us(clock.now()))
        origin = {"Origin": "https://testserver"}
        signed = client.post("/ui/login", data={"key": key}, headers=origin)
        assert signed.status_code == 303
        assert "secure" in signed.headers["set-cookie"].lower()  # https: Secure
        assert client.get("/ui").status_code == 200
        clock.advance(timedelta(hours=2, seconds=1))  # idle too long
        assert client.get("/ui").status_code == 303

        client.cookies.clear()
        assert client.post("/ui/login", data={"key": key}, headers=origin).status_code == 303
        for _ in range(11):  # active every hour: alive until twelve hours from sign-in
            clock.advance(timedelta(hours=1))
            assert client.get("/ui").status_code == 200
        clock.advance(timedelta(hours=1))
        assert client.get("/ui").status_code == 303


def test_without_auth_the_dashboard_still_refuses_other_origins(
    db_url: str, tmp_path: Path
) -> None:
    app = create_app(db_url, auth=False, settings=Settings(webhooks=False))
    with TestClient(app, follow_redirects=False) as client:
        loop = FeedbackLoop("a", tracking_db=db_url, task="binary", artifact_root=str(tmp_path))
        _seed(loop, datetime.now(UTC), n=50)
        assert client.get("/ui").status_code == 200
        assert client.get("/ui/models/a/rollback").status_code == 200
        foreign = {"Origin": "https://evil.example"}
        assert client.post("/ui/models/a/rollback", headers=foreign).status_code == 403
        assert FeedbackLoop("a", tracking_db=db_url).aliases()["champion"] == 2
        ours = {"Origin": "http://testserver"}
        assert client.post("/ui/models/a/rollback", headers=ours).status_code == 303
        assert FeedbackLoop("a", tracking_db=db_url).aliases()["champion"] == 1


# -- 2. bounded sizes --------------------------------------------------------------------------


def test_the_period_is_bounded_with_a_422_naming_it(ui: Ui) -> None:
    with ui.signed_in("reader") as client:
        for period in ("0.0000001s", "0s", "30s", "400d", "abc", "1e400d", "99999999999d"):
            page = client.get("/ui/models/a", params={"period": period})
            assert page.status_code == 422, (period, page.status_code)
            assert "period" in page.text
        assert client.get("/ui/models/a", params={"period": "1m"}).status_code == 200
        assert client.get("/ui/models/a", params={"period": "366d"}).status_code == 200


def test_a_stray_old_timestamp_does_not_make_the_page_compute_years(ui: Ui) -> None:
    loop = FeedbackLoop("stray", tracking_db=ui.db_url, task="binary")
    now = datetime.now(UTC)
    loop.log_prediction(
        prediction_id="old", prediction=1, actual=1, timestamp=datetime(1970, 1, 2, tzinfo=UTC)
    )
    for i in range(5):
        loop.log_prediction(
            prediction_id=f"n{i}", prediction=1, actual=i % 2, timestamp=now - timedelta(hours=i)
        )

    calls = 0
    measured = loop.get_metrics

    def counted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        assert calls <= 1000, "the chart computes tens of thousands of points"
        return measured(*args, **kwargs)

    loop.get_metrics = counted  # type: ignore[method-assign]
    context = report_context(loop, period="1d", max_points=60)
    assert calls <= 61 and "clipped" in context
    with ui.signed_in("reader") as client:
        page = client.get("/ui/models/stray")
        assert page.status_code == 200 and 'id="clipped"' in page.text
        assert "1970-01-02" in page.text  # says how far back the log goes


def test_ingest_and_metrics_answer_while_many_pages_load(ui: Ui) -> None:
    loop = FeedbackLoop("busy", tracking_db=ui.db_url, task="binary")
    now = datetime.now(UTC)
    loop.log_predictions(
        [
            {
                "prediction_id": f"b{i}",
                "prediction": i % 2,
                "actual": (i // 3) % 2,
                "timestamp": now - timedelta(minutes=15 * i),
            }
            for i in range(30 * 96)  # thirty days
        ]
    )
    with ui.signed_in("reader") as client:
        cookies = dict(client.cookies)
    pages = 45
    results: list[int] = []
    counted = threading.Condition()
    count = {"sent": 0, "answered": 0}  # page requests written whole to the server; answered

    def trace(event: str, info: Any) -> None:
        if event == "http11.send_request_body.complete":
            with counted:
                count["sent"] += 1
                counted.notify_all()

    def load() -> None:
        try:
            with httpx.Client(cookies=cookies, timeout=TIMEOUT * 5) as http:
                page = http.get(
                    f"{ui.url}/ui/models/busy",
                    params={"period": "60s"},
                    extensions={"trace": trace},
                )
            results.append(page.status_code)
        except httpx.HTTPError as exc:
            results.append(type(exc).__name__)  # type: ignore[arg-type]
        finally:
            with counted:
                count["answered"] += 1
                counted.notify_all()

    def in_flight() -> int:
        with counted:
            return count["sent"] - count["answered"]

    threads = [threading.Thread(target=load, daemon=True) for _ in range(pages)]
    for thread in threads:
        thread.start()
    # Every page request is in the server's hands before the ingest is sent, and some are
    # not answered yet: the ingest has to get through while they are being built.
    with counted:
        assert counted.wait_for(
            lambda: count["sent"] >= pages or count["answered"] >= pages, TIMEOUT * 5
        ), count
    assert in_flight() > 0, "every page was answered before the ingest was sent"
    ingest = {"Authorization": f"Bearer {ui.keys['admin']}"}
    row = {"prediction_id": "during", "prediction": 1, "timestamp": now.isoformat()}
    logged = httpx.post(
        f"{ui.url}/v1/models/busy/predictions", json={"rows": [row]}, headers=ingest, timeout=60
    )
    assert logged.status_code == 201, logged.text
    scraped = httpx.get(f"{ui.url}/metrics", headers=ingest, timeout=60)
    assert scraped.status_code == 200
    # the ingest and the scrape were answered while pages were still being built
    assert in_flight() > 0, "the ingest waited for every page"
    for thread in threads:
        thread.join(timeout=TIMEOUT * 5)
    # each page is built, or (the machine too busy to start it in time) politely refused
    assert set(results) <= {200, 503} and 200 in results, results


# -- 18. promote: no default version, confirmation, a warning for a rejected version ---------


def test_actions_are_confirmed_and_promote_has_no_default_version(ui: Ui) -> None:
    loop = ui.loop("a")
    events = len(loop.events(limit=None))
    with ui.signed_in("admin") as client:
        page = client.get("/ui/models/a").text
        assert '<option value="" selected>choose a version</option>' in page
        assert re.search(r'<option value="\d+" selected', page) is None
        # the confirmation pages change nothing and say what will happen
        for path, expected in [
            ("/ui/models/a/rollback", "version 2"),
            ("/ui/models/a/retrain", "retraining job"),
            ("/ui/models/a/promote?version=1", "version 1 the champion"),
        ]:
            confirm = client.get(path)
            assert confirm.status_code == 200 and expected in confirm.text, path
            assert CSRF.search(confirm.text) is not None
        assert len(loop.events(limit=None)) == events

        empty = client.get("/ui/models/a/promote", params={"version": ""})
        assert empty.status_code == 422 and "version" in empty.text
        csrf = csrf_of(client)
        huge = client.post("/ui/models/a/retrain", data={"csrf": csrf, "reason": "r" * 5000})
        assert huge.status_code == 422 and "reason" in huge.text
        unchosen = client.post("/ui/models/a/promote", data={"csrf": csrf})
        assert unchosen.status_code == 422 and "choose a version" in unchosen.text
        assert loop.aliases()["champion"] == 2 and len(loop.events(limit=None)) == events

        # a version the gate rejected: a warning, and only "promote anyway" promotes it
        loop.record_event("gate_rejected", reason="worse than the champion", version="1")
        warned = client.get("/ui/models/a/promote", params={"version": "1"})
        assert 'id="rejected"' in warned.text and "Promote anyway" in warned.text
        plain = client.post("/ui/models/a/promote", data={"csrf": csrf, "version": "1"})
        assert plain.status_code == 409 and "force" in plain.text
        assert loop.aliases()["champion"] == 2
        forced = client.post(
            "/ui/models/a/promote", data={"csrf": csrf, "version": "1", "force": "true"}
        )
        assert forced.status_code == 303
    assert loop.aliases()["champion"] == 1
    assert loop.events(kinds=["promoted"])[0].actor == "api:admin"
    loop.promote(2, reason="restore")


# -- review: names that need quoting, one reason rule, no queries on the event loop ----------


def _form_action(page: str, action: str) -> str:
    found = re.search(r'action="(/ui/models/[^"]*/' + action + ')"', page)
    assert found is not None, page
    return found.group(1)


def test_a_model_name_with_url_characters_works_through_every_form(ui: Ui) -> None:
    from urllib.parse import quote

    name = "a?b #%c"
    _seed(
        FeedbackLoop(name, tracking_db=ui.db_url, task="binary", artifact_root=str(ui.tmp / "art")),
        datetime.now(UTC),
        n=50,
    )
    path = f"/ui/models/{quote(name, safe='')}"
    with ui.signed_in("admin") as client:
        assert f'href="{path}"' in client.get("/ui").text
        page = client.get(path)
        assert page.status_code == 200, page.text
        confirm_path = _form_action(page.text, "rollback")
        assert confirm_path == f"{path}/rollback"
        confirm = client.get(confirm_path)
        assert confirm.status_code == 200 and "version 1" in confirm.text, confirm.text
        csrf = CSRF.search(confirm.text)
        assert csrf is not None
        done = client.post(
            _form_action(confirm.text, "rollback"), data={"csrf": csrf.group(1), "reason": "q"}
        )
        assert done.status_code == 303 and done.headers["location"] == path, done.text
    assert ui.loop(name).aliases()["champion"] == 1


def test_the_dashboard_keeps_the_reason_rule_of_the_api(ui: Ui) -> None:
    loop = ui.loop("b")
    with ui.signed_in("admin") as client:
        confirm = client.get("/ui/models/b/retrain").text
        assert 'maxlength="2000"' in confirm
        csrf = csrf_of(client)
        done = client.post("/ui/models/b/rollback", data={"csrf": csrf, "reason": "line 1\nline 2"})
        assert done.status_code == 303, done.text
        assert "line 1\nline 2" in loop.events(kinds=["rolled_back"])[0].reason
        too_long = client.post(
            "/ui/models/b/promote", data={"csrf": csrf, "version": "2", "reason": "r" * 2001}
        )
        assert too_long.status_code == 422 and "at most 2000" in too_long.text
    loop.promote(2, reason="restore")


def test_action_handlers_look_models_up_off_the_event_loop(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ModelLoops.get`` may query the database: it runs in the thread pool, never on the
    event loop that serves every other request."""
    import asyncio

    from feedback_loop.server.loops import ModelLoops

    on_loop: list[str] = []
    real_get = ModelLoops.get

    def get(self: ModelLoops, model: str, **kwargs: Any) -> FeedbackLoop:
        try:
            asyncio.get_running_loop()
            on_loop.append(model)
        except RuntimeError:
            pass
        return real_get(self, model, **kwargs)

    monkeypatch.setattr(ModelLoops, "get", get)
    app = create_app(db_url, auth=False, settings=Settings(webhooks=False))
    with TestClient(app, follow_redirects=False) as client:
        loop = FeedbackLoop("a", tracking_db=db_url, task="binary", artifact_root=str(tmp_path))
        _seed(loop, datetime.now(UTC), n=50)
        ours = {"Origin": "http://testserver"}
        assert client.get("/ui/models/a/rollback").status_code == 200
        assert client.get("/ui/models/a/promote", params={"version": "1"}).status_code == 200
        assert client.post("/ui/models/a/rollback", headers=ours).status_code == 303
        assert client.get("/ui/models/a").status_code == 200
        assert client.get("/ui").status_code == 200
    assert on_loop == []
