"""Exporting the log as Parquet: every logged row and value comes back through
``pyarrow.dataset``, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from feedback_loop import FeedbackLoop
from feedback_loop.cli import app
from feedback_loop.errors import UnknownModelError, ValidationError

CITIES = ["rome", "oslo", "lima\nnorth", "kyiv"]


def _logged(clock: Any, task: str, n: int, seed: int = 0) -> pd.DataFrame:
    """Rows as a user logs them: unsorted feature names, gaps, a boolean feature, tags,
    versions (some none), latencies (some none), odd ids, spread over three days."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    x[rng.random(n) < 0.1] = np.nan
    score = 1 / (1 + np.exp(-np.nan_to_num(x)))
    if task == "binary":
        prediction: list[Any] = [{"label": int(s >= 0.5), "score": float(s)} for s in score]
    elif task == "multiclass":
        prediction = [["cat", "dog", "émeu"][int(s * 2.99)] for s in score]
    else:
        prediction = (score * 10).tolist()
    start = clock.now() - timedelta(days=3)
    return pd.DataFrame(
        {
            "zeta": rng.exponential(1.0, n),
            "x": x,
            "city": [None if i % 11 == 0 else CITIES[i % 4] for i in range(n)],
            "alpha": rng.integers(0, 5, n),
            "member": [bool(i % 3) for i in range(n)],
            "prediction_id": [f"id-{i}" + ("\n→" if i % 13 == 0 else "") for i in range(n)],
            "timestamp": [start + timedelta(seconds=int(s)) for s in rng.uniform(0, 3 * 86400, n)],
            "prediction": prediction,
            "version": [None if i % 5 == 0 else f"v{i % 2}" for i in range(n)],
            "latency_ms": [None if i % 7 == 0 else float(i) / 3 for i in range(n)],
            "tags": [{"shop": f"s{i % 3}", "tier": "gold" if i % 2 else "free"} for i in range(n)],
        }
    )


def _actuals(task: str, rows: pd.DataFrame) -> pd.DataFrame:
    """Outcomes for two rows in three (a thumbs down for some classification rows)."""
    picked = rows.iloc[[i for i in range(len(rows)) if i % 3]]
    if task == "regression":
        actual: list[Any] = [float(v) + 0.5 for v in picked["prediction"]]
    elif task == "binary":
        actual = [i % 2 for i in range(len(picked))]
    else:
        actual = [["cat", "dog", "émeu"][i % 3] for i in range(len(picked))]
    frame = pd.DataFrame({"prediction_id": picked["prediction_id"].tolist(), "actual": actual})
    return frame


def _read(out: Path) -> pd.DataFrame:
    table = ds.dataset(out, partitioning="hive", format="parquet").to_table()
    return table.to_pandas().set_index("prediction_id").sort_index()


def _same(a: Any, b: Any) -> bool:
    missing = [v is None or (isinstance(v, float) and math.isnan(v)) for v in (a, b)]
    if any(missing):
        return all(missing)
    return bool(a == b)


def _check(exported: pd.DataFrame, logged: pd.DataFrame, outcomes: pd.DataFrame, task: str):
    """Every row of ``logged`` (and nothing else) is in ``exported``, value by value."""
    assert sorted(exported.index) == sorted(logged["prediction_id"])
    actual = dict(zip(outcomes["prediction_id"], outcomes["actual"], strict=True))
    for row in logged.itertuples(index=False):
        got = exported.loc[row.prediction_id]
        assert got["model"] == "m" and got["date"] == row.timestamp.strftime("%Y-%m-%d")
        assert got["timestamp"].to_pydatetime() == row.timestamp
        assert _same(got["version"], row.version)
        assert _same(got["latency_ms"], row.latency_ms)
        if task == "binary":
            assert got["prediction"] == row.prediction["label"]
            assert got["score"] == pytest.approx(row.prediction["score"], abs=0)
        else:
            assert got["prediction"] == row.prediction
        expected = actual.get(row.prediction_id)
        assert _same(got["actual"], expected)
        if task != "regression":
            assert _same(
                got["correct"], None if expected is None else got["prediction"] == expected
            )
        assert (got["labeled_at"] is pd.NaT) == (expected is None)
        for name in ("zeta", "x", "alpha"):
            assert _same(got[f"feature.{name}"], getattr(row, name))
        assert _same(got["feature.city"], row.city)
        assert got["feature.member"] == row.member
        assert got["tag.shop"] == row.tags["shop"] and got["tag.tier"] == row.tags["tier"]


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_an_export_reads_back_row_for_row(db_url, clock, tmp_path, task) -> None:
    loop = FeedbackLoop("m", tracking_db=db_url, clock=clock, task=task)
    logged = _logged(clock, task, 600)
    loop.log_predictions(logged)
    outcomes = _actuals(task, logged)
    loop.log_outcomes(outcomes)
    seen: list[tuple[int, int]] = []
    result = loop.export(
        tmp_path / "lake", chunk_rows=70, progress=lambda d, t: seen.append((d, t))
    )
    assert result.rows == 600 and len(result.files) > 4  # many chunks, over four days
    assert seen[-1] == (600, 600) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    files = sorted((tmp_path / "lake").rglob("*.parquet"))
    assert files == sorted(result.files)
    assert all(f.parent.parent.name == "model=m" for f in files)
    assert len({pq.read_schema(f) for f in files}) == 1
    _check(_read(tmp_path / "lake"), logged, outcomes, task)


def test_thumbs_down_is_wrong_without_an_actual(db_url, clock, tmp_path) -> None:
    loop = FeedbackLoop("m", tracking_db=db_url, clock=clock, task="multiclass")
    loop.log_prediction("a", prediction="cat", timestamp=clock.now() - timedelta(hours=2))
    loop.log_prediction("b", prediction="dog", timestamp=clock.now() - timedelta(hours=2))
    loop.log_outcome("a", feedback="down")
    loop.log_outcome("b", feedback="up")
    loop.export(tmp_path / "lake")
    rows = ds.dataset(tmp_path / "lake", partitioning="hive").to_table().to_pylist()
    got = {r["prediction_id"]: (r["correct"], r["actual"]) for r in rows}
    assert got == {"a": (False, None), "b": (True, "dog")}


def test_since_and_until_pick_prediction_times(db_url, clock, tmp_path) -> None:
    loop = FeedbackLoop("m", tracking_db=db_url, clock=clock, task="binary")
    logged = _logged(clock, "binary", 300, seed=1)
    loop.log_predictions(logged)
    since = clock.now() - timedelta(days=2, minutes=17)
    until = clock.now() - timedelta(hours=20, minutes=3)
    result = loop.export(tmp_path / "lake", since=since, until=until.isoformat(), chunk_rows=40)
    inside = logged[(logged["timestamp"] >= since) & (logged["timestamp"] < until)]
    assert result.rows == len(inside) > 0
    assert sorted(_read(tmp_path / "lake").index) == sorted(inside["prediction_id"])


def test_features_that_change_over_time_share_one_schema(db_url, clock, tmp_path) -> None:
    loop = FeedbackLoop("m", tracking_db=db_url, clock=clock, task="binary")
    old = clock.now() - timedelta(days=2)
    loop.log_predictions(
        [
            {"prediction_id": f"o{i}", "prediction": 1, "timestamp": old, "features": {"a": i}}
            for i in range(5)
        ]
    )
    loop.log_predictions(
        [
            {"prediction_id": f"n{i}", "prediction": 0, "features": {"b": f"t{i}", "a": 0.5}}
            for i in range(5)
        ]
    )
    result = loop.export(tmp_path / "lake")
    assert len(result.files) == 2
    schemas = {pq.read_schema(f) for f in result.files}
    assert len(schemas) == 1
    rows = ds.dataset(tmp_path / "lake", partitioning="hive").to_table().to_pylist()
    got = {r["prediction_id"]: (r["feature.a"], r["feature.b"]) for r in rows}
    assert got == {
        **{f"o{i}": (float(i), None) for i in range(5)},
        **{f"n{i}": (0.5, f"t{i}") for i in range(5)},
    }


def test_a_model_without_rows_writes_nothing(db_url, clock, tmp_path) -> None:
    loop = FeedbackLoop("quiet", tracking_db=db_url, clock=clock, task="binary")
    loop.log_outcome("never-predicted", 1)  # the model exists, with no prediction
    result = loop.export(tmp_path / "lake")
    assert (result.rows, result.files, result.dates) == (0, [], [])
    assert not list((tmp_path).rglob("*.parquet"))
    with pytest.raises(UnknownModelError):
        FeedbackLoop("nobody", tracking_db=db_url, clock=clock).export(tmp_path / "lake")


def test_bad_arguments_name_their_field(db_url, clock, tmp_path) -> None:
    loop = FeedbackLoop("m", tracking_db=db_url, clock=clock, task="binary")
    loop.log_prediction("a", prediction=1, timestamp=clock.now() - timedelta(hours=1))
    bad: list[tuple[dict[str, Any], str]] = [
        ({"since": "last tuesday"}, "since"),
        ({"until": "soon"}, "until"),
        ({"since": clock.now(), "until": clock.now() - timedelta(days=1)}, "until"),
        ({"chunk_rows": 0}, "chunk_rows"),
        ({"chunk_rows": 2.5}, "chunk_rows"),
    ]
    for options, field in bad:
        with pytest.raises(ValidationError) as caught:
            loop.export(tmp_path / "lake", **options)
        assert caught.value.field == field
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValidationError) as caught:
        loop.export(tmp_path / "file")
    assert caught.value.field == "out"
    assert not list(tmp_path.rglob("*.parquet"))  # nothing written by a refused export


def test_an_exported_day_is_replaced_only_when_asked(db_url, clock, tmp_path) -> None:
    loop = FeedbackLoop("m", tracking_db=db_url, clock=clock, task="binary")
    loop.log_prediction("a", prediction=1, timestamp=clock.now() - timedelta(hours=1))
    loop.export(tmp_path / "lake")
    loop.log_prediction("b", prediction=0, timestamp=clock.now() - timedelta(hours=1))
    with pytest.raises(ValidationError) as caught:
        loop.export(tmp_path / "lake")
    assert caught.value.field == "out" and "overwrite" in str(caught.value)
    assert sorted(_read(tmp_path / "lake").index) == ["a"]
    loop.export(tmp_path / "lake", overwrite=True)
    assert sorted(_read(tmp_path / "lake").index) == ["a", "b"]


def test_the_cli_exports_and_reports_bad_input(db_url, tmp_path) -> None:
    now = datetime.now(UTC)
    loop = FeedbackLoop("cli-m", tracking_db=db_url, task="binary")
    loop.log_predictions(
        [
            {
                "prediction_id": f"p{i}",
                "prediction": i % 2,
                "timestamp": now - timedelta(hours=i),
                "features": {"f": float(i)},
            }
            for i in range(30)
        ]
    )
    runner = CliRunner()
    out = tmp_path / "lake"
    result = runner.invoke(
        app, ["export", "--model", "cli-m", "--out", str(out), "--db", db_url, "--chunk-rows", "7"]
    )
    assert result.exit_code == 0, result.output
    assert "30 predictions" in result.output
    table = ds.dataset(out, partitioning="hive").to_table()
    assert sorted(table.column("prediction_id").to_pylist()) == sorted(f"p{i}" for i in range(30))
    assert sorted(table.column("feature.f").to_pylist()) == [float(i) for i in range(30)]
    bad = runner.invoke(
        app, ["export", "--model", "cli-m", "--out", str(out), "--db", db_url, "--since", "x"]
    )
    assert bad.exit_code == 1 and "since" in bad.output
    again = runner.invoke(app, ["export", "--model", "cli-m", "--out", str(out), "--db", db_url])
    assert again.exit_code == 1 and "overwrite" in again.output
