"""Errors cross process boundaries intact: the demo replays strategies in a process pool, and a
worker's exception is pickled back to the parent."""

from __future__ import annotations

import pickle

from feedback_loop import DuplicatePredictionError, RejectedVersionError, ValidationError


def test_errors_survive_pickling_with_their_fields() -> None:
    rejected = pickle.loads(pickle.dumps(RejectedVersionError(3, "worse than the champion")))
    assert (rejected.version, rejected.verdict) == (3, "worse than the champion")
    assert "version 3 was rejected" in str(rejected)

    duplicate = pickle.loads(pickle.dumps(DuplicatePredictionError("churn", ["a", "b"])))
    assert (duplicate.model, duplicate.prediction_ids) == ("churn", ["a", "b"])

    invalid = pickle.loads(pickle.dumps(ValidationError("must be a number", field="x", row=3)))
    assert (invalid.message, invalid.field, invalid.row) == ("must be a number", "x", 3)
    assert str(invalid) == "row 3, field x: must be a number"
