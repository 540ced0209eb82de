"""The ``feedback-loop`` command, end to end on both databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
from typer.testing import CliRunner

from feedback_loop.cli import app

runner = CliRunner()


def _predictions(n: int) -> pd.DataFrame:
    now = datetime.now(UTC)
    return pd.DataFrame(
        {
            "prediction_id": [f"p{i}" for i in range(n)],
            "timestamp": [(now - timedelta(hours=i)).isoformat() for i in range(n)],
            "prediction": [i % 2 for i in range(n)],
            "x": [float(i) for i in range(n)],
        }
    )


def test_log_metrics_events_roundtrip(db_url, tmp_path) -> None:
    predictions = tmp_path / "predictions.csv"
    _predictions(40).to_csv(predictions, index=False)
    outcomes = tmp_path / "outcomes.jsonl"
    rows = [{"prediction_id": f"p{i}", "actual": 1} for i in range(30)]
    rows.append({"prediction_id": "unknown", "actual": 0})
    outcomes.write_text("\n".join(json.dumps(r) for r in rows))

    result = runner.invoke(app, ["log", "predictions", str(predictions), "-m", "m", "--db", db_url])
    assert result.exit_code == 0, result.output
    assert "stored 40 predictions" in result.output
    result = runner.invoke(app, ["log", "outcomes", str(outcomes), "-m", "m", "--db", db_url])
    assert result.exit_code == 0, result.output
    assert "1 unmatched" in result.output

    result = runner.invoke(app, ["metrics", "-m", "m", "--db", db_url, "--window", "7d", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["predictions"] == 40
    assert metrics["labeled"] == 30
    assert metrics["accuracy"] == 0.5

    table = runner.invoke(app, ["metrics", "-m", "m", "--db", db_url])
    assert "accuracy" in table.output and "0.5000" in table.output

    result = runner.invoke(app, ["events", "-m", "m", "--db", db_url, "--json"])
    assert result.exit_code == 0


def test_parquet_and_bad_rows(db_url, tmp_path) -> None:
    frame = _predictions(10)
    path = tmp_path / "p.parquet"
    frame.to_parquet(path)
    ok = runner.invoke(app, ["log", "predictions", str(path), "-m", "pq", "--db", db_url])
    assert ok.exit_code == 0, ok.output
    bad = frame.assign(prediction_id=[f"b{i}" for i in range(10)])
    bad.loc[4, "timestamp"] = "yesterday-ish"
    bad_path = tmp_path / "bad.csv"
    bad.to_csv(bad_path, index=False)
    result = runner.invoke(app, ["log", "predictions", str(bad_path), "-m", "pq", "--db", db_url])
    assert result.exit_code == 1
    assert "row 4" in result.output and "timestamp" in result.output
    missing = runner.invoke(app, ["log", "predictions", "nope.csv", "-m", "pq", "--db", db_url])
    assert missing.exit_code == 1 and "does not exist" in missing.output


def test_db_upgrade(db_url) -> None:
    result = runner.invoke(app, ["db", "upgrade", "--db", db_url])
    assert result.exit_code == 0, result.output
    from feedback_loop.store.migrate import head_revision

    assert f"revision {head_revision()}" in result.output


def test_reference_drift_estimate_segments(db_url, tmp_path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 500), "score": rng.random(500)})
    ref["y"] = (rng.random(500) < ref.score).astype(int)
    ref_path = tmp_path / "ref.csv"
    ref.to_csv(ref_path, index=False)
    now = datetime.now(UTC)
    current = pd.DataFrame(
        {
            "prediction_id": [f"c{i}" for i in range(300)],
            "timestamp": [(now - timedelta(minutes=i)).isoformat() for i in range(300)],
            "prediction": [
                json.dumps({"label": int(s >= 0.5), "score": float(s)}) for s in rng.random(300)
            ],
            "x": rng.normal(2, 1, 300),
        }
    )
    rows = [
        {
            **r,
            "prediction": json.loads(r["prediction"]),
            "actual": i % 2,
            "tags": {"region": "eu" if i % 3 else "us"},
        }
        for i, r in enumerate(current.to_dict("records"))
    ]
    path = tmp_path / "current.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    args = ["-m", "d", "--db", db_url]
    assert runner.invoke(app, ["log", "predictions", str(path), *args]).exit_code == 0
    result = runner.invoke(
        app,
        [
            "reference",
            str(ref_path),
            *args,
            "--prediction-column",
            "score",
            "--actual-column",
            "y",
        ],
    )
    assert result.exit_code == 0, result.output
    drift = runner.invoke(app, ["drift", *args, "--window", "1d", "--json"])
    assert drift.exit_code == 0, drift.output
    assert "x" in json.loads(drift.output)["drifted_columns"]
    table = runner.invoke(app, ["drift", *args, "--window", "1d"])
    assert "DRIFT" in table.output
    est = runner.invoke(app, ["estimate", *args, "--window", "1d", "--json"])
    assert est.exit_code == 0, est.output
    assert json.loads(est.output)["n"] == 300
    seg = runner.invoke(app, ["segments", *args, "--by", "region", "--window", "1d", "--json"])
    assert seg.exit_code == 0, seg.output
    assert {r["segment"]["region"] for r in json.loads(seg.output)} == {"eu", "us"}
