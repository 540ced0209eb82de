"""A model's features may arrive in both storages: JSON bodies (the server, dicts with text
values) and packed numeric columns (a column file or a DataFrame). Reads see one column each."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from feedback_loop import FeedbackLoop, ManualClock


def test_features_logged_as_json_and_as_columns_read_as_one_column(
    db_url: str, clock: ManualClock
) -> None:
    loop = FeedbackLoop("mixed", tracking_db=db_url, clock=clock)
    rng = np.random.default_rng(3)
    for i in range(40):  # JSON: a text feature sends the whole row to the JSON storage
        loop.log_prediction(
            prediction_id=f"j{i}",
            prediction=int(i % 2),
            actual=int(i % 3 == 0),
            features={"tenure": i, "plan": "pro"},
            tags={"region": "eu"},
        )
    columns = pd.DataFrame(
        {
            "prediction_id": [f"c{i}" for i in range(60)],
            "prediction": rng.integers(0, 2, 60),
            "actual": rng.integers(0, 2, 60),
            "tenure": np.arange(100, 160, dtype=float),  # numeric only: packed
            "tags": [{"region": "us"}] * 60,
        }
    )
    loop.log_predictions(columns)
    clock.advance(timedelta(hours=1))

    slices = loop.segments(window="30d", by=["region"], min_support=10)
    assert {s["segment"]["region"] for s in slices} == {"eu", "us"}
    reference = loop.set_reference(window="30d")
    assert reference["rows"] == 100
    report = loop.check_drift(window="30d")
    assert "tenure" in report.columns
    assert loop.detect_concept_drift(window="30d") is not None
