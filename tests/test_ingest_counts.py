"""Counting at ingest: the drift summaries and metric blocks a write leaves are exactly what a
recount from the log gives, whichever path the rows came in and in whatever order."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from feedback_loop import FeedbackLoop
from feedback_loop.errors import ValidationError
from feedback_loop.store.blocks import unpack as unpack_block
from feedback_loop.store.summaries import unpack as unpack_summary

HOUR = timedelta(hours=1)


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    """Unsorted feature names, numbers with gaps, categories some of which the reference lacks."""
    cities = np.array(["rome", "oslo", "lima", "kyiv"])
    x = rng.normal(shift, 1.0, n)
    x[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "zeta": rng.exponential(1.0 + shift, n),
            "x": x,
            "city": np.where(rng.random(n) < 0.03, None, cities[rng.integers(0, 4, n)]),
            "alpha": rng.integers(0, 5, n).astype(float),
        }
    )


def _logged(
    clock: Any, rng: np.random.Generator, n: int, prefix: str, hours: float, shift: float = 0.0
) -> pd.DataFrame:
    """``n`` binary predictions at shuffled times over the last ``hours``, tagged, versioned."""
    frame = _frame(rng, n, shift)
    score = 1 / (1 + np.exp(-np.nan_to_num(frame["x"].to_numpy())))
    offsets = rng.permutation(n) * (hours * HOUR / n)
    return frame.assign(
        prediction_id=[f"{prefix}{i}" for i in range(n)],
        timestamp=[clock.now() - hours * HOUR + o for o in offsets],
        prediction=score,
        tags=[{"shop": f"s{i % 3}"} for i in range(n)],
        version=np.where(np.arange(n) % 4 == 0, "2", "1"),
    )


def _labels(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "prediction_id": frame["prediction_id"],
            "actual": (rng.random(len(frame)) < frame["prediction"]).astype(int),
        }
    )


def _reference(loop: FeedbackLoop, rng: np.random.Generator) -> None:
    reference = _frame(rng, 2000)
    score = 1 / (1 + np.exp(-np.nan_to_num(reference["x"].to_numpy())))
    loop.set_reference(reference, predictions=score, actuals=(rng.random(2000) < score).astype(int))


def _state(loop: FeedbackLoop) -> dict[str, Any]:
    """Every stored summary and block, decoded (a block's rows as a sorted multiset)."""
    with loop.engine.connect() as conn:
        summaries = conn.execute(
            text("SELECT layout, period, version, data FROM drift_summaries")
        ).all()
        blocks = conn.execute(
            text("SELECT period, version, n_predictions, data FROM metric_blocks")
        ).all()
    out: dict[str, Any] = {}
    for layout, period, version, data in summaries:
        assert data is not None, "a write left a summary to count again"
        s = unpack_summary(bytes(data))
        assert s is not None
        out[f"s {layout} {period} {version}"] = (s.n_rows, s.fixed.tolist(), s.extras, s.unstable)
    for period, version, n, data in blocks:
        assert data is not None, "a write left a block to rebuild"
        rows = unpack_block(bytes(data), version)
        table = np.column_stack([rows.a, rows.b, np.nan_to_num(rows.score, nan=-1), rows.delay_us])
        table = table[np.lexsort(table.T[::-1])] if len(table) else table
        out[f"b {period} {version}"] = (int(n), table.tolist())
    return out


def _recounted(loop: FeedbackLoop) -> dict[str, Any]:
    """The same after forgetting every count and counting the log again (as a reader does)."""
    with loop.engine.begin() as conn:
        conn.execute(text("UPDATE drift_summaries SET data = NULL"))
        conn.execute(text("UPDATE metric_blocks SET data = NULL"))
    loop.check_drift(window="2d", record=False)
    loop.get_metrics("2d")
    return _state(loop)


def test_counts_at_ingest_equal_a_recount(db_url, clock) -> None:
    rng = np.random.default_rng(1)
    loop = FeedbackLoop("ingest", tracking_db=db_url, clock=clock, task="binary")
    _reference(loop, rng)
    first = _logged(clock, rng, 900, "a", hours=20)
    loop.log_predictions(first)
    # a second batch over the same hours, as a list of dicts (features as JSON)
    second = _logged(clock, rng, 120, "b", hours=10, shift=0.7)
    records = second.drop(columns=["zeta", "x", "city", "alpha"]).to_dict("records")
    features = second[["alpha", "city", "x", "zeta"]].to_dict("records")
    for record, feature in zip(records, features, strict=True):
        record["features"] = {k: v for k, v in feature.items() if not pd.isna(v)}
        record["timestamp"] = record["timestamp"].to_pydatetime()
    loop.log_predictions(records)
    # single calls, one with its actual; a retry of rows already stored
    for i in range(5):
        loop.log_prediction(
            f"one{i}",
            prediction={"label": 1, "score": 0.2 * i},
            features={"x": float(i), "city": "oslo", "zeta": 1.0},
            timestamp=clock.now() - HOUR * (i + 0.5),
            version="1",
            actual=i % 2 if i else None,
        )
    assert loop.log_predictions(first.iloc[:40]).retried == 40
    # outcomes arriving late, in two batches, then one relabel
    labels = _labels(first, rng)
    loop.log_outcomes(labels.iloc[:500])
    loop.log_outcomes(pd.concat([labels.iloc[500:], _labels(second, rng)]))
    loop.log_outcome("a3", actual=1 - int(labels["actual"].iloc[3]))
    clock.advance(timedelta(minutes=7))

    # the relabel left its hour to the reader; count it, then everything is counted
    loop.get_metrics("2d")
    stored = _state(loop)
    assert any(k.startswith("s ") for k in stored)
    assert sum(n for k, (n, *_) in stored.items() if k.startswith("b ")) == 900 + 120 + 5
    expected = loop.check_drift(window="2d", record=False).to_dict()
    metrics = loop.get_metrics("2d")
    assert _recounted(loop) == stored
    assert loop.check_drift(window="2d", record=False).to_dict() == expected
    # the same rows, in another order: sums of floats may differ in the last bit
    again = loop.get_metrics("2d")
    assert again.keys() == metrics.keys()
    for key, value in metrics.items():
        if isinstance(value, float):
            assert again[key] == pytest.approx(value, rel=1e-12), key
        else:
            assert again[key] == value, key


def test_a_refused_batch_changes_no_count(db_url, clock) -> None:
    rng = np.random.default_rng(2)
    loop = FeedbackLoop("refused", tracking_db=db_url, clock=clock, task="binary")
    _reference(loop, rng)
    first = _logged(clock, rng, 300, "a", hours=6)
    loop.log_predictions(first)
    loop.log_outcomes(_labels(first.iloc[:200], rng))
    before = _state(loop)
    bad = _logged(clock, rng, 100, "bad", hours=6)
    bad.loc[bad.index[57], "version"] = "bad\x07version"
    with pytest.raises(ValidationError) as refused:
        loop.log_predictions(bad)
    assert refused.value.row == 57
    labels = _labels(first.iloc[200:], rng)
    labels.loc[labels.index[30], "actual"] = 7  # a third class on a binary model
    with pytest.raises(ValidationError):
        loop.log_outcomes(labels)
    assert _state(loop) == before


def test_concurrent_writers_lose_no_count(db_url, clock) -> None:
    rng = np.random.default_rng(3)
    loop = FeedbackLoop("concurrent", tracking_db=db_url, clock=clock, task="binary")
    _reference(loop, rng)
    loop.log_predictions(_logged(clock, rng, 100, "seed", hours=3))
    batches = [
        _logged(clock, np.random.default_rng(10 + k), 60, f"w{k}-", hours=3) for k in range(4)
    ]
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            for part in range(3):
                rows = batches[k].iloc[part * 20 : (part + 1) * 20]
                loop.log_predictions(rows)
                loop.log_outcomes(_labels(rows, np.random.default_rng(k)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    clock.advance(timedelta(minutes=2))
    loop.get_metrics("2d")  # rebuilds what a writer could only mark
    stored = _state(loop)
    assert sum(n for k, (n, *_) in stored.items() if k.startswith("b ")) == 100 + 4 * 60
    assert _recounted(loop) == stored
