"""Drift from hourly summaries: the same report as counting the window's rows, without reading
the rows of hours already counted."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from feedback_loop import FeedbackLoop
from feedback_loop.monitor import drift_checks
from feedback_loop.monitor.references import stored_reference
from feedback_loop.monitor.window import window_features, window_filter

HOUR = timedelta(hours=1)


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    """Unsorted feature names, numbers with gaps, categories with some unseen by a reference."""
    cities = np.array(["rome", "oslo", "lima", "kyiv"])
    x = rng.normal(shift, 1.0, n)
    x[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "zeta": rng.exponential(1.0 + shift, n),
            "x": x,
            "city": np.where(
                rng.random(n) < 0.03, None, cities[rng.integers(0, 3 + (shift > 0), n)]
            ),
            "alpha": rng.integers(0, 5, n).astype(float),
        }
    )


def _rows(
    clock: Any,
    task: str,
    frame: pd.DataFrame,
    rng: np.random.Generator,
    prefix: str,
    *,
    spread: timedelta,
    version: Any = None,
) -> pd.DataFrame:
    """Predictions of ``frame`` at shuffled times over the ``spread`` before now."""
    n = len(frame)
    offsets = rng.permutation(n) * (spread / max(n, 1))
    score = 1 / (1 + np.exp(-np.nan_to_num(frame["x"].to_numpy())))
    if task == "binary":
        prediction: list[Any] = [{"label": int(s >= 0.5), "score": float(s)} for s in score]
        actual: list[Any] = [int(v) for v in rng.random(n) < score]
    elif task == "multiclass":
        classes = np.array(["a", "b", "c", "d"])
        picked = classes[np.minimum((score * 4).astype(int), 3)]
        prediction = picked.tolist()
        actual = classes[rng.integers(0, 4, n)].tolist()
    else:
        prediction = (score * 10).tolist()
        actual = (score * 10 + rng.normal(0, 1, n)).tolist()
    rows = frame.assign(
        prediction_id=[f"{prefix}{i}" for i in range(n)],
        timestamp=[clock.now() - spread + o for o in offsets],
        prediction=prediction,
        actual=[a if i % 3 else None for i, a in enumerate(actual)],
        tags=[{"shop": "s1" if i % 2 else "s2"} for i in range(n)],
    )
    if version is not None:
        rows["version"] = version
    return rows


def _loop(db_url: str, clock: Any, task: str, rng: np.random.Generator) -> FeedbackLoop:
    loop = FeedbackLoop(f"m-{task}", tracking_db=db_url, clock=clock, task=task)
    reference = _frame(rng, 3000)
    score = 1 / (1 + np.exp(-np.nan_to_num(reference["x"].to_numpy())))
    if task == "binary":
        predictions: Any = score
        actuals: Any = (rng.random(3000) < score).astype(int)
    elif task == "multiclass":
        classes = np.array(["a", "b", "c"])  # "d" never predicted in the reference
        predictions = classes[np.minimum((score * 3).astype(int), 2)]
        actuals = classes[rng.integers(0, 3, 3000)]
    else:
        predictions = score * 10
        actuals = score * 10 + rng.normal(0, 1, 3000)
    loop.set_reference(reference, predictions=predictions, actuals=actuals)
    return loop


def _rows_report(loop: FeedbackLoop, window: Any, **options: Any) -> dict[str, Any]:
    """The report counted from every row of the window."""
    handle = loop.handle
    state = handle.read_state()
    version = options.pop("version", None)
    stored = stored_reference(handle, options.pop("reference", "default"), version)
    flt = window_filter(handle, window, version)
    data = window_features(handle.engine, flt, regression=state.spec.task == "regression")
    report = drift_checks.check_drift(
        state,
        stored,
        data,
        flt,
        methods=options.get("methods"),
        share_threshold=0.5,
        correction=options.get("correction", "none"),
    )
    return report.to_dict()


def _same(loop: FeedbackLoop, window: Any = "1d", **options: Any) -> dict[str, Any]:
    """The summary path's report, checked equal to the rows' (twice: building, then built)."""
    expected = _rows_report(loop, window, **options)
    for _ in range(2):
        got = loop.check_drift(window=window, record=False, **options).to_dict()
        assert got == expected
    return got


def _summaries(loop: FeedbackLoop) -> int:
    with loop.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM drift_summaries")).scalar_one())


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_summaries_give_the_rows_report(db_url, clock, task) -> None:
    rng = np.random.default_rng(3)
    loop = _loop(db_url, clock, task, rng)
    loop.log_predictions(_rows(clock, task, _frame(rng, 900), rng, "a", spread=20 * HOUR))
    clock.advance(timedelta(minutes=17))  # windows end inside an hour
    report = _same(loop, "1d")
    assert report["n_current"] == 900 and _summaries(loop) > 0
    # drifted data, partly seen before
    loop.log_predictions(_rows(clock, task, _frame(rng, 700, 0.7), rng, "b", spread=30 * HOUR))
    clock.advance(timedelta(minutes=31))
    drifted = _same(loop, "2d")
    assert drifted["n_current"] == 1600
    assert {"x", "zeta"} & set(drifted["drifted_columns"])
    _same(loop, "1d", correction="benjamini_hochberg")
    _same(loop, "2d", methods={"x": "psi", "city": "jensen_shannon", "alpha": "psi"})
    _same(loop, "2d", methods={"city": "chi_square"})
    # segments read the rows; both agree
    _same(loop, "2d", methods={"x": "ks"})


def test_counts_agree_with_the_values_path(db_url, clock) -> None:
    """Counting first changes nothing that comparing the values found: same counts, same
    p-values (the order of unseen categories aside, which moves PSI by rounding only)."""
    rng = np.random.default_rng(4)
    loop = _loop(db_url, clock, "binary", rng)
    loop.log_predictions(_rows(clock, "binary", _frame(rng, 800, 0.3), rng, "a", spread=HOUR * 9))
    handle = loop.handle
    state = handle.read_state()
    stored = stored_reference(handle, "default", None)
    flt = window_filter(handle, "1d")
    data = window_features(handle.engine, flt, regression=False)
    options: dict[str, Any] = {"methods": None, "share_threshold": 0.5, "correction": "none"}
    counted = drift_checks.check_drift(state, stored, data, flt, **options).to_dict()
    valued = drift_checks._check_values(state, stored, data, flt, **options).to_dict()
    assert counted.keys() == valued.keys()
    for name, column in valued.pop("columns").items():
        mine = counted["columns"][name]
        for key, value in column.items():
            if isinstance(value, float):
                assert mine[key] == pytest.approx(value, rel=1e-12, abs=1e-15), (name, key)
            else:
                assert mine[key] == value, (name, key)
    counted.pop("columns")
    assert counted == valued


def test_versions_single_logs_retries_and_late_rows(db_url, clock) -> None:
    rng = np.random.default_rng(5)
    loop = _loop(db_url, clock, "binary", rng)
    reference = _frame(rng, 2000)
    loop.set_reference(reference, predictions=rng.random(2000), version=1)
    logged = {}
    for version in (1, 2, None):
        rows = _rows(clock, "binary", _frame(rng, 300, 0.2), rng, f"v{version}-", spread=HOUR * 7)
        logged[version] = rows if version is None else rows.assign(version=version)
        loop.log_predictions(logged[version])
    # single calls: features as JSON, one with a category logged as text, one out of order
    for i in range(6):
        loop.log_prediction(
            f"one{i}",
            prediction={"label": 1, "score": 0.1 * i},
            features={"x": float(i), "city": ["rome", "kyiv"][i % 2], "alpha": 1.0},
            timestamp=clock.now() - HOUR * (i + 0.5),
            version=1 if i % 2 else None,
        )
    clock.advance(timedelta(minutes=5))
    _same(loop, "1d")
    _same(loop, "1d", version=1)
    built = _summaries(loop)
    # an identical retry stores nothing and changes nothing
    retried = loop.log_predictions(logged[1].iloc[:50])
    assert retried.retried == 50 and retried.inserted == 0
    _same(loop, "1d")
    assert _summaries(loop) == built
    # late rows in hours already counted are added to their summaries as they are logged
    late = _rows(clock, "binary", _frame(rng, 40, 1.0), rng, "late", spread=HOUR * 6)
    loop.log_predictions(late.assign(version=1))
    with loop.engine.connect() as conn:
        dirty = conn.execute(text("SELECT count(*) FROM drift_summaries WHERE data IS NULL"))
        assert dirty.scalar_one() == 0
    _same(loop, "1d", version=1)
    _same(loop, "1d")


def test_categories_logged_as_numbers_read_the_rows(db_url, clock) -> None:
    """A category given as a JSON number reads as 1 or 1.0 depending on the window's other
    rows: such hours are not summarised alike, so the check reads the rows."""
    rng = np.random.default_rng(6)
    loop = _loop(db_url, clock, "binary", rng)
    for i in range(30):
        loop.log_prediction(
            f"n{i}",
            prediction={"label": 0, "score": 0.3},
            features={"x": 0.1 * i, "city": i % 3} if i % 5 else {"x": 1.0},
            timestamp=clock.now() - HOUR * (i / 3 + 0.2),
        )
    clock.advance(timedelta(minutes=3))
    _same(loop, "1d")


def test_reference_set_after_the_data_and_a_second_reference(db_url, clock) -> None:
    rng = np.random.default_rng(7)
    loop = FeedbackLoop("late-ref", tracking_db=db_url, clock=clock, task="binary")
    loop.log_predictions(_rows(clock, "binary", _frame(rng, 600), rng, "a", spread=HOUR * 10))
    clock.advance(timedelta(minutes=20))
    loop.set_reference(_frame(rng, 2000), predictions=rng.random(2000))
    _same(loop, "1d")
    # a second reference from a logged window: its own cells, its own summaries
    loop.set_reference(window="1d", name="served")
    _same(loop, "1d", reference="served")
    with loop.engine.connect() as conn:
        layouts = conn.execute(text("SELECT count(DISTINCT layout) FROM drift_summaries"))
        assert layouts.scalar_one() == 2
    # set again with other data: new cells, counted afresh; the old cells' rows are dropped
    loop.set_reference(_frame(rng, 2000, 0.5), predictions=rng.random(2000))
    _same(loop, "1d")
    _same(loop, "1d", reference="served")
    with loop.engine.connect() as conn:
        layouts = conn.execute(text("SELECT count(DISTINCT layout) FROM drift_summaries"))
        assert layouts.scalar_one() == 2


def test_concurrent_writers_to_the_same_hours(db_url, clock) -> None:
    rng = np.random.default_rng(8)
    loop = _loop(db_url, clock, "binary", rng)
    loop.log_predictions(_rows(clock, "binary", _frame(rng, 200), rng, "seed", spread=HOUR * 3))
    clock.advance(timedelta(minutes=10))
    _same(loop, "1d")
    frames = [_frame(np.random.default_rng(20 + k), 60, 0.5) for k in range(4)]
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            for part in range(3):
                rows = _rows(
                    clock,
                    "binary",
                    frames[k].iloc[part * 20 : (part + 1) * 20],
                    np.random.default_rng(k * 10 + part),
                    f"t{k}-{part}-",
                    spread=HOUR * 3,
                )
                loop.log_predictions(rows)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def check() -> None:
        try:
            for _ in range(3):
                loop.check_drift(window="1d", record=False)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    threads.append(threading.Thread(target=check))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    report = _same(loop, "1d")
    assert report["n_current"] == 200 + 4 * 60


def test_built_hours_are_not_read_again(db_url, clock) -> None:
    """Once a window's whole hours are counted, a check reads only its partial edge hours:
    garbling the stored features of the inner hours changes nothing."""
    rng = np.random.default_rng(10)
    loop = _loop(db_url, clock, "binary", rng)
    loop.log_predictions(_rows(clock, "binary", _frame(rng, 800, 0.2), rng, "a", spread=HOUR * 20))
    clock.advance(timedelta(minutes=40))
    before = _same(loop, "1d")
    now_us = loop.handle.now_us()
    hour = 3_600_000_000
    first = -(-(now_us - 86_400_000_000) // hour) * hour
    last = now_us // hour * hour
    with loop.engine.begin() as conn:
        inner = "SELECT id FROM predictions WHERE ts >= :a AND ts < :b"
        changed = conn.execute(
            text(
                "UPDATE prediction_payloads SET numeric = NULL, schema_id = NULL, "
                f"features = '{{\"x\": 1e6}}' WHERE id IN ({inner})"
            ),
            {"a": first, "b": last},
        )
        assert changed.rowcount > 700
    after = loop.check_drift(window="1d", record=False).to_dict()
    assert after == before
    assert _rows_report(loop, "1d") != before  # the rows themselves did change


def _downgrade(url: str, revision: str) -> None:
    from feedback_loop.store.engine import make_engine
    from feedback_loop.store.migrate import downgrade

    engine = make_engine(url)
    downgrade(engine, revision)
    engine.dispose()


def test_a_database_from_before_the_summaries_upgrades(db_url, clock) -> None:
    from typer.testing import CliRunner

    from feedback_loop.cli import app
    from feedback_loop.loop import dispose_engines
    from feedback_loop.store.migrate import head_revision

    rng = np.random.default_rng(11)
    loop = _loop(db_url, clock, "multiclass", rng)
    loop.log_predictions(_rows(clock, "multiclass", _frame(rng, 500), rng, "a", spread=HOUR * 9))
    clock.advance(timedelta(minutes=12))
    expected = _rows_report(loop, "1d")
    dispose_engines()
    _downgrade(db_url, "0009")
    result = CliRunner().invoke(app, ["db", "upgrade", "--db", db_url])
    assert result.exit_code == 0, result.output
    assert head_revision() in result.output  # every migration since 0009, 0010 among them
    upgraded = FeedbackLoop("m-multiclass", tracking_db=db_url, clock=clock)
    assert upgraded.check_drift(window="1d", record=False).to_dict() == expected
    assert _summaries(upgraded) > 0
    assert upgraded.check_drift(window="1d", record=False).to_dict() == expected


def test_hours_dirtied_during_a_check_are_read_from_the_log(db_url, clock, monkeypatch) -> None:
    """A writer can dirty an hour between a check's counting and its merge: that hour (all its
    versions) then comes from the log, and the report is still the rows'."""
    from feedback_loop.monitor import window as window_module

    rng = np.random.default_rng(12)
    loop = _loop(db_url, clock, "binary", rng)
    for version in ("1", "2"):
        rows = _rows(clock, "binary", _frame(rng, 300), rng, f"v{version}-", spread=HOUR * 8)
        loop.log_predictions(rows.assign(version=version))
    clock.advance(timedelta(minutes=25))
    _same(loop, "1d")
    late = _rows(clock, "binary", _frame(rng, 30, 1.0), rng, "late", spread=HOUR * 5)
    loop.log_predictions(late.assign(version="2"))
    with loop.engine.begin() as conn:  # as a write that could not count its rows leaves them
        dirtied = conn.execute(text("UPDATE drift_summaries SET data = NULL WHERE version = '2'"))
        assert dirtied.rowcount > 0
    monkeypatch.setattr(window_module, "_summarise_hours", lambda *args: None)
    got = loop.check_drift(window="1d", record=False).to_dict()
    assert got == _rows_report(loop, "1d")
    assert got["n_current"] == 630
