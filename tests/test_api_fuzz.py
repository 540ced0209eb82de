"""The REST API fuzzed from its own OpenAPI document: whatever a caller sends, the answer is
never a 5xx. Bad input must come back as a 4xx that names the problem, not as a crash.

Requests go to the app in process (ASGI, SQLite, no auth so every route is reachable). Each
operation is tried twice over: with generated path values, which mostly name unknown models,
and with the model pinned to one that holds predictions, outcomes, a reference and registered
versions, so that generated queries and bodies reach the library behind the routes.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from feedback_loop import FeedbackLoop
from feedback_loop.loop import dispose_engines
from feedback_loop.server.app import create_app
from feedback_loop.server.settings import Settings

MODEL = "fuzz"
EXAMPLES = 25  # per operation and test: the whole file stays under a minute


def _seed(db_url: str, artifacts: Path) -> None:
    """A model with enough in it for every read to compute something."""
    now = datetime.now(UTC)
    rng = np.random.default_rng(0)
    n = 400
    loop = FeedbackLoop(MODEL, tracking_db=db_url, task="binary", artifact_root=str(artifacts))
    score = rng.random(n)
    loop.log_predictions(
        pd.DataFrame(
            {
                "prediction_id": [f"p{i}" for i in range(n)],
                "timestamp": [now - timedelta(hours=int(h)) for h in rng.integers(1, 20 * 24, n)],
                "prediction": [{"label": int(s > 0.5), "score": float(s)} for s in score],
                "actual": (rng.random(n) < score).astype(int),
                "version": rng.choice(["1", "2"], n),
                "tags": [{"region": r} for r in rng.choice(["eu", "us"], n)],
                "tenure": rng.integers(0, 50, n),
                "plan": rng.choice(["free", "pro"], n),
            }
        )
    )
    loop.set_reference(window=(now - timedelta(days=30), now - timedelta(days=7)))
    first = loop.register_model({"weights": [1]})
    loop.register_model({"weights": [2]})
    loop.promote(first)


# The schema is read from the app when the module loads (schemathesis parametrizes tests at
# collection time); the database lives in a folder of its own, removed at exit.
_TMP = Path(tempfile.mkdtemp(prefix="feedback-loop-fuzz-"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
DB_URL = f"sqlite:///{_TMP / 'fuzz.db'}"
APP = create_app(DB_URL, auth=False, settings=Settings(webhooks=False))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def stocked_model() -> Iterator[None]:
    _seed(DB_URL, _TMP / "artifacts")
    yield
    dispose_engines()


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


@schema.parametrize()
@FUZZ
def test_generated_requests_get_no_server_error(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=[not_a_server_error])


@schema.parametrize()
@FUZZ
def test_generated_requests_on_a_stocked_model_get_no_server_error(
    case: schemathesis.Case,
) -> None:
    if "model" in (case.path_parameters or {}):
        case.path_parameters["model"] = MODEL
    case.call_and_validate(checks=[not_a_server_error])


# Requests the fuzzer has answered with a 500 before; each must stay a 4xx.
FOUND = [
    ("GET", "/v1/models/fuzz/metrics?window=99999999999d", None),
    ("GET", "/v1/models/fuzz/should-retrain?window=99999999999d", None),
    ("GET", "/v1/models/fuzz/drift?correction=", None),
    ("POST", "/v1/models/fuzz/prediction", {"prediction": 1, "timestamp": 1.8e302}),
    ("POST", "/v1/models/fuzz/predictions", {"rows": [{"prediction": 1, "timestamp": 9.3e12}]}),
    ("POST", "/v1/models/fuzz/promote", {"version": 2**63}),
    ("PUT", "/v1/models/fuzz/aliases/x", {"version": 2**63}),
    ("DELETE", f"/v1/keys/{2**63}", None),
]


async def _send(method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
    transport = httpx.ASGITransport(app=APP, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.request(method, path, json=body)


@pytest.mark.parametrize(("method", "path", "body"), FOUND, ids=[f"{m} {p}" for m, p, _ in FOUND])
def test_inputs_that_once_crashed_are_refused(
    method: str, path: str, body: dict[str, Any] | None
) -> None:
    answer = asyncio.run(_send(method, path, body))
    assert 400 <= answer.status_code < 500, answer.text
    assert set(answer.json()["error"]) == {"type", "message", "field", "row"}
