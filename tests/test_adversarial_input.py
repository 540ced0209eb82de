"""Bad input that used to be stored and then broke later reads: a regression suite.

Each attack is tried on every ingest path that can carry it (a single row, a list of dicts, a
DataFrame, an Arrow table; predictions and outcomes; the library, a real server process and the
CLI) on SQLite and on PostgreSQL. Every one must be refused before anything is written, with an
error naming the field (and the row, in a batch), and leave the model readable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from servers import create_key, served_database
from sklearn.metrics import log_loss
from sqlalchemy import text
from typer.testing import CliRunner

from feedback_loop import FeedbackLoop, ManualClock, ValidationError
from feedback_loop.cli import app
from feedback_loop.core.limits import MAX_CLASSES, TIME_RANGE_MESSAGE

NOW = datetime(2024, 10, 18, 12, 0, tzinfo=UTC)
runner = CliRunner()


def loop_on(db_url: str, name: str = "m", **kwargs: Any) -> FeedbackLoop:
    return FeedbackLoop(name, tracking_db=db_url, clock=ManualClock(NOW), **kwargs)


def stored_rows(loop: FeedbackLoop, table: str = "predictions") -> int:
    with loop.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def model_names(loop: FeedbackLoop) -> list[str]:
    with loop.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT name FROM models"))]


def frame_of(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A DataFrame of the rows (Python strings kept as objects where Arrow cannot hold them)."""
    try:
        return pd.DataFrame(rows)
    except UnicodeEncodeError:
        return pd.DataFrame(rows, dtype=object)


# The shapes a batch may arrive in: rows as given, as a DataFrame, as an Arrow table.
FORMS: dict[str, Callable[[list[dict[str, Any]]], Any]] = {
    "dicts": lambda rows: rows,
    "frame": frame_of,
    "arrow": lambda rows: pa.Table.from_pandas(pd.DataFrame(rows)),
}


def refused(call: Callable[[], Any]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        call()
    return caught.value


# -- 6: times outside the stored range --------------------------------------------------------

OUT_OF_RANGE = ["2600-01-01T00:00:00Z", 2e10, "1960-01-01T00:00:00Z"]


@pytest.mark.parametrize("form", FORMS)
def test_batch_times_outside_the_range_are_refused(db_url: str, form: str) -> None:
    loop = loop_on(db_url, task="binary")
    for when in OUT_OF_RANGE:
        rows = [
            {"prediction_id": "ok", "prediction": 1, "timestamp": "2024-01-01T00:00:00Z"},
            {"prediction_id": "late", "prediction": 1, "timestamp": when},
        ]
        if form != "dicts" and not isinstance(when, str):
            rows[0]["timestamp"] = 1.7e9  # a column of numbers, as a DataFrame would hold it
        error = refused(lambda rows=rows: loop.log_predictions(FORMS[form](rows)))
        assert (error.field, error.row, error.message) == ("timestamp", 1, TIME_RANGE_MESSAGE)
        outcomes = [{"prediction_id": "x", "actual": 1, "timestamp": r["timestamp"]} for r in rows]
        error = refused(lambda outcomes=outcomes: loop.log_outcomes(FORMS[form](outcomes)))
        assert (error.field, error.row, error.message) == ("timestamp", 1, TIME_RANGE_MESSAGE)
    assert stored_rows(loop) == 0 and stored_rows(loop, "outcomes") == 0


def test_single_times_outside_the_range_are_refused(db_url: str) -> None:
    loop = loop_on(db_url, task="binary")
    for when in [*OUT_OF_RANGE, datetime(2600, 1, 1, tzinfo=UTC), 1e300]:
        error = refused(lambda when=when: loop.log_prediction("p", prediction=1, timestamp=when))
        assert (error.field, error.row, error.message) == ("timestamp", None, TIME_RANGE_MESSAGE)
        error = refused(lambda when=when: loop.log_outcome("p", 1, timestamp=when))
        assert (error.field, error.row, error.message) == ("timestamp", None, TIME_RANGE_MESSAGE)
    assert stored_rows(loop) == 0 and stored_rows(loop, "outcomes") == 0
    # the edges of the range are stored and read back as given
    loop.log_predictions([{"prediction_id": "first", "prediction": 1, "timestamp": 0}])
    loop.log_prediction("last", prediction=1, timestamp="2262-04-10T23:59:59Z")
    assert loop.get_prediction("last")["timestamp"] == datetime(2262, 4, 10, 23, 59, 59, tzinfo=UTC)


def each_row_is_refused(
    loop: FeedbackLoop, form: str, cases: list[tuple[str, dict[str, Any]]]
) -> None:
    """Log each case's bad row in ``form`` (``"single"``, or second in a batch of that form after
    a good row): each must be refused naming the case's field, and in a batch row 1."""
    for field, extra in cases:
        row = {"prediction_id": "bad", "prediction": "a", **extra}
        if form == "single":
            error = refused(lambda row=row: loop.log_prediction(**row))
        else:
            batch = [{"prediction_id": "fine", "prediction": "a"}, row]
            error = refused(lambda batch=batch: loop.log_predictions(FORMS[form](batch)))
            assert error.row == 1, (field, error)
        assert error.field == field, (field, error)


# -- 7: length limits ---------------------------------------------------------------------------

TOO_LONG: list[tuple[str, dict[str, Any]]] = [
    ("version", {"version": "v" * 2_200_000}),
    ("version", {"version": "v" * 101}),
    ("prediction_id", {"prediction_id": "p" * 201}),
    ("tags", {"tags": {"k" * 101: "a"}}),
    ("tags", {"tags": {"region": "r" * 201}}),
    ("features", {"features": {"f" * 201: 1.0}}),
    ("prediction", {"prediction": "c" * 201}),
]


@pytest.mark.parametrize("form", ["single", *FORMS])
def test_length_limits_hold_before_writing(db_url: str, form: str) -> None:
    loop = loop_on(db_url, task="multiclass")
    loop.log_prediction("good", prediction="a", actual="a", version="1", tags={"region": "eu"})
    each_row_is_refused(loop, form, TOO_LONG)
    error = refused(lambda: loop.log_outcome("good", "x" * 201))
    assert error.field == "actual"
    if form != "single":  # an actual logged with its prediction: the row of the batch
        batch = [{"prediction": "a"}, {"prediction": "a", "actual": "x" * 201}]
        error = refused(lambda: loop.log_predictions(FORMS[form](batch)))
        assert (error.field, error.row) == ("actual", 1)
    assert stored_rows(loop) == 1
    assert loop.get_metrics(window="all")["accuracy"] == 1.0
    assert loop.get_metrics(window="all", version="1")["predictions"] == 1


def test_long_feature_columns_are_refused(db_url: str) -> None:
    loop = loop_on(db_url, task="binary")
    frame = pd.DataFrame({"prediction": [1, 0], "x" * 201: ["a", "b"]})
    assert refused(lambda: loop.log_predictions(frame)).field == "features"
    assert stored_rows(loop) == 0


# -- 8: classes per model and the stored size of probabilities ---------------------------------


def _proba_bytes(loop: FeedbackLoop) -> int:
    with loop.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT COALESCE(SUM(LENGTH(proba)), 0) FROM prediction_payloads")
            ).scalar_one()
        )


def test_a_model_has_a_bounded_number_of_classes(db_url: str) -> None:
    loop = loop_on(db_url)
    wide = {f"c{i}": 1 / 50_000 for i in range(50_000)}
    error = refused(lambda: loop.log_predictions([{"prediction": {"probabilities": wide}}]))
    assert error.field == "prediction" and str(MAX_CLASSES) in error.message
    assert stored_rows(loop) == 0 and model_names(loop) == []
    # up to the limit is fine; one class more, in a later call, is refused
    many = [{"prediction": f"c{i}"} for i in range(MAX_CLASSES)]
    assert loop.log_predictions(many).inserted == MAX_CLASSES
    error = refused(lambda: loop.log_prediction(prediction="one-too-many"))
    assert error.field == "prediction" and str(MAX_CLASSES) in error.message
    error = refused(lambda: loop.log_outcomes([{"prediction_id": "x", "actual": "new"}]))
    assert error.field == "actual"


def test_stored_probabilities_follow_what_each_row_gave(db_url: str) -> None:
    loop = loop_on(db_url)
    wide = {f"c{i}": 1 / 500 for i in range(500)}
    loop.log_predictions([{"prediction_id": "wide", "prediction": {"probabilities": wide}}])
    small = [
        {"prediction_id": f"p{i}", "prediction": {"probabilities": {"c0": 0.25, "c1": 0.75}}}
        for i in range(200)
    ]
    loop.log_predictions(small)
    # 12 bytes a class given (before: 8 bytes times every class of the model, for every row)
    assert _proba_bytes(loop) <= 500 * 12 + 200 * (2 * 12) + 201


def test_probability_metrics_match_sklearn_with_rows_of_different_classes(db_url: str) -> None:
    rng = np.random.default_rng(3)
    classes = ["ant", "bee", "cat", "dog"]
    loop = loop_on(db_url, task="multiclass")
    rows, truth, matrix = [], [], []
    for i in range(120):
        given = sorted(rng.choice(4, size=int(rng.integers(2, 5)), replace=False).tolist())
        p = rng.dirichlet(np.ones(len(given)))
        proba = {classes[c]: float(v) for c, v in zip(given, p, strict=True)}
        actual = classes[int(rng.choice(given))]
        rows.append({"prediction_id": f"r{i}", "prediction": {"probabilities": proba}})
        rows[-1]["actual"] = actual
        truth.append(actual)
        dense = np.zeros(4)
        dense[given] = p
        matrix.append(dense)
    loop.log_predictions(rows)
    metrics = loop.get_metrics(window="all")
    # the model's codes follow first appearance; reorder the sklearn side to match
    expected = log_loss(truth, np.array(matrix), labels=classes)
    assert metrics["log_loss"] == pytest.approx(expected, rel=1e-9)


def test_probabilities_in_the_earlier_dense_layout_still_read() -> None:
    from feedback_loop.store.predictions import unpack_proba

    dense = np.array([0.1, 0.0, 0.9]).tobytes()
    assert unpack_proba(dense, 4).tolist() == [0.1, 0.0, 0.9, 0.0]
    assert unpack_proba(dense, 2).tolist() == [0.1, 0.0]


# -- 9: NUL and lone surrogates ---------------------------------------------------------------

BAD_TEXT: list[tuple[str, dict[str, Any]]] = [
    ("tags", {"tags": {"region": "\ud800"}}),
    ("tags", {"tags": {"region": "eu\x00"}}),
    ("tags", {"tags": {"\udfff": "eu"}}),
    ("features", {"features": {"x": "\ud800"}}),
    ("features", {"features": {"x\x00": 1}}),
    ("prediction", {"prediction": "\ud800"}),
    ("prediction", {"prediction": "a\x00"}),
    ("version", {"version": "\ud800"}),
    ("prediction_id", {"prediction_id": "p\ud800"}),
    ("prediction_id", {"prediction_id": "p\x00"}),
]


@pytest.mark.parametrize("form", ["single", "dicts", "frame"])
def test_nul_and_lone_surrogates_are_refused(db_url: str, form: str) -> None:
    loop = loop_on(db_url, task="multiclass")
    loop.log_prediction("good", prediction="a", actual="a", tags={"region": "eu"})
    each_row_is_refused(loop, form, BAD_TEXT)
    for actual in ("\ud800", "b\x00"):
        assert refused(lambda actual=actual: loop.log_outcome("good", actual)).field == "actual"
    # string feature columns (stored as codes) are checked too
    frame = pd.DataFrame({"prediction": ["a"], "city": ["x\x00"]}, dtype=object)
    assert refused(lambda: loop.log_predictions(frame)).field == "city"
    assert stored_rows(loop) == 1
    assert loop.get_metrics(window="all", segment={"region": "eu"})["accuracy"] == 1.0
    assert loop.segments(window="all", by=["region"], min_support=1)[0]["segment"] == {
        "region": "eu"
    }
    assert loop.get_prediction("good")["tags"] == {"region": "eu"}


def test_astral_characters_and_escaped_backslashes_are_kept(db_url: str) -> None:
    loop = loop_on(db_url, task="multiclass")
    tags = {"region": "\U0001f600 \\ud800"}  # an emoji and the six characters \ud800
    loop.log_prediction("ok", prediction="\U0001f600", tags=tags, actual="\U0001f600")
    assert loop.get_prediction("ok")["tags"] == tags
    assert loop.get_metrics(window="all", segment={"region": tags["region"]})["accuracy"] == 1.0


# -- 10: ids, and a refused first request ------------------------------------------------------


@pytest.mark.parametrize("bad_id", [True, 1.5, 2.0, [1], {"a": 1}])
def test_ids_that_are_not_strings_or_integers_are_refused(db_url: str, bad_id: Any) -> None:
    loop = loop_on(db_url, task="binary")
    assert refused(lambda: loop.log_prediction(bad_id, prediction=1)).field == "prediction_id"
    rows = [{"prediction_id": "a", "prediction": 1}, {"prediction_id": bad_id, "prediction": 1}]
    error = refused(lambda: loop.log_predictions(rows))
    assert (error.field, error.row) == ("prediction_id", 1)
    outcomes = [{"prediction_id": bad_id, "actual": 1}]
    assert refused(lambda: loop.log_outcomes(outcomes)).field == "prediction_id"
    assert stored_rows(loop) == 0
    assert loop.log_prediction(7, prediction=1).prediction_ids == ["7"]  # integers: their digits


@pytest.mark.parametrize("form", ["single", "dicts", "outcomes"])
def test_a_refused_first_request_creates_no_model_nor_task(db_url: str, form: str) -> None:
    loop = loop_on(db_url, "fresh")
    bad_time = "2600-01-01T00:00:00Z"
    if form == "single":
        refused(lambda: loop.log_prediction("a", prediction=1, timestamp=bad_time))
    elif form == "dicts":
        rows = [
            {"prediction_id": "a", "prediction": 1},
            {"prediction_id": "b", "prediction": 0, "timestamp": bad_time},
        ]
        refused(lambda: loop.log_predictions(rows))
    else:
        refused(
            lambda: loop.log_outcomes([{"prediction_id": "a", "actual": 1, "timestamp": bad_time}])
        )
    # a refusal inside the write (a binary model given a third label) creates nothing either
    three = [{"prediction": 0}, {"prediction": 1}, {"prediction": 2}]
    refused(lambda: loop_on(db_url, "fresh").log_predictions(three))
    assert model_names(loop) == []
    # the task is still free: the first accepted rows settle it
    again = loop_on(db_url, "fresh")
    again.log_predictions([{"prediction_id": "r", "prediction": 2.5, "actual": 2.0}])
    assert again.task == "regression"
    assert loop_on(db_url, "fresh").get_metrics(window="all")["mae"] == 0.5


def test_concurrent_first_singles_settle_the_model_once(db_url: str) -> None:
    import asyncio

    loop = loop_on(db_url, "first")

    async def many() -> list[Any]:
        return await asyncio.gather(
            *(loop.log_prediction_async(f"p{i}", prediction=i % 2) for i in range(20))
        )

    assert sum(r.inserted for r in asyncio.run(many())) == 20
    assert loop.task == "binary" and model_names(loop) == ["first"]
    loop.log_prediction("after", prediction=1)  # the grouped path, once settled
    assert stored_rows(loop) == 21


# -- the same attacks through a real server process --------------------------------------------


class Server:
    def __init__(self, url: str, key: str):
        self.url = url
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def post(self, path: str, body: Any) -> httpx.Response:
        raw = body if isinstance(body, str) else json.dumps(body)
        return httpx.post(f"{self.url}{path}", content=raw, headers=self.headers, timeout=60)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", params=params, headers=self.headers, timeout=60)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"adversarial-{request.param}")
    with served_database(request.param, tmp) as process:
        yield Server(process.url, create_key(process.db_url, "attacker", "ingest", "read"))


def error_of(response: httpx.Response) -> tuple[int, str | None, int | None, str]:
    body = response.json()["error"]
    return response.status_code, body["field"], body["row"], body["message"]


def test_server_refuses_times_outside_the_range(server: Server) -> None:
    base = "/v1/models/times"
    for when in ["2600-01-01T00:00:00Z", 2e10, "1960-01-01T00:00:00Z", -5]:
        single = server.post(f"{base}/prediction", {"prediction": 1, "timestamp": when})
        assert error_of(single) == (422, "timestamp", None, TIME_RANGE_MESSAGE)
        rows = [{"prediction": 1}, {"prediction": 1, "timestamp": when}]
        batch = server.post(f"{base}/predictions", {"rows": rows})
        assert error_of(batch) == (422, "timestamp", 1, TIME_RANGE_MESSAGE)
        outcomes = [
            {"prediction_id": "a", "actual": 1},
            {"prediction_id": "b", "actual": 1, "timestamp": when},
        ]
        batch = server.post(f"{base}/outcomes", {"rows": outcomes})
        assert error_of(batch) == (422, "timestamp", 1, TIME_RANGE_MESSAGE)
    assert "times" not in [m["name"] for m in server.get("/v1/models").json()["models"]]


def test_server_refuses_long_and_unreadable_text(server: Server) -> None:
    base = "/v1/models/texts"
    good = {"prediction_id": "good", "prediction": 1, "actual": 1, "tags": {"region": "eu"}}
    assert server.post(f"{base}/prediction", good).status_code == 201
    attacks = [
        ("version", {"version": "v" * 200_000}),
        ("tags", {"tags": {"region": "r" * 201}}),
        ("tags", '{"region": "\\ud800"}'),
        ("tags", '{"region": "eu\\u0000"}'),
        ("features", '{"x": "\\udc00"}'),
    ]
    for field, extra in attacks:
        if isinstance(extra, str):  # raw JSON, escapes as an attacker sends them
            body = (
                '{"rows": [{"prediction": 1}, {"prediction": 1, "' + field + '": ' + extra + "}]}"
            )
        else:
            body = json.dumps({"rows": [{"prediction": 1}, {"prediction": 1, **extra}]})
        status, got_field, row, message = error_of(server.post(f"{base}/predictions", body))
        assert (status, got_field, row) == (422, field, 1), message
        assert "database" not in message
    metrics = server.get(f"{base}/metrics", window="all", segment="region:eu")
    assert metrics.status_code == 200 and metrics.json()["accuracy"] == 1.0
    segments = server.get(f"{base}/segments", window="all", by="region", min_support=1)
    assert segments.status_code == 200
    assert server.get(f"{base}/predictions/good").json()["tags"] == {"region": "eu"}


def test_server_refuses_ids_that_are_not_strings_or_integers(server: Server) -> None:
    base = "/v1/models/ids"
    for bad in [True, 1.5, 3.0]:
        single = server.post(f"{base}/prediction", {"prediction_id": bad, "prediction": 1})
        assert error_of(single)[:3] == (422, "prediction_id", None)
        batch = server.post(
            f"{base}/predictions", {"rows": [{"prediction_id": bad, "prediction": 1}]}
        )
        assert error_of(batch)[:3] == (422, "prediction_id", 0)
        outcome = server.post(f"{base}/outcome", {"prediction_id": bad, "actual": 1})
        assert error_of(outcome)[:2] == (422, "prediction_id")
    assert (
        server.post(
            f"{base}/prediction", {"prediction_id": True, "prediction": 1, "version": True}
        ).status_code
        == 422
    )
    # refused first requests created nothing: the model is unknown and its task still free
    assert "ids" not in [m["name"] for m in server.get("/v1/models").json()["models"]]
    ok = server.post(f"{base}/prediction", {"prediction_id": 12, "prediction": 2.5})
    assert ok.status_code == 201 and ok.json()["prediction_ids"] == ["12"]
    listed = {m["name"]: m["task"] for m in server.get("/v1/models").json()["models"]}
    assert listed["ids"] == "regression"


def test_server_bounds_classes(server: Server) -> None:
    wide = {f"c{i}": 1 / 5000 for i in range(5000)}
    response = server.post("/v1/models/wide/prediction", {"prediction": {"probabilities": wide}})
    status, field, _, message = error_of(response)
    assert (status, field) == (422, "prediction") and str(MAX_CLASSES) in message


# -- 16: structured fields in CSV files, through the CLI -----------------------------------------


def _cli(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    return result


def test_csv_json_cells_carry_predictions_tags_and_features(db_url: str, tmp_path: Path) -> None:
    start = datetime(2024, 10, 17, tzinfo=UTC)
    lines = ["prediction_id,timestamp,prediction,tags,features,version"]
    for i in range(8):
        prediction = json.dumps({"label": i % 2, "score": 0.9 if i % 2 else 0.1})
        tags = json.dumps({"region": "eu" if i < 4 else "us"})
        features = json.dumps({"tenure": i, "plan": "pro"})
        when = (start + timedelta(hours=i)).isoformat()
        cells = [f"p{i}", when, prediction, tags, features, "3"]
        lines.append(",".join('"' + c.replace('"', '""') + '"' for c in cells))
    predictions = tmp_path / "predictions.csv"
    predictions.write_text("\n".join(lines) + "\n")
    outcomes = tmp_path / "outcomes.csv"
    rows = [f'"p{i}","{{""label"": {i % 2 if i != 7 else 0}}}"' for i in range(8)]
    outcomes.write_text("prediction_id,actual\n" + "\n".join(rows) + "\n")

    result = _cli("log", "predictions", str(predictions), "-m", "csv", "--db", db_url)
    assert result.exit_code == 0, result.output
    result = _cli("log", "outcomes", str(outcomes), "-m", "csv", "--db", db_url)
    assert result.exit_code == 0, result.output

    loop = FeedbackLoop("csv", tracking_db=db_url)
    assert loop.task == "binary"
    metrics = loop.get_metrics(window="all")
    assert metrics["accuracy"] == 7 / 8
    assert metrics["roc_auc"] is not None
    assert loop.get_metrics(window="all", segment={"region": "eu"})["accuracy"] == 1.0
    assert loop.get_prediction("p5")["features"] == {"plan": "pro", "tenure": 5}
    assert loop.get_prediction("p5")["prediction"] == {"label": 1, "score": 0.9}


def test_csv_flat_columns_carry_predictions_tags_and_features(db_url: str, tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "features.zeta": [1.5, 2.5, None, 4.5],
            "prediction.label": ["cat", "dog", "cat", "dog"],
            "order_id": ["o1", "o2", "o3", "o4"],
            "tags.region": ["eu", "eu", "us", None],
            "features.alpha": ["a", "b", "a", "b"],
            "prediction.confidence": [0.8, 0.7, 0.6, 0.9],
            "tags.tier": [1, 2, None, 2],
        }
    )
    path = tmp_path / "flat.csv"
    frame.to_csv(path, index=False)
    result = _cli("log", "predictions", str(path), "-m", "flat", "--db", db_url)
    assert result.exit_code == 0, result.output
    outcomes = tmp_path / "outcomes.csv"
    pd.DataFrame(
        {"order_id": ["o1", "o2", "o3", "o4"], "actual": ["cat", "cat", "cat", "dog"]}
    ).to_csv(outcomes, index=False)
    result = _cli("log", "outcomes", str(outcomes), "-m", "flat", "--db", db_url)
    assert result.exit_code == 0, result.output

    loop = FeedbackLoop("flat", tracking_db=db_url)
    assert loop.task == "multiclass"
    assert loop.get_metrics(window="all")["accuracy"] == 0.75
    first = loop.get_prediction("o1")
    assert first["prediction"] == {"label": "cat", "confidence": 0.8}
    assert first["tags"] == {"region": "eu", "tier": 1}
    assert first["features"] == {"alpha": "a", "zeta": 1.5}
    assert loop.get_prediction("o4")["tags"] == {"tier": 2}
    assert loop.get_metrics(window="all", segment={"region": "eu"})["accuracy"] == 0.5


def test_csv_structured_fields_that_do_not_read_are_refused(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text('prediction,tags\n1,"{""region"": ""eu""}"\n0,"not json"\n')
    result = _cli("log", "predictions", str(path), "-m", "bad", "--db", db_url)
    assert result.exit_code == 1
    assert "row 1" in result.output and "tags" in result.output
    path.write_text('prediction,features,features.x\n1,"{}",2\n')
    result = _cli("log", "predictions", str(path), "-m", "bad", "--db", db_url)
    assert result.exit_code == 1 and "features" in result.output
    path.write_text('prediction,tags,tags.region\n1,"{""region"": ""eu""}",us\n0,,eu\n')
    result = _cli("log", "predictions", str(path), "-m", "bad", "--db", db_url)
    assert result.exit_code == 1 and "row 0" in result.output and "tags.region" in result.output


def test_csv_through_a_subprocess(db_url: str, tmp_path: Path) -> None:
    """The installed command, as the README runs it."""
    import subprocess

    path = tmp_path / "p.csv"
    path.write_text(
        "prediction_id,prediction,tags.region\n"
        'a,"{""label"": 1, ""score"": 0.9}",eu\n'
        'b,"{""label"": 0, ""score"": 0.2}",us\n'
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "feedback_loop.cli",
            "log",
            "predictions",
            str(path),
            "-m",
            "sub",
            "--db",
            db_url,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    loop = FeedbackLoop("sub", tracking_db=db_url)
    assert loop.task == "binary"
    assert loop.get_prediction("a")["tags"] == {"region": "eu"}
