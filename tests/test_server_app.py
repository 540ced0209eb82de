"""The REST API in-process (FastAPI's TestClient) on both databases: every route, its errors,
the auth matrix, readiness and the Prometheus scrape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import get_args

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from feedback_loop import FeedbackLoop, ManualClock
from feedback_loop.core.timeutil import to_us
from feedback_loop.monitor.concept_drift import DETECTORS
from feedback_loop.server.app import create_app
from feedback_loop.server.context import ServerContext
from feedback_loop.server.responses import jsonable
from feedback_loop.server.routes.monitoring import Detector
from feedback_loop.server.settings import Settings
from feedback_loop.store.migrate import head_revision

BODY_LIMIT = 100_000


@dataclass
class Api:
    client: TestClient
    context: ServerContext
    clock: ManualClock

    def key(self, *scopes: str, models: list[str] | None = None, name: str = "k") -> dict:
        """Headers carrying a fresh key with these scopes."""
        now = to_us(self.clock.now())
        _, key = self.context.keys.create(name, list(scopes), models=models, now_us=now)
        return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def api(db_url, clock) -> Iterator[Api]:
    settings = Settings(webhooks=False, max_body_bytes=BODY_LIMIT)
    app = create_app(db_url, clock=clock, settings=settings)
    with TestClient(app) as client:
        yield Api(client, app.state.context, clock)


def _rows(clock, n: int, *, prefix: str = "p") -> list[dict]:
    return [
        {
            "game_id": f"{prefix}{i}",
            "timestamp": (clock.now() - timedelta(minutes=n - i)).isoformat(),
            "prediction": {"label": i % 2, "score": 0.8 if i % 2 else 0.2},
            "features": {"x": float(i), "city": "rome" if i % 3 else "oslo"},
            "tags": {"region": "eu" if i % 2 else "us"},
            "version": "1",
            "latency_ms": 3.5,
        }
        for i in range(n)
    ]


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"type", "message", "field", "row"}
    return body["error"]


def test_health_readiness_and_docs_need_no_key(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    head = head_revision()
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "schema": head}
    schema = api.client.get("/openapi.json").json()
    assert "/v1/models/{model}/predictions" in schema["paths"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schema["components"]["securitySchemes"])
    assert api.client.get("/docs").status_code == 200

    # a schema behind the code is not ready
    with api.context.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0006'"))
    error = _error(api.client.get("/readyz"), 503)
    assert error["type"] == "not_ready" and "0006" in error["message"]
    with api.context.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})
    assert api.client.get("/readyz").status_code == 200


def test_readyz_when_the_database_is_down() -> None:
    app = create_app("postgresql://127.0.0.1:1/nothing", settings=Settings(webhooks=False))
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert _error(client.get("/readyz"), 503)["type"] == "not_ready"


def test_ingest_then_read_back(api: Api) -> None:
    admin, ingest, read = api.key("admin"), api.key("ingest"), api.key("read")
    declared = api.client.put("/v1/models/games", json={"task": "binary"}, headers=admin)
    assert declared.status_code == 200 and declared.json() == {"model": "games", "task": "binary"}

    batch = api.client.post(
        "/v1/models/games/predictions", json={"rows": _rows(api.clock, 40)}, headers=ingest
    )
    assert batch.status_code == 201, batch.text
    body = batch.json()
    assert set(body) == {"inserted", "retried", "outcomes", "joined", "prediction_ids"}
    assert (body["inserted"], body["retried"]) == (40, 0)
    assert body["prediction_ids"][:2] == ["p0", "p1"]

    # an identical re-send is a safe retry
    again = api.client.post(
        "/v1/models/games/predictions", json={"rows": _rows(api.clock, 40)[:5]}, headers=ingest
    )
    assert again.status_code == 201 and again.json()["retried"] == 5

    # an outcome before its prediction, then the prediction with its actual inline
    early = api.client.post(
        "/v1/models/games/outcome", json={"prediction_id": "late", "actual": 1}, headers=ingest
    )
    assert early.status_code == 201 and early.json() == {"stored": 1, "matched": 0, "unmatched": 1}
    one = api.client.post(
        "/v1/models/games/prediction",
        json={"order_id": "late", "prediction": 1, "features": {"x": 1.0, "city": "rome"}},
        headers=ingest,
    )
    assert one.status_code == 201
    assert one.json()["prediction_ids"] == ["late"] and one.json()["joined"] == 1

    outcomes = [{"prediction_id": f"p{i}", "actual": 1} for i in range(30)]
    outcomes.append({"prediction_id": "nobody", "actual": 0, "source": "review"})
    stored = api.client.post("/v1/models/games/outcomes", json={"rows": outcomes}, headers=ingest)
    assert stored.status_code == 201
    assert stored.json() == {"stored": 31, "matched": 30, "unmatched": 1}

    metrics = api.client.get("/v1/models/games/metrics?window=7d", headers=read).json()
    assert (metrics["predictions"], metrics["labeled"]) == (41, 31)
    assert metrics["accuracy"] == pytest.approx(16 / 31)  # odd ids predicted 1, all actual 1
    eu = api.client.get(
        "/v1/models/games/metrics", params={"segment": "region:eu"}, headers=read
    ).json()
    assert eu["predictions"] == 20 and eu["accuracy"] == 1.0
    v1 = api.client.get("/v1/models/games/metrics?version=1", headers=read).json()
    assert v1["predictions"] == 40

    listed = api.client.get("/v1/models", headers=read).json()
    assert listed == {"models": [{"name": "games", "task": "binary"}]}


def test_bad_input_names_the_row_and_field(api: Api) -> None:
    ingest, read = api.key("ingest"), api.key("read")
    url = "/v1/models/m/predictions"
    rows = _rows(api.clock, 4)
    del rows[2]["prediction"]
    error = _error(api.client.post(url, json={"rows": rows}, headers=ingest), 422)
    assert (error["type"], error["field"], error["row"]) == ("validation_error", "prediction", 2)

    rows = _rows(api.clock, 4)
    rows[1]["latency_ms"] = "fast"
    error = _error(api.client.post(url, json={"rows": rows}, headers=ingest), 422)
    assert (error["field"], error["row"]) == ("latency_ms", 1)

    rows = _rows(api.clock, 4)
    rows[3]["colour"] = "red"
    error = _error(api.client.post(url, json={"rows": rows}, headers=ingest), 422)
    assert (error["field"], error["row"], error["message"]) == ("colour", 3, "is not a known field")

    # checked by the library: the meaning of a value
    rows = _rows(api.clock, 4)
    rows[1]["timestamp"] = "next tuesday-ish"
    error = _error(api.client.post(url, json={"rows": rows}, headers=ingest), 422)
    assert (error["field"], error["row"]) == ("timestamp", 1)
    # all or nothing: the batch with a bad row stored no row at all (nor the model it named)
    assert api.client.get("/v1/models/m/metrics", headers=read).status_code == 404
    declared = api.client.put("/v1/models/m", json={"task": "binary"}, headers=api.key("admin"))
    assert declared.status_code == 200

    error = _error(
        api.client.post("/v1/models/m/outcomes", json={"rows": [{"actual": 1}]}, headers=ingest),
        422,
    )
    assert (error["field"], error["row"]) == ("prediction_id", 0)
    broken = api.client.post(
        url, content=b'{"rows": [', headers={**ingest, "Content-Type": "application/json"}
    )
    assert "not valid JSON" in _error(broken, 422)["message"]
    assert _error(api.client.post(url, headers=ingest), 422)["message"] == "a JSON body is required"

    error = _error(api.client.get("/v1/models/m/events?limit=0", headers=read), 422)
    assert error["field"] == "limit"
    # PostgreSQL text cannot hold NUL: an input error, not a database failure
    error = _error(api.client.get("/v1/models/m/events?kind=a%00b", headers=read), 422)
    assert error["field"] == "kind"
    error = _error(api.client.get("/v1/models/m/metrics?segment=eu", headers=read), 422)
    assert error["field"] == "segment"
    admin = api.key("admin")
    # out-of-range values are refused as input errors, never as server errors
    too_big = [
        ("get", "/v1/models/m/metrics?window=soon", None, "window"),
        ("get", "/v1/models/m/should-retrain?window=99999999999d", None, "window"),
        ("get", "/v1/models/m/drift?correction=", None, "correction"),
        ("post", "/v1/models/m/prediction", {"prediction": 1, "timestamp": 1.8e302}, "timestamp"),
        ("post", "/v1/models/m/promote", {"version": 2**63}, "version"),
        ("put", "/v1/models/m/aliases/x", {"version": 2**63}, "version"),
        ("delete", f"/v1/keys/{2**63}", None, "key_id"),
        ("put", "/v1/models/m", {"task": "ranking"}, "task"),
        ("get", "/v1/models/m/drift?share_threshold=1.5", None, "share_threshold"),
        ("get", "/v1/models/m/concept-drift?window=99999999999d", None, "window"),
        ("post", "/v1/models/m/reference", {"window": [0, 1e300]}, "window"),
        ("post", "/v1/models/m/watch", {"min_samples": 2**63}, "min_samples"),
        ("post", "/v1/models/m/events", {"kind": "k", "reason": "r", "version": 2**63}, "version"),
    ]
    for method, path, body, field in too_big:
        response = api.client.request(method, path, json=body, headers=admin)
        assert _error(response, 422)["field"] == field, path


def test_duplicates_unknown_models_and_big_bodies(api: Api) -> None:
    ingest, read, admin = api.key("ingest"), api.key("read"), api.key("admin")
    url = "/v1/models/m/predictions"
    assert (
        api.client.post(url, json={"rows": _rows(api.clock, 3)}, headers=ingest).status_code == 201
    )
    changed = _rows(api.clock, 3)
    changed[1]["prediction"] = {"label": 0, "score": 0.1}
    error = _error(api.client.post(url, json={"rows": changed}, headers=ingest), 409)
    assert (error["type"], error["field"]) == ("duplicate_prediction", "prediction_id")
    assert "p1" in error["message"]

    # a model the spec contradicts is refused; the stored spec stands
    error = _error(api.client.put("/v1/models/m", json={"task": "regression"}, headers=admin), 422)
    assert error["field"] == "task"

    for path in (
        "metrics",
        "should-retrain",
        "drift",
        "estimate",
        "segments?by=region",
        "events",
        "versions",
        "aliases",
        "predictions/p0",
        "outcomes/unmatched",
        "concept-drift",
        "aliases/champion/history",
        "alias-history",
    ):
        error = _error(api.client.get(f"/v1/models/nobody/{path}", headers=read), 404)
        assert (error["type"], error["field"]) == ("not_found", "model")
    for path, body in (
        ("promote", {"version": 1}),
        ("reference", {"window": "all"}),
        ("watch", {}),
        ("events", {"kind": "note", "reason": "r"}),
    ):
        error = _error(api.client.post(f"/v1/models/nobody/{path}", json=body, headers=admin), 404)
        assert error["field"] == "model", path
    assert api.client.get("/v1/models", headers=read).json()["models"] == [
        {"name": "m", "task": "binary"}
    ]  # reads did not create models
    assert _error(api.client.get("/v1/nothing-here", headers=read), 404)["type"] == "not_found"

    big = json.dumps({"rows": _rows(api.clock, 800)}).encode()
    assert len(big) > BODY_LIMIT
    headers = {**ingest, "Content-Type": "application/json"}
    error = _error(api.client.post(url, content=big, headers=headers), 413)
    assert error["type"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    error = _error(api.client.post(url, content=chunks(), headers=headers), 413)
    assert error["type"] == "payload_too_large"
    small = json.dumps({"rows": _rows(api.clock, 5, prefix="s")}).encode()
    assert api.client.post(url, content=iter([small]), headers=headers).status_code == 201


def test_auth_matrix(api: Api) -> None:
    c = api.client
    admin = api.key("admin", name="ops")
    ingest, read = api.key("ingest"), api.key("read")
    limited = api.key("ingest", "read", models=["a"])
    assert c.put("/v1/models/a", json={"task": "binary"}, headers=admin).status_code == 200
    assert c.put("/v1/models/b", json={"task": "binary"}, headers=admin).status_code == 200
    row = {"prediction": 1}

    missing = c.get("/v1/models/a/metrics")
    assert _error(missing, 401)["type"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert _error(c.get("/v1/models", headers={"Authorization": "Bearer nope"}), 401)
    forged = "fl_" + read["Authorization"].split("_")[1] + "_" + "x" * 43
    assert _error(c.get("/v1/models", headers={"Authorization": f"Bearer {forged}"}), 401)
    assert "x" * 43 not in c.get("/v1/models", headers={"X-API-Key": forged}).text

    cases = [
        # (headers, method, path, body, expected status)
        (ingest, "post", "/v1/models/a/prediction", row, 201),
        (ingest, "get", "/v1/models/a/metrics", None, 403),
        (read, "post", "/v1/models/a/prediction", row, 403),
        (read, "get", "/v1/models/a/metrics", None, 200),
        (read, "put", "/v1/models/a", {}, 403),
        (read, "post", "/v1/models/a/retrain", {}, 403),
        (ingest, "put", "/v1/models/a/aliases/champion", {"version": 1}, 403),
        (limited, "post", "/v1/models/a/prediction", row, 201),
        (limited, "get", "/v1/models/a/events", None, 200),
        (limited, "post", "/v1/models/b/prediction", row, 403),
        (limited, "get", "/v1/models/b/metrics", None, 403),
        (limited, "get", "/metrics", None, 403),
        (read, "get", "/metrics", None, 200),
        (admin, "post", "/v1/models/b/prediction", row, 201),
        (admin, "get", "/v1/models/b/metrics", None, 200),
        (admin, "post", "/v1/models/b/retrain", {"reason": "test"}, 202),
        (ingest, "get", "/v1/keys", None, 403),
        (ingest, "get", "/v1/models/a/outcomes/unmatched", None, 403),
        (read, "get", "/v1/models/a/outcomes/unmatched", None, 200),
        (read, "get", "/v1/models/a/alias-history", None, 200),
        (limited, "get", "/v1/models/b/alias-history", None, 403),
        (read, "post", "/v1/models/a/reference", {"window": "all"}, 403),
        (read, "post", "/v1/models/a/watch", {}, 403),
        (read, "post", "/v1/models/a/events", {"kind": "note", "reason": "r"}, 403),
        (ingest, "post", "/v1/models/a/events", {"kind": "note", "reason": "r"}, 403),
        (admin, "post", "/v1/models/b/events", {"kind": "note", "reason": "r"}, 201),
        ({"X-API-Key": read["Authorization"][7:]}, "get", "/v1/models/a/aliases", None, 200),
    ]
    for headers, method, path, body, expected in cases:
        response = c.request(method, path, json=body, headers=headers)
        assert response.status_code == expected, (method, path, response.text)
        if expected == 403:
            assert response.json()["error"]["type"] == "forbidden"

    assert [m["name"] for m in c.get("/v1/models", headers=limited).json()["models"]] == ["a"]
    retrain = c.get("/v1/models/b/events?kind=retrain_requested", headers=read).json()
    assert retrain["events"][0]["actor"] == "api:ops"

    # keys over HTTP: an admin without model limits only
    made = c.post("/v1/keys", json={"name": "ci", "scopes": ["read"]}, headers=admin)
    assert made.status_code == 201 and made.json()["key"].startswith("fl_")
    new = {"X-API-Key": made.json()["key"]}
    assert c.get("/v1/models/a/metrics", headers=new).status_code == 200
    listed = c.get("/v1/keys", headers=admin).json()["keys"]
    assert "ci" in [k["name"] for k in listed] and all("key" not in k for k in listed)
    revoked = c.delete(f"/v1/keys/{made.json()['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert c.get("/v1/models/a/metrics", headers=new).status_code == 401
    assert _error(c.delete("/v1/keys/9999", headers=admin), 404)["field"] == "key_id"
    limited_admin = api.key("admin", models=["a"])
    assert c.get("/v1/keys", headers=limited_admin).status_code == 403


def test_auth_disabled_is_marked(db_url, clock) -> None:
    app = create_app(db_url, auth=False, clock=clock, settings=Settings(webhooks=False))
    with TestClient(app) as client:
        response = client.post("/v1/models/open/prediction", json={"prediction": 1})
        assert response.status_code == 201
        assert response.headers["X-Feedback-Loop-Auth"] == "disabled"
        assert client.get("/healthz").headers["X-Feedback-Loop-Auth"] == "disabled"
        events = client.post("/v1/models/open/retrain", json={}).json()
        assert events["event"]["actor"] == "api"


def test_nul_characters_are_a_4xx_everywhere(db_url, clock) -> None:
    """PostgreSQL text cannot hold NUL: the library refuses it by name, the server's safety
    net turns any the library lets through into a 422, never a 500."""
    app = create_app(db_url, auth=False, clock=clock, settings=Settings(webhooks=False))
    with TestClient(app) as client:
        made = client.post("/v1/models/a%00b/prediction", json={"prediction": 1})
        assert _error(made, 422)["field"] == "model_name"
        bad_id = client.post("/v1/models/ok/prediction", json={"prediction_id": "x\u0000"})
        assert bad_id.status_code == 422
        assert client.post("/v1/models/ok/prediction", json={"prediction": 1}).status_code == 201
        for path in (
            "/v1/models/a%00b/metrics",
            "/v1/models/ok/metrics?segment=r:%00",
            "/v1/models/ok/metrics?version=%00",
        ):
            assert client.get(path).status_code in (404, 422), path


def test_monitoring_routes(api: Api, tmp_path) -> None:
    read, ingest = api.key("read"), api.key("ingest")
    rng = np.random.default_rng(0)
    loop = FeedbackLoop("m", tracking_db=api.context.loops.database_url, clock=api.clock)
    n = 400
    score = rng.uniform(0, 1, n)
    rows = [
        {
            "prediction_id": f"r{i}",
            "timestamp": (api.clock.now() - timedelta(minutes=n - i)).isoformat(),
            "prediction": {"label": int(score[i] >= 0.5), "score": float(score[i])},
            "actual": int(rng.random() < score[i]),
            "features": {"x": float(rng.normal(2.0 if i % 2 else 0.0, 1.0))},
            "tags": {"region": "eu" if i % 2 else "us"},
        }
        for i in range(n)
    ]
    for start in range(0, n, 200):
        batch = {"rows": rows[start : start + 200]}
        response = api.client.post("/v1/models/m/predictions", json=batch, headers=ingest)
        assert response.status_code == 201, response.text
    reference = [{"x": float(v)} for v in rng.normal(0.0, 1.0, 1000)]
    ref_score = rng.uniform(0, 1, 1000)
    import pandas as pd

    loop.set_reference(
        pd.DataFrame(reference),
        predictions=ref_score,
        actuals=(rng.random(1000) < ref_score).astype(int),
    )

    decision = api.client.get(
        "/v1/models/m/should-retrain",
        params={"threshold": 0.99, "min_labeled": 50},
        headers=read,
    ).json()
    assert decision["retrain"] is True and decision["metric"] == "accuracy"
    assert decision["threshold"] == 0.99 and decision["min_labeled"] == 50
    calm = api.client.get("/v1/models/m/should-retrain", headers=read).json()
    assert calm["retrain"] is False and calm["reason"] == "no retrain_threshold is set"
    by_f1 = api.client.get(
        "/v1/models/m/should-retrain?metric=f1&threshold=0.1&min_labeled=1", headers=read
    ).json()
    assert by_f1["metric"] == "f1" and by_f1["retrain"] is False

    drift = api.client.get("/v1/models/m/drift?window=1d&correction=bonferroni", headers=read)
    assert drift.status_code == 200, drift.text
    report = drift.json()
    assert report["drifted"] is True and "x" in report["drifted_columns"]
    assert report["share_drifted"] == 1.0

    estimate = api.client.get("/v1/models/m/estimate?window=1d", headers=read).json()
    assert 0.0 <= estimate["accuracy"] <= 1.0

    segments = api.client.get(
        "/v1/models/m/segments", params={"by": "region", "min_support": 10}, headers=read
    ).json()["segments"]
    assert sorted(s["segment"]["region"] for s in segments) == ["eu", "us"]
    error = _error(api.client.get("/v1/models/m/segments", headers=read), 422)
    assert error["field"] == "by"

    recorded = ["drift_detected", "retrain_due"]
    events = api.client.get("/v1/models/m/events", params={"kind": recorded}, headers=read)
    assert events.json()["events"] == []  # the reads above recorded nothing
    admin = api.key("admin", name="monitor")
    assert _error(api.client.post("/v1/models/m/drift?window=1d", headers=read), 403)
    recorded_report = api.client.post(
        "/v1/models/m/drift?window=1d&correction=bonferroni", headers=admin
    ).json()
    assert recorded_report == report
    recording = api.client.post(
        "/v1/models/m/should-retrain", params={"threshold": 0.99, "min_labeled": 50}, headers=admin
    )
    assert recording.json() == decision
    events = api.client.get("/v1/models/m/events", params={"kind": recorded}, headers=read).json()[
        "events"
    ]
    assert {e["kind"] for e in events} == {"drift_detected", "retrain_due"}
    assert {e["actor"] for e in events} == {"api:monitor"}
    assert set(events[0]) == {
        "id",
        "time",
        "kind",
        "model",
        "version",
        "actor",
        "reason",
        "evidence",
    }
    assert len(api.client.get("/v1/models/m/events?limit=1", headers=read).json()["events"]) == 1


def test_registry_routes(api: Api, tmp_path) -> None:
    read, admin = api.key("read"), api.key("admin", name="release")
    loop = FeedbackLoop(
        "reg",
        tracking_db=api.context.loops.database_url,
        clock=api.clock,
        task="binary",
        artifact_root=str(tmp_path),
    )
    loop.register_model({"weights": [1, 2]}, train_rows=10, metrics={"holdout_accuracy": 0.8})
    loop.register_model({"weights": [3, 4]}, train_rows=20)

    versions = api.client.get("/v1/models/reg/versions", headers=read).json()["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert set(versions[0]) == {
        "version",
        "created_at",
        "created_by",
        "sha256",
        "train_rows",
        "metrics",
    }
    assert versions[0]["metrics"] == {"holdout_accuracy": 0.8} and len(versions[0]["sha256"]) == 64

    moved = api.client.put(
        "/v1/models/reg/aliases/champion", json={"version": 1, "reason": "first"}, headers=admin
    )
    assert moved.json() == {"alias": "champion", "version": 1, "previous": None}
    promoted = api.client.post(
        "/v1/models/reg/promote", json={"version": 2, "reason": "better"}, headers=admin
    )
    assert promoted.status_code == 200 and promoted.json() == {"champion": 2}
    assert api.client.get("/v1/models/reg/aliases", headers=read).json() == {
        "aliases": {"champion": 2}
    }
    rolled = api.client.post("/v1/models/reg/rollback", headers=admin)  # the body is optional
    assert rolled.status_code == 200 and rolled.json() == {"champion": 1}
    error = _error(
        api.client.post("/v1/models/reg/promote", json={"version": 9}, headers=admin), 422
    )
    assert error["field"] == "version"

    queued = api.client.post("/v1/models/reg/retrain", json={"reason": "drift"}, headers=admin)
    assert queued.status_code == 202
    event = queued.json()["event"]
    assert (event["kind"], event["reason"], event["actor"]) == (
        "retrain_requested",
        "drift",
        "api:release",
    )
    kinds = [e.kind for e in loop.events(kinds=["promoted", "rolled_back"])]
    assert kinds == ["rolled_back", "promoted"]
    assert {e.actor for e in loop.events(kinds=["promoted", "rolled_back"])} == {"api:release"}


def test_a_logged_prediction_reads_back(api: Api) -> None:
    ingest, read = api.key("ingest"), api.key("read")
    rows = _rows(api.clock, 3)
    rows[0]["game_id"] = "season/2024/g0"  # ids may hold '/'
    assert (
        api.client.post("/v1/models/m/predictions", json={"rows": rows}, headers=ingest).status_code
        == 201
    )
    outcomes = [{"prediction_id": "p1", "actual": 1}, {"prediction_id": "ghost", "actual": 0}]
    api.client.post("/v1/models/m/outcomes", json={"rows": outcomes}, headers=ingest)
    loop = FeedbackLoop("m", tracking_db=api.context.loops.database_url, clock=api.clock)

    for path in ("season/2024/g0", "season%2F2024%2Fg0"):
        found = api.client.get(f"/v1/models/m/predictions/{path}", headers=read)
        assert found.status_code == 200, found.text
        assert found.json() == jsonable(loop.get_prediction("season/2024/g0"))
    first = found.json()
    assert first["features"] == {"city": "oslo", "x": 0.0} and first["tags"] == {"region": "us"}
    assert first["prediction"] == {"label": 0, "score": 0.2} and first["version"] == "1"
    assert (first["actual"], first["labeled_at"]) == (None, None)
    labeled = api.client.get("/v1/models/m/predictions/p1", headers=read).json()
    assert labeled["actual"] == 1 and labeled["labeled_at"] == api.clock.now().isoformat()

    error = _error(api.client.get("/v1/models/m/predictions/ghost", headers=read), 404)
    assert (error["type"], error["field"]) == ("not_found", "prediction_id")
    error = _error(api.client.get("/v1/models/m/predictions/a%00b", headers=read), 422)
    assert error["field"] == "prediction_id"
    assert _error(api.client.get("/v1/models/m/predictions/p1", headers=ingest), 403)
    unmatched = api.client.get("/v1/models/m/outcomes/unmatched", headers=read)
    assert unmatched.json() == {"unmatched": 1} == {"unmatched": loop.unmatched_outcomes()}


def test_reference_drift_options_and_concept_drift(api: Api) -> None:
    read, ingest, admin = api.key("read"), api.key("ingest"), api.key("admin")
    rng = np.random.default_rng(1)
    n = 400
    score = rng.uniform(0, 1, n)
    label = (score >= 0.5).astype(int)
    # right for the first half, mostly wrong for the second, which also drifts in x
    wrong = (np.arange(n) >= n // 2) & (rng.random(n) < 0.7)
    rows = [
        {
            "prediction_id": f"r{i}",
            "timestamp": (api.clock.now() - timedelta(minutes=n - i)).isoformat(),
            "prediction": {"label": int(label[i]), "score": float(score[i])},
            "actual": int(label[i] ^ wrong[i]),
            "features": {
                "x": float(rng.normal(2.0 if i >= n // 2 else 0.0, 1.0)),
                "plan": "pro" if i % 3 else "free",
            },
        }
        for i in range(n)
    ]
    for start in range(0, n, 200):
        batch = {"rows": rows[start : start + 200]}
        assert (
            api.client.post("/v1/models/m/predictions", json=batch, headers=ingest).status_code
            == 201
        )
    first_half = [rows[0]["timestamp"], rows[n // 2]["timestamp"]]
    stored = api.client.post("/v1/models/m/reference", json={"window": first_half}, headers=admin)
    assert stored.status_code == 200, stored.text
    assert stored.json()["rows"] == n // 2
    assert (stored.json()["name"], stored.json()["version"]) == ("default", "")
    everything = api.client.post(
        "/v1/models/m/reference", json={"window": "all", "name": "everything"}, headers=admin
    ).json()
    assert everything["rows"] == n
    found = FeedbackLoop("m", tracking_db=api.context.loops.database_url).events()
    assert [e.kind for e in found] == ["reference_set", "reference_set"]
    assert {e.actor for e in found} == {"api:k"}  # the key that set them
    for body, field in (
        ({"window": "soon"}, "window"),
        ({"window": [first_half[1], first_half[0]]}, "window"),
        ({"window": ["someday", first_half[1]]}, "window start"),
        ({"window": "all", "name": ""}, "name"),
        ({"window": "all", "name": "a\u0000b"}, "name"),
        ({"window": "all", "features": [{"x": 1.0}]}, "features"),
        ({}, "window"),
    ):
        error = _error(api.client.post("/v1/models/m/reference", json=body, headers=admin), 422)
        assert error["field"] == field, body

    def drift(**params: object) -> dict:
        response = api.client.get(
            "/v1/models/m/drift", params={"window": "3h", **params}, headers=read
        )
        assert response.status_code == 200, response.text
        body: dict = response.json()
        return body

    plain = drift()
    assert plain["drifted_columns"] == ["x"] and plain["share_drifted"] == 0.5
    assert plain["drifted"] is True  # half the features drifted, at the default 0.5
    assert drift(share_threshold=1.0)["drifted"] is False
    chosen = drift(method=["x:wasserstein", "plan:psi"])
    assert chosen["columns"]["x"]["method"] == "wasserstein"
    assert chosen["columns"]["plan"]["method"] == "psi"
    assert drift(reference="everything")["columns"]["x"]["method"] == "calibrated"
    for params, field in (
        ({"share_threshold": 0}, "share_threshold"),
        ({"share_threshold": "nan"}, "share_threshold"),
        ({"method": "x"}, "method"),
        ({"method": ":psi"}, "method"),
        ({"method": "x:magic"}, "method"),
        ({"method": "x:chi_square"}, "method"),  # a test for categories, on a number
        ({"method": "plan:ks"}, "method"),
        ({"reference": "a\x00b"}, "reference"),
        ({"reference": "none-such", "method": "x:psi"}, "reference"),
    ):
        response = api.client.get("/v1/models/m/drift", params=params, headers=read)
        assert _error(response, 422)["field"] == field, params

    calibrated = api.client.get("/v1/models/m/estimate?window=1d", headers=read).json()
    assert calibrated["calibrated"] is True
    other = api.client.get(
        "/v1/models/m/estimate", params={"window": "1d", "reference": "none-such"}, headers=read
    ).json()
    assert other["calibrated"] is False

    assert set(get_args(Detector)) == set(DETECTORS)
    found = api.client.get("/v1/models/m/concept-drift?window=1d", headers=read)
    assert found.status_code == 200, found.text
    result = found.json()
    assert result["detector"] == "adwin" and result["n"] == n and result["change_points"]
    assert result["mean_error_after_last"] > result["mean_error_before_last"]
    events = api.client.get("/v1/models/m/events?kind=concept_drift", headers=read).json()
    assert events["events"] == []  # a read records nothing
    admin = api.key("admin", name="monitor")
    assert api.client.post("/v1/models/m/concept-drift?window=1d", headers=admin).json() == result
    events = api.client.get("/v1/models/m/events?kind=concept_drift", headers=read).json()
    assert [e["actor"] for e in events["events"]] == ["api:monitor"]
    ddm = api.client.get("/v1/models/m/concept-drift?window=1d&detector=ddm", headers=read)
    assert ddm.json()["detector"] == "ddm"
    error = _error(api.client.get("/v1/models/m/concept-drift?detector=magic", headers=read), 422)
    assert error["field"] == "detector"


def test_alias_history_watch_and_recorded_events(api: Api, tmp_path) -> None:
    read, ingest, admin = api.key("read"), api.key("ingest"), api.key("admin", name="release")
    url = api.context.loops.database_url
    loop = FeedbackLoop(
        "w", tracking_db=url, clock=api.clock, task="binary", artifact_root=str(tmp_path)
    )
    first = loop.register_model({"weights": [1]})
    second = loop.register_model({"weights": [2]})
    watch = "/v1/models/w/watch"
    assert api.client.post(watch, headers=admin).json() == {"verdict": None}  # nothing promoted

    def log(version: int, start: int, right: bool) -> None:
        rows = [
            {
                "prediction_id": f"v{version}-{i}",
                "timestamp": (api.clock.now() + timedelta(minutes=start + i)).isoformat(),
                "prediction": 1,
                "actual": 1 if right else 0,
                "version": str(version),
            }
            for i in range(60)
        ]
        response = api.client.post("/v1/models/w/predictions", json={"rows": rows}, headers=ingest)
        assert response.status_code == 201, response.text

    alias = "/v1/models/w/aliases/champion"
    api.client.put(alias, json={"version": first, "reason": "first"}, headers=admin)
    log(first, -70, right=True)  # the old champion's record, right every time
    api.clock.advance(timedelta(hours=1))
    api.client.post("/v1/models/w/promote", json={"version": second}, headers=admin)
    log(second, 1, right=False)  # the new one is wrong every time
    api.clock.advance(timedelta(hours=2))

    waiting = api.client.post(watch, json={"min_samples": 100}, headers=admin)
    assert waiting.status_code == 200, waiting.text
    verdict = waiting.json()["verdict"]
    assert (verdict["ready"], verdict["regressed"], verdict["n_new"]) == (False, False, 60)
    assert api.client.get("/v1/models/w/aliases", headers=read).json()["aliases"] == {
        "champion": second
    }
    judged = api.client.post(watch, json={"min_samples": 50, "alpha": 0.05}, headers=admin)
    verdict = judged.json()["verdict"]
    assert set(verdict) == {
        "regressed",
        "ready",
        "new_error",
        "previous_error",
        "promised_error",
        "p_value",
        "promise_p_value",
        "n_new",
        "n_previous",
        "reason",
    }
    assert (verdict["ready"], verdict["regressed"]) == (True, True)
    assert (verdict["new_error"], verdict["previous_error"]) == (1.0, 0.0)
    assert api.client.get("/v1/models/w/aliases", headers=read).json()["aliases"] == {
        "champion": first
    }  # rolled back
    assert api.client.post(watch, json={}, headers=admin).json() == {"verdict": None}  # judged

    api.client.put("/v1/models/w/aliases/challenger", json={"version": second}, headers=admin)
    history = api.client.get(f"{alias}/history", headers=read)
    assert history.status_code == 200, history.text
    moves = history.json()["history"]
    assert [(m["version"], m["previous_version"], m["actor"]) for m in moves] == [
        (first, None, "api:release"),
        (second, first, "api:release"),
        (first, second, "api:release"),  # the watch's rollback names the key that asked
    ]
    assert moves == jsonable(loop.alias_history("champion"))
    everything = api.client.get("/v1/models/w/alias-history", headers=read).json()["history"]
    assert everything == jsonable(loop.alias_history())
    assert [m["alias"] for m in everything] == ["champion"] * 3 + ["challenger"]
    never = api.client.get("/v1/models/w/aliases/nobody/history", headers=read)
    assert never.json() == {"history": []}

    note = {"kind": "manual_review", "reason": "checked by hand", "evidence": {"tickets": 3}}
    made = api.client.post("/v1/models/w/events", json={**note, "version": second}, headers=admin)
    assert made.status_code == 201, made.text
    (event,) = loop.events(kinds=["manual_review"])
    assert made.json() == {"id": event.id}
    assert (event.actor, event.reason, event.version) == ("api:release", "checked by hand", "2")
    assert event.evidence == {"tickets": 3}
    bare = api.client.post(
        "/v1/models/w/events", json={"kind": "note", "reason": ""}, headers=admin
    )
    assert loop.events(kinds=["note"])[0].id == bare.json()["id"]
    for body, field in (
        ({"kind": "", "reason": "r"}, "kind"),
        ({"kind": "k" * 61, "reason": "r"}, "kind"),
        ({"kind": "a\u0000b", "reason": "r"}, "kind"),
        ({"kind": "note"}, "reason"),
        ({"kind": "note", "reason": "r", "version": "v" * 101}, "version"),
        ({"kind": "note", "reason": "r", "actor": "someone else"}, "actor"),
    ):
        error = _error(api.client.post("/v1/models/w/events", json=body, headers=admin), 422)
        assert error["field"] == field, body
    for body, field in (
        ({"min_samples": 0}, "min_samples"),
        ({"alpha": 0}, "alpha"),
        ({"alpha": 1}, "alpha"),
        ({"auto_rollback": "maybe"}, "auto_rollback"),
    ):
        assert _error(api.client.post(watch, json=body, headers=admin), 422)["field"] == field
    infinite = api.client.post(
        watch, content=b'{"margin": 1e400}', headers={**admin, "Content-Type": "application/json"}
    )
    assert _error(infinite, 422)["field"] == "margin"


def test_prometheus_scrape(api: Api) -> None:
    ingest, read = api.key("ingest"), api.key("read")
    api.client.post("/v1/models/m/predictions", json={"rows": _rows(api.clock, 12)}, headers=ingest)
    outcomes = [{"prediction_id": f"p{i}", "actual": 1} for i in range(6)]
    api.client.post("/v1/models/m/outcomes", json={"rows": outcomes}, headers=ingest)
    api.client.get("/v1/models/m/metrics", headers=read)
    api.client.get("/v1/models/m/metrics?window=1d", headers=read)  # not the gauges' window

    scrape = api.client.get("/metrics", headers=read)
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    lines = scrape.text.splitlines()
    assert 'feedback_loop_predictions_ingested_total{model="m"} 12.0' in lines
    assert 'feedback_loop_outcomes_ingested_total{model="m"} 6.0' in lines
    assert 'feedback_loop_model_quality{metric="accuracy",model="m"} 0.5' in lines
    assert 'feedback_loop_model_label_coverage{model="m"} 0.5' in lines
    assert any(
        line.startswith("feedback_loop_http_request_duration_seconds_count{")
        and 'route="/v1/models/{model}/predictions"' in line
        and 'status="201"' in line
        for line in lines
    )
