"""The HTTP client against a real server process, on SQLite and on PostgreSQL.

Each database gets one ``feedback-loop serve`` process on a free loopback port and API keys made
with ``feedback-loop keys create``; the tests drive it through ``Client`` and compare what it
reads with an in-process ``FeedbackLoop`` on the same database. The last tests check the
client's retry and error rules against a scripted transport, without a server.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from servers import READY_TIMEOUT_S as READY_TIMEOUT_S
from servers import ServerProcess as ServerProcess
from servers import create_key as create_key
from servers import free_port as free_port
from servers import served_database

from feedback_loop import (
    DuplicatePredictionError,
    FeedbackLoop,
    RetrainDecision,
    UnknownModelError,
    ValidationError,
)
from feedback_loop.client import AuthError, Client, ServerError
from feedback_loop.collect.recording import LogResult
from feedback_loop.deploy.watch_verdict import WatchVerdict
from feedback_loop.store.events import Event
from feedback_loop.store.outcomes import OutcomeResult

# Keys of a metrics dict that name the moment of the call rather than the data.
MOMENT_KEYS = ("window_start", "window_end")


# -- a real server process (started by tests/servers.py, whose names stay importable here) ---


@dataclass
class Served:
    url: str
    db_url: str
    ingest: str  # ingest + read, as the quick start's key
    admin: str
    reader: str
    tmp: Path

    def client(self, model: str, key: str | None = None, **kwargs: Any) -> Client:
        kwargs.setdefault("timeout", 120.0)  # a loaded machine answers slowly, not wrongly
        return Client(self.url, model_name=model, api_key=key or self.ingest, **kwargs)

    def loop(self, model: str, **kwargs: Any) -> FeedbackLoop:
        return FeedbackLoop(
            model, tracking_db=self.db_url, artifact_root=str(self.tmp / "artifacts"), **kwargs
        )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp(f"served-{request.param}")
    with served_database(request.param, tmp) as server:
        db_url = server.db_url
        yield Served(
            url=server.url,
            db_url=db_url,
            ingest=create_key(db_url, "quickstart", "ingest", "read"),
            admin=create_key(db_url, "ops", "admin"),
            reader=create_key(db_url, "dashboard", "read"),
            tmp=tmp,
        )


def comparable(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k not in MOMENT_KEYS}


def _seed_quick_start() -> str:
    path = Path(__file__).with_name("test_quickstart.py")
    spec = importlib.util.spec_from_file_location("seed_quick_start", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text: str = module.QUICK_START
    return text


# -- against the server ---------------------------------------------------------------------


def test_quick_start_runs_against_the_server(served: Served, capsys: pytest.CaptureFixture) -> None:
    seed = _seed_quick_start()
    constructor = re.compile(r"feedback = FeedbackLoop\(\n.*?\n\)\n", re.DOTALL)
    assert len(constructor.findall(seed)) == 1
    remote = constructor.sub(
        "feedback = Client(url, model_name='nba-game-predictor', retrain_threshold=0.95, "
        "api_key=KEY)\n",
        seed,
    )
    # should_retrain records its decision (a write) and trigger_retraining queues a job: the
    # quick start runs with an admin key.
    exec(remote, {"Client": Client, "url": served.url, "KEY": served.admin})
    out = capsys.readouterr().out
    assert "7-day accuracy: 0.00%" in out
    assert "triggering retrain" not in out
    metrics = served.loop("nba-game-predictor").get_metrics(window="7d")
    assert (metrics["predictions"], metrics["labeled"]) == (1, 1)


def _frame(n: int, *, seed: int, now: datetime) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    score = rng.random(n)
    return pd.DataFrame(
        {
            "prediction_id": [f"r{seed}-{i}" for i in range(n)],
            "timestamp": pd.to_datetime(now) - pd.to_timedelta(rng.integers(60, 6 * 86400, n), "s"),
            "prediction": [{"label": int(s > 0.5), "score": float(s)} for s in score],
            "version": np.where(rng.random(n) < 0.5, "1", "2"),
            "tags": [{"region": r} for r in rng.choice(["eu", "us", "apac"], n)],
            "latency_ms": rng.random(n) * 10,
            "tenure": rng.integers(0, 60, n),
            "spend": np.where(rng.random(n) < 0.05, np.nan, rng.normal(50, 10, n)),
            "plan": rng.choice(["free", "pro"], n),
        }
    )


def test_bulk_ingest_and_outcomes_match_the_in_process_loop(served: Served) -> None:
    now = datetime.now(UTC)
    frame = _frame(12_000, seed=1, now=now)
    client = served.client("bulk", task="binary", key=served.admin, batch_size=5000)
    logged = client.log_predictions(frame)
    assert isinstance(logged, LogResult)
    assert (logged.inserted, logged.retried, logged.outcomes) == (12_000, 0, 0)
    assert logged.prediction_ids == frame["prediction_id"].tolist()

    rng = np.random.default_rng(2)
    labeled = frame.sample(frac=0.7, random_state=3)
    outcomes = pd.DataFrame(
        {
            "prediction_id": [*labeled["prediction_id"], "not-yet-1", "not-yet-2"],
            "actual": rng.integers(0, 2, len(labeled) + 2),
            "timestamp": [now.isoformat()] * (len(labeled) + 2),
        }
    )
    result = client.log_outcomes(outcomes)
    assert result == OutcomeResult(stored=len(labeled) + 2, matched=len(labeled), unmatched=2)
    assert client.log_outcome("not-yet-1", 1, source="review") == OutcomeResult(1, 0, 1)
    late = client.log_prediction("not-yet-2", prediction={"label": 1, "score": 0.9})
    assert (late.inserted, late.joined) == (1, 1)  # the outcome that came first is joined

    local = served.loop("bulk")
    for kwargs in (
        {"window": "7d"},
        {"window": "all"},
        {"window": timedelta(days=3)},
        {"window": "7d", "version": "2"},
        {"window": "7d", "segment": {"region": "eu"}},
    ):
        assert comparable(client.get_metrics(**kwargs)) == comparable(local.get_metrics(**kwargs))
    assert client.get_metrics()["labeled"] == len(labeled) + 1
    assert client.task == "binary"


def test_rows_without_ids_and_an_arrow_table(served: Served) -> None:
    import pyarrow as pa

    client = served.client("arrow", batch_size=3)
    table = pa.table(
        {
            "prediction": [0.5, 1.5, 2.5, 3.5, 4.5],
            "actual": [0.4, 1.6, None, 3.0, 5.0],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0],
            "timestamp": [datetime.now(UTC) - timedelta(hours=h) for h in range(5)],
        }
    )
    logged = client.log_predictions(table)
    assert (logged.inserted, logged.outcomes) == (5, 4)
    assert len(set(logged.prediction_ids)) == 5
    single = client.log_prediction(prediction=np.float64(1.25), features={"x": np.int64(3)})
    assert single.inserted == 1 and len(single.prediction_ids[0]) == 32
    metrics = client.get_metrics(window="1d")
    assert metrics["predictions"] == 6 and metrics["labeled"] == 4
    assert metrics["mae"] == pytest.approx(np.mean([0.1, 0.1, 0.5, 0.5]))


def test_a_retried_batch_is_stored_once(served: Served) -> None:
    client = served.client("retry", batch_size=1000)
    rows = [{"prediction": i % 2, "actual": (i // 2) % 2, "order_id": f"o{i}"} for i in range(2500)]
    first = client.log_predictions(rows)
    again = client.log_predictions(rows)
    assert (first.inserted, first.retried) == (2500, 0)
    assert (again.inserted, again.retried, again.outcomes) == (0, 2500, 0)

    # The answer to the first attempt is lost after the server committed: the client sends the
    # same batch (same generated ids) again, and the server takes it as a retry.
    lost = DropFirstAnswer(httpx.HTTPTransport(), path_suffix="/predictions")
    flaky = served.client("retry", transport=lost, backoff=0.01)
    generated = flaky.log_predictions([{"prediction": 1} for _ in range(300)])
    assert lost.dropped == 1
    assert (generated.inserted, generated.retried) == (0, 300)
    metrics = served.loop("retry").get_metrics(window="all")
    assert metrics["predictions"] == 2800 and metrics["labeled"] == 2500


class DropFirstAnswer(httpx.BaseTransport):
    """Forwards requests, but loses the answer to the first one on ``path_suffix`` after the
    server has handled it, as a timeout on a slow network would."""

    def __init__(self, inner: httpx.BaseTransport, *, path_suffix: str):
        self.inner = inner
        self.path_suffix = path_suffix
        self.dropped = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if self.dropped == 0 and request.url.path.endswith(self.path_suffix):
            response.read()
            response.close()
            self.dropped += 1
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def test_auth_failures_are_exceptions_without_the_key(served: Served) -> None:
    with pytest.raises(AuthError) as missing:
        Client(served.url, model_name="auth", api_key="").log_prediction(prediction=1)
    assert missing.value.status_code == 401
    bogus = "fl_abcdefgh_" + "x" * 40
    with pytest.raises(AuthError) as unknown:
        served.client("auth", key=bogus).get_metrics()
    assert unknown.value.status_code == 401
    assert bogus not in str(unknown.value)
    with pytest.raises(AuthError) as scope:
        served.client("auth", key=served.reader).log_prediction(prediction=1)
    assert scope.value.status_code == 403
    assert served.reader not in str(scope.value)
    served.client("auth").log_prediction(prediction=1)
    with pytest.raises(AuthError) as admin_only:
        served.client("auth").trigger_retraining()
    assert admin_only.value.status_code == 403
    assert served.client("auth", key=served.reader).get_metrics(window="all")["predictions"] == 1


def test_library_errors_cross_the_wire(served: Served) -> None:
    client = served.client("errors", batch_size=100)
    rows: list[dict[str, Any]] = [{"prediction": 1, "pid_id": f"e{i}"} for i in range(250)]
    rows[150]["latency_ms"] = -1.0
    with pytest.raises(ValidationError) as bad:
        client.log_predictions(rows)
    assert (bad.value.row, bad.value.field) == (150, "latency_ms")
    assert "the 100 rows before" in str(bad.value)
    assert served.loop("errors").get_metrics(window="all")["predictions"] == 100
    with pytest.raises(ValidationError) as bad_kind:
        client.log_predictions([{"prediction": 1, "features": {"a": 1}, "stray": 2}])
    assert bad_kind.value.field == "stray"
    with pytest.raises(DuplicatePredictionError):
        client.log_prediction("e0", prediction=0)
    with pytest.raises(UnknownModelError):
        served.client("never-logged").get_metrics()
    with pytest.raises(ValidationError) as window:
        client.get_metrics(window="a week")
    assert window.value.field == "window"


def test_monitoring_and_registry_round_trip(served: Served) -> None:
    now = datetime.now(UTC)
    admin = served.client(
        "monitor", key=served.admin, retrain_threshold=0.9, min_labeled=50, task="binary"
    )
    local = served.loop("monitor", retrain_threshold=0.9, min_labeled=50)
    reference = _frame(2000, seed=5, now=now - timedelta(days=20))
    current = _frame(2000, seed=6, now=now)
    current["tenure"] += 30  # drifted
    admin.log_predictions(reference)
    admin.log_predictions(current)
    admin.log_outcomes(
        pd.DataFrame({"prediction_id": current["prediction_id"], "actual": np.arange(2000) % 2})
    )
    local.set_reference(window=(now - timedelta(days=30), now - timedelta(days=10)))

    drift = admin.check_drift(window="7d")
    expected = local.check_drift(window="7d").to_dict()
    assert drift["drifted_columns"] == expected["drifted_columns"]
    assert "tenure" in drift["drifted_columns"]
    assert drift["columns"] == expected["columns"]
    assert admin.estimate_performance(window="7d") == local.estimate_performance(window="7d")
    assert admin.segments(window="7d", by=["region"], min_support=10) == local.segments(
        window="7d", by=["region"], min_support=10
    )

    decision = admin.should_retrain()
    assert isinstance(decision, RetrainDecision) and decision
    assert decision == local.should_retrain()
    event = admin.trigger_retraining("accuracy fell")
    assert isinstance(event, Event) and event.kind == "retrain_requested"
    assert event.actor == "api:ops" and event.reason == "accuracy fell"
    events = admin.events()
    assert [e.to_dict() for e in events] == [e.to_dict() for e in local.events()]
    assert events[0] == event
    assert {e.kind for e in admin.events(kinds=["retrain_due"])} == {"retrain_due"}
    assert len(admin.events(limit=2)) == 2

    assert admin.versions() == [] and admin.aliases() == {}
    first = local.register_model({"weights": [1, 2]})
    second = local.register_model({"weights": [3, 4]})
    assert [v["version"] for v in admin.versions()] == [first, second]
    assert admin.set_alias("champion", first) is None
    admin.promote(second, reason="better offline")
    assert admin.aliases() == local.aliases() == {"champion": second}
    assert admin.rollback(reason="worse live") == first
    assert admin.aliases()["champion"] == first
    assert admin.set_alias("challenger", second) is None
    assert admin.set_alias("challenger", None) == second
    moves = admin.events(kinds=["promoted", "rolled_back"])
    assert [(e.kind, e.version, e.actor) for e in moves] == [
        ("rolled_back", str(first), "api:ops"),
        ("promoted", str(second), "api:ops"),
    ]


def test_reading_back_references_watch_and_events_match_the_loop(served: Served) -> None:
    now = datetime.now(UTC)
    admin = served.client("parity", key=served.admin, task="binary")
    local = served.loop("parity")
    frame = _frame(600, seed=7, now=now)
    admin.log_predictions(frame)
    actual = (np.arange(600) % 3 == 0).astype(int)
    admin.log_outcomes(pd.DataFrame({"prediction_id": frame["prediction_id"], "actual": actual}))
    admin.log_outcome("not-logged-yet", 1)

    first_id = str(frame["prediction_id"][0])
    found = admin.get_prediction(first_id)
    assert found is not None and found == local.get_prediction(first_id)
    assert isinstance(found["timestamp"], datetime) and found["actual"] == 1
    assert set(found["features"]) == {"tenure", "spend", "plan"}
    assert admin.get_prediction("nobody") is None and admin.get_prediction("") is None
    with pytest.raises(UnknownModelError):
        served.client("never-made").get_prediction(first_id)
    assert admin.unmatched_outcomes() == local.unmatched_outcomes() == 1

    with pytest.raises(TypeError, match="Python API"):
        admin.set_reference(frame)
    with pytest.raises(ValidationError) as no_window:
        admin.set_reference()
    assert no_window.value.field == "window"
    start, end = now - timedelta(days=7), now - timedelta(days=3)
    stored = admin.set_reference(window=(start, end), name="early")
    in_window = ((frame["timestamp"] >= start) & (frame["timestamp"] < end)).sum()
    assert stored["name"] == "early" and stored["rows"] == in_window > 0

    options: dict[str, Any] = {
        "reference": "early",
        "methods": {"tenure": "psi", "plan": "linf"},
        "share_threshold": 0.9,
    }
    drift = admin.check_drift(window="3d", **options)
    expected = local.check_drift(window="3d", **options).to_dict()
    assert drift["columns"]["tenure"]["method"] == "psi"
    assert drift["columns"]["plan"]["method"] == "linf"
    for key in ("drifted", "share_drifted", "drifted_columns", "columns"):
        assert drift[key] == expected[key], key
    with pytest.raises(ValidationError) as bad_method:
        admin.check_drift(reference="early", methods={"plan": "ks"})
    assert bad_method.value.field == "method"
    estimate = admin.estimate_performance(window="3d", reference="early")
    assert estimate == local.estimate_performance(window="3d", reference="early")
    assert estimate["calibrated"] is True
    assert admin.detect_concept_drift() == local.detect_concept_drift()
    assert admin.detect_concept_drift(
        window="7d", detector="page_hinkley"
    ) == local.detect_concept_drift(window="7d", detector="page_hinkley")

    first = local.register_model({"weights": [1]})
    second = local.register_model({"weights": [2]})
    assert admin.watch_champion() is None  # nothing promoted yet
    admin.set_alias("champion", first)
    admin.promote(second, reason="better offline")
    history = admin.alias_history("champion")
    assert history == local.alias_history("champion")
    assert [(m["version"], m["previous_version"]) for m in history] == [
        (first, None),
        (second, first),
    ]
    assert isinstance(history[0]["time"], datetime) and history[1]["actor"] == "api:ops"
    assert admin.alias_history() == local.alias_history()
    verdict = admin.watch_champion(min_samples=10_000)  # no prediction of the new one yet
    assert isinstance(verdict, WatchVerdict) and not verdict.ready and verdict.n_new == 0
    assert verdict == local.watch_champion(min_samples=10_000)

    event_id = admin.record_event(
        "manual_review", reason="looked at it", evidence={"n": np.int64(3)}, version="2"
    )
    (event,) = local.events(kinds=["manual_review"])
    assert event.id == event_id and isinstance(event_id, int)
    assert (event.actor, event.version, event.evidence) == ("api:ops", "2", {"n": 3})
    assert admin.events(kinds=["manual_review"]) == [event]


def test_a_declared_task_reaches_the_server_first(served: Served) -> None:
    client = served.client("declared", key=served.admin, task="binary", positive_label="spam")
    client.log_predictions([{"prediction": "spam", "actual": "ham"}])
    assert client.task == "binary"
    with pytest.raises(ValidationError) as clash:
        served.client("declared", key=served.admin, task="regression").log_prediction(
            prediction=1.5
        )
    assert clash.value.field == "task"
    assert client.health() == {"status": "ok"} and client.ready()["status"] == "ready"
    assert {"name": "declared", "task": "binary"} in client.models()


# -- the client's own rules, against a scripted transport -------------------------------------


class Script(httpx.BaseTransport):
    """Answers from a list of responses (or exceptions), recording every request."""

    def __init__(self, answers: list[Any]):
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, httpx.Response)
        return answer


def logged(n: int) -> httpx.Response:
    return httpx.Response(
        201, json={"inserted": n, "retried": 0, "outcomes": 0, "joined": 0, "prediction_ids": []}
    )


def error(status: int, message: str, **where: Any) -> httpx.Response:
    body = {"error": {"type": "x", "message": message, "field": None, "row": None, **where}}
    return httpx.Response(status, json=body)


def scripted(answers: list[Any], **kwargs: Any) -> tuple[Client, Script]:
    script = Script(answers)
    options: dict[str, Any] = {"api_key": "fl_secret00_" + "s" * 30, "backoff": 0.0, **kwargs}
    return Client("http://server", model_name="m", transport=script, **options), script


def test_transient_failures_are_retried_with_identical_bodies() -> None:
    client, script = scripted(
        [
            httpx.ConnectError("refused"),
            error(503, "busy"),
            httpx.ReadTimeout("slow"),
            httpx.Response(429, headers={"Retry-After": "0"}),
            error(502, "proxy"),
            logged(3),
        ]
    )
    result = client.log_predictions([{"prediction": 1}, {"prediction": 0}, {"prediction": 1}])
    assert result.inserted == 3
    bodies = {r.content for r in script.requests}
    assert len(script.requests) == 6 and len(bodies) == 1
    ids = [row["prediction_id"] for row in json.loads(bodies.pop())["rows"]]
    assert len(set(ids)) == 3 and all(len(i) == 32 for i in ids)


def test_retries_are_bounded() -> None:
    client, script = scripted([error(500, "boom")] * 3, retries=2)
    with pytest.raises(ServerError) as failed:
        client.get_metrics()
    assert failed.value.status_code == 500 and len(script.requests) == 3
    client, script = scripted([httpx.ReadTimeout("slow")] * 2, retries=1)
    with pytest.raises(ServerError) as unreachable:
        client.get_metrics()
    assert unreachable.value.status_code is None and len(script.requests) == 2


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (422, ValidationError),
        (409, DuplicatePredictionError),
        (404, UnknownModelError),
        (401, AuthError),
        (403, AuthError),
        (400, ServerError),
        (413, ValidationError),
    ],
)
def test_client_errors_are_not_retried(status: int, kind: type[Exception]) -> None:
    client, script = scripted([error(status, "no", field="prediction", row=2)], batch_size=10)
    with pytest.raises(kind):
        client.log_predictions([{"prediction": 1}] * 5)
    assert len(script.requests) == 1


def test_error_rows_count_from_the_start_of_the_input() -> None:
    client, _ = scripted([logged(10), logged(10), error(422, "bad", field="actual", row=2)])
    client.batch_size = 10
    with pytest.raises(ValidationError) as bad:
        client.log_predictions([{"prediction": 1}] * 25)
    assert (bad.value.row, bad.value.field) == (22, "actual")


def test_state_changes_are_retried_only_when_not_acted_on() -> None:
    event = {
        "event": {
            "id": 1,
            "time": "2026-01-01T00:00:00+00:00",
            "kind": "retrain_requested",
            "model": "m",
            "version": None,
            "actor": "api",
            "reason": "r",
            "evidence": {},
        }
    }
    client, script = scripted(
        [httpx.ConnectError("refused"), error(503, "busy"), httpx.Response(202, json=event)]
    )
    assert client.trigger_retraining("r").kind == "retrain_requested"
    assert len(script.requests) == 3
    client, script = scripted([httpx.ReadTimeout("slow")])
    with pytest.raises(ServerError):
        client.rollback()
    assert len(script.requests) == 1
    client, script = scripted([error(500, "boom")])
    with pytest.raises(ServerError):
        client.promote(2)
    assert len(script.requests) == 1


def test_the_key_never_appears_in_an_error() -> None:
    key = "fl_secret00_" + "s" * 30
    client, _ = scripted([error(401, f"unknown key {key}")], api_key=key)
    with pytest.raises(AuthError) as refused:
        client.get_metrics()
    assert key not in str(refused.value) and key not in repr(client)
    assert refused.value.__cause__ is None


def test_values_are_sent_as_json() -> None:
    client, script = scripted([logged(2)])
    frame = pd.DataFrame(
        {
            "prediction": [np.int64(1), np.int64(0)],
            "timestamp": pd.Series(["2026-01-01T10:00:00+01:00", None]).pipe(
                pd.to_datetime, utc=True
            ),
            "score": [np.nan, 0.5],
            "when": [datetime(2026, 1, 2, tzinfo=UTC), None],
        }
    )
    client.log_predictions(frame)
    rows = json.loads(script.requests[0].content)["rows"]
    assert rows[0]["timestamp"] == "2026-01-01T09:00:00.000000Z"
    assert rows[1]["timestamp"] is None
    assert rows[0]["features"] == {"score": None, "when": "2026-01-02T00:00:00.000000Z"}
    assert rows[1]["features"] == {"score": 0.5, "when": None}
    with pytest.raises(ValidationError) as infinite:
        client.log_predictions(pd.DataFrame({"prediction": [1, 2], "x": [1.0, np.inf]}))
    assert (infinite.value.field, infinite.value.row) == ("x", 1)
