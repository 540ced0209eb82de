"""Logging predictions and outcomes for one model.

Single calls made at the same moment, from threads or asyncio tasks, share one transaction
(group commit); a model's first rows are stored on their own, creating the model with them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from feedback_loop.collect.batches import (
    OutcomeBatch,
    PredictionBatch,
    new_ids,
    outcome_batch,
    prediction_batch,
    single_prediction,
    to_frame,
)
from feedback_loop.collect.group_commit import GroupCommit
from feedback_loop.collect.handle import ModelHandle
from feedback_loop.collect.recording import (
    LogResult,
    ModelState,
    store_outcome_groups,
    store_outcomes,
    store_prediction_groups,
    store_predictions,
)
from feedback_loop.core.limits import check_prediction_id
from feedback_loop.errors import ValidationError
from feedback_loop.store.outcomes import OutcomeResult


class PredictionLog:
    """The write side of one model's log (see ``FeedbackLoop.log_prediction``)."""

    def __init__(self, handle: ModelHandle):
        self.handle = handle
        self._predictions: GroupCommit[PredictionBatch, LogResult] = GroupCommit(
            self._write_predictions
        )
        self._outcomes: GroupCommit[OutcomeBatch, OutcomeResult] = GroupCommit(self._write_outcomes)

    def prediction(
        self, prediction_id: str | None, id_keyword: dict[str, Any], **fields: Any
    ) -> LogResult:
        state, batch = self._single(prediction_id, id_keyword, self.handle.writer_state, fields)
        if state.pending:  # the model's first rows: stored on their own, settling the model
            return store_predictions(self.handle.engine, state, batch, self.handle.now_us())
        return self._predictions.submit(batch)

    async def prediction_async(
        self, prediction_id: str | None, id_keyword: dict[str, Any], **fields: Any
    ) -> LogResult:
        state = self.handle.cached
        if state is None or state.spec.task is None or state.pending:  # reads the database
            state = await asyncio.to_thread(self.handle.writer_state, fields["prediction"])
        known = state
        _, batch = self._single(prediction_id, id_keyword, lambda _: known, fields)
        if state.pending:
            return await asyncio.to_thread(
                store_predictions, self.handle.engine, state, batch, self.handle.now_us()
            )
        return await self._predictions.submit_async(batch)

    def _single(
        self,
        prediction_id: str | None,
        id_keyword: dict[str, Any],
        state_of: Any,
        fields: dict[str, Any],
    ) -> tuple[ModelState, PredictionBatch]:
        pid = single_id(prediction_id, id_keyword)
        state: ModelState = state_of(fields["prediction"])
        batch = single_prediction(
            state.spec, self.handle.now_us(), prediction_id=pid or new_ids(1)[0], **fields
        )
        return state, batch

    def predictions(self, rows: Any) -> LogResult:
        frame = to_frame(rows)
        if len(frame) == 0:
            return LogResult(0, 0, 0, 0, [])
        if "prediction" not in frame:
            raise ValidationError("is required", field="prediction", row=0)
        state = self.handle.writer_state(frame["prediction"].iloc[0])
        now = self.handle.now_us()
        return store_predictions(
            self.handle.engine, state, prediction_batch(frame, state.spec, now), now
        )

    def outcome(
        self, prediction_id: str | None, id_keyword: dict[str, Any], **fields: Any
    ) -> OutcomeResult:
        pid = single_id(prediction_id, id_keyword)
        if pid is None:
            raise ValidationError("is required", field="prediction_id")
        row = {"prediction_id": pid, **{k: v for k, v in fields.items() if k != "timestamp"}}
        if fields.get("timestamp") is not None:
            row["timestamp"] = fields["timestamp"]
        try:
            state, batch = self._outcome_batch(to_frame([row]))
        except ValidationError as exc:  # one outcome: no row to name
            raise ValidationError(exc.message, field=exc.field) from None
        if state.pending:
            return store_outcomes(self.handle.engine, state, batch, self.handle.now_us())
        return self._outcomes.submit(batch)

    def outcomes(self, rows: Any) -> OutcomeResult:
        frame = to_frame(rows)
        if len(frame) == 0:
            return OutcomeResult(0, 0, 0)
        state, batch = self._outcome_batch(frame)
        return store_outcomes(self.handle.engine, state, batch, self.handle.now_us())

    def _outcome_batch(self, frame: Any) -> tuple[ModelState, OutcomeBatch]:
        """Validated outcomes (settling the model's task from them if no prediction did)."""
        state = self.handle.writer_state()
        if state.spec.task is None:
            if "actual" not in frame or frame["actual"].isna().all():
                raise ValidationError(
                    "the model's task is not known yet: log a prediction first, declare task=, "
                    "or give an actual",
                    field="actual",
                )
            actual = frame["actual"].dropna().iloc[0]
            if isinstance(actual, dict) and len(actual) == 1:
                actual = actual[next(iter(actual))]
            state = self.handle.writer_state(actual)
        return state, outcome_batch(frame, state.spec, self.handle.now_us())

    def _write_predictions(
        self, batches: Sequence[PredictionBatch]
    ) -> list[LogResult | BaseException]:
        state = self.handle.writer_state()  # settled: the first rows of a model are not grouped
        return store_prediction_groups(self.handle.engine, state, batches, self.handle.now_us())

    def _write_outcomes(
        self, batches: Sequence[OutcomeBatch]
    ) -> list[OutcomeResult | BaseException]:
        return store_outcome_groups(
            self.handle.engine, self.handle.writer_state(), batches, self.handle.now_us()
        )


def single_id(prediction_id: str | None, id_keyword: dict[str, Any]) -> str | None:
    """The prediction id from ``prediction_id=`` or the one ``*_id=`` keyword."""
    unknown = [k for k in id_keyword if not k.endswith("_id")]
    if unknown:
        raise TypeError(f"unexpected keyword argument {unknown[0]!r}")
    if len(id_keyword) > 1 or (id_keyword and prediction_id is not None):
        raise ValidationError(
            "give the prediction id once (prediction_id= or one *_id= keyword)",
            field="prediction_id",
        )
    value = prediction_id if prediction_id is not None else next(iter(id_keyword.values()), None)
    if value is None:
        return None
    return check_prediction_id(value)
