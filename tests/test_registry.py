"""The model registry: versions, hash-checked artifacts, aliases and their history."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from feedback_loop import FeedbackLoop, ValidationError
from feedback_loop.store.artifacts import ArtifactIntegrityError


@pytest.fixture
def loop(db_url, clock, tmp_path) -> FeedbackLoop:
    return FeedbackLoop(
        "reg",
        tracking_db=db_url,
        clock=clock,
        task="binary",
        artifact_root=str(tmp_path / "artifacts"),
    )


def _fitted(seed: int) -> tuple[LogisticRegression, pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y = (X.a + rng.normal(0, 0.5, 300) > 0).astype(int).to_numpy()
    return LogisticRegression().fit(X, y), X, y


def test_versions_increase_and_load_back(loop) -> None:
    model, X, y = _fitted(0)
    v1 = loop.register_model(
        model,
        features=X,
        predictions=model.predict_proba(X)[:, 1],
        actuals=y,
        metrics={"accuracy": 0.9},
        alias="champion",
    )
    v2 = loop.register_model(_fitted(1)[0])
    assert (v1, v2) == (1, 2)
    loaded = loop.load_model("champion")
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))
    records = loop.versions()
    assert [r.version for r in records] == [1, 2]
    assert records[0].metrics == {"accuracy": 0.9} and records[0].train_rows == 300
    assert records[0].info["features"] == ["a", "b"]
    assert len(records[0].sha256) == 64
    assert [e.kind for e in loop.events(kinds=["version_registered"])] == ["version_registered"] * 2


def test_tampered_artifact_is_refused(loop) -> None:
    version = loop.register_model(_fitted(0)[0])
    path = Path(loop.versions()[0].artifact_uri.removeprefix("file://"))
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(ArtifactIntegrityError, match="refusing"):
        loop.load_model(version)


def test_aliases_keep_their_history(loop, clock) -> None:
    for seed in range(3):
        loop.register_model(_fitted(seed)[0])
    assert loop.set_alias("champion", 1) is None
    assert loop.set_alias("champion", 2, actor="ci", reason="better") == 1
    loop.set_alias("challenger", 3)
    assert loop.aliases() == {"champion": 2, "challenger": 3}
    moves = loop.alias_history("champion")
    assert [(m["previous_version"], m["version"], m["actor"]) for m in moves] == [
        (None, 1, "user"),
        (1, 2, "ci"),
    ]
    assert moves[1]["reason"] == "better"
    with pytest.raises(ValidationError, match="version"):
        loop.set_alias("champion", 99)
    with pytest.raises(ValidationError, match="alias"):
        loop.load_model("nobody")


def test_registered_reference_is_used_for_drift(loop, clock) -> None:
    model, X, y = _fitted(0)
    version = loop.register_model(
        model, features=X, predictions=model.predict_proba(X)[:, 1], actuals=y
    )
    rng = np.random.default_rng(5)
    current = pd.DataFrame({"a": rng.normal(2, 1, 300), "b": rng.normal(size=300)})
    score = model.predict_proba(current)[:, 1]
    loop.log_predictions(current.assign(prediction=score.round(6), version=str(version)))
    report = loop.check_drift(window="1d", version=version)
    assert "a" in report.drifted_columns and "b" not in report.drifted_columns
