"""Bulk rows read column by column give what the row-by-row reader gives, and the bulk writers
answer row by row as before (new ids, retries, matched and unmatched outcomes)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from feedback_loop import FeedbackLoop, ManualClock
from feedback_loop.collect.batches import (
    _outcome_columns,
    _outcome_rows,
    outcome_batch,
    scalar_json,
    to_frame,
)
from feedback_loop.core.tasks import TaskSpec
from feedback_loop.errors import ValidationError

NOW = datetime(2026, 1, 8, tzinfo=UTC)

CLASSIFICATION_FRAMES = {
    "integers": {"prediction_id": ["a", "b", "c"], "actual": [0, 1, 2]},
    "booleans": {"prediction_id": ["a", "b"], "actual": [True, False]},
    "whole floats with a gap and feedback": {
        "prediction_id": ["a", "b", "c"],
        "actual": [1.0, np.nan, 0.0],
        "feedback": ["up", "Down", None],
    },
    "strings and sources": {
        "prediction_id": ["a", "b", "c"],
        "actual": ["cat", "dog", "cat"],
        "source": ["review", None, "feedback"],
    },
    "feedback as numbers": {"prediction_id": ["a", "b", "c"], "feedback": [1, -1, 0]},
    "feedback as booleans": {"prediction_id": ["a", "b"], "feedback": [True, False]},
    "strings with an escape": {"prediction_id": ["a", "b"], "actual": ['say "hi"', "é\\n"]},
}
REGRESSION_FRAMES = {
    "floats": {"prediction_id": ["a", "b", "c"], "actual": [1.5, -2.0, 1e20]},
    "integers": {"prediction_id": ["a", "b"], "actual": [3, -4]},
}


@pytest.mark.parametrize(
    ("task", "columns"),
    [("multiclass", c) for c in CLASSIFICATION_FRAMES.values()]
    + [("regression", c) for c in REGRESSION_FRAMES.values()],
    ids=[f"classification: {k}" for k in CLASSIFICATION_FRAMES]
    + [f"regression: {k}" for k in REGRESSION_FRAMES],
)
def test_outcome_columns_read_as_the_rows_do(task: str, columns: dict[str, list[object]]) -> None:
    frame = to_frame(pd.DataFrame(columns))
    spec = TaskSpec(task=task)  # type: ignore[arg-type]
    by_column = _outcome_columns(frame, spec, len(frame))
    assert by_column is not None, "a plain column should not need the row-by-row reader"
    by_row = _outcome_rows(frame, spec, len(frame))
    assert by_column == by_row
    for read_column, read_row in zip(by_column, by_row, strict=True):  # types too: 1 is not 1.0
        assert [type(v) for v in read_column] == [type(v) for v in read_row]


@pytest.mark.parametrize(
    ("task", "columns", "field", "row"),
    [
        ("multiclass", {"prediction_id": ["a", "b"], "actual": [1.0, 1.5]}, "actual", 1),
        ("multiclass", {"prediction_id": ["a", "b"], "actual": ["x", ""]}, "actual", 1),
        ("multiclass", {"prediction_id": ["a", "b"], "actual": [1.0, np.nan]}, "actual", 1),
        ("multiclass", {"prediction_id": ["a", "b"], "feedback": ["up", "meh"]}, "feedback", 1),
        ("multiclass", {"prediction_id": ["a", "b"], "feedback": [1, 2]}, "feedback", 1),
        (
            "multiclass",
            {"prediction_id": ["a", "b"], "actual": [1, 0], "source": ["x", None]},
            "source",
            0,
        ),
        ("regression", {"prediction_id": ["a", "b"], "actual": [1.0, np.inf]}, "actual", 1),
        ("regression", {"prediction_id": ["a", "b"], "actual": [True, False]}, "actual", 0),
    ],
)
def test_a_bad_outcome_row_is_named(
    task: str, columns: dict[str, list[object]], field: str, row: int
) -> None:
    many = pd.DataFrame({name: values * 40 for name, values in columns.items()})  # the bulk path
    with pytest.raises(ValidationError) as caught:
        outcome_batch(many, TaskSpec(task=task), 0)  # type: ignore[arg-type]
    assert (caught.value.field, caught.value.row) == (field, row)


def _frame(ids: list[str], version: str | None = "v1") -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame(
        {
            "prediction_id": ids,
            "timestamp": [NOW] * n,
            "version": [version] * n,
            "prediction": [i % 2 for i in range(n)],
            "f0": np.arange(n, dtype=float),
            "f1": [f"c{i % 3}" for i in range(n)],
        }
    )


def test_a_batch_of_new_and_retried_rows_keeps_each_rows_payload(db_url: str) -> None:
    loop = FeedbackLoop("columns", tracking_db=db_url, clock=ManualClock(NOW), task="binary")
    first = _frame([f"p{i}" for i in range(300)])
    loop.log_predictions(first)
    # new rows between identical retries: each new row must get its own features
    mixed = pd.concat([first.iloc[::2], _frame([f"q{i}" for i in range(300)])])
    mixed = mixed.sample(frac=1.0, random_state=0).reset_index(drop=True)
    result = loop.log_predictions(mixed)
    assert (result.inserted, result.retried) == (300, 150)
    for i in (0, 7, 299):
        stored = loop.get_prediction(f"q{i}")
        assert stored is not None
        assert stored["features"] == {"f0": float(i), "f1": f"c{i % 3}"}
        assert stored["version"] == "v1"


def test_outcomes_answer_matched_and_unmatched_row_by_row(db_url: str) -> None:
    loop = FeedbackLoop("outcomes", tracking_db=db_url, clock=ManualClock(NOW), task="binary")
    loop.log_predictions(_frame([f"p{i}" for i in range(250)]))
    ids = [f"p{i}" if i % 5 else f"later{i}" for i in range(250)]
    result = loop.log_outcomes(pd.DataFrame({"prediction_id": ids, "actual": [1] * 250}))
    assert (result.stored, result.matched, result.unmatched) == (250, 200, 50)
    assert loop.unmatched_outcomes() == 50
    stored = loop.get_prediction("p1")
    assert stored is not None and stored["actual"] == 1
    # the outcomes waiting for their predictions are joined when the predictions arrive
    loop.log_predictions(_frame([f"later{i}" for i in range(0, 250, 5)]))
    assert loop.unmatched_outcomes() == 0
    later = loop.get_prediction("later5")
    assert later is not None and later["actual"] == 1


@pytest.mark.parametrize(
    "values",
    [
        [1, 2, -3],
        [1.5, -2.0, 1e20],
        ["a", 'say "hi"', "é", "a"],
        [True, False],
        [1, "a", 2.5, True],
    ],
)
def test_scalar_json_writes_what_json_writes(values: list[object]) -> None:
    assert scalar_json(values) == [json.dumps(v) for v in values]
