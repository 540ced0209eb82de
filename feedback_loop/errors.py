"""Exceptions raised at feedback-loop's boundaries.

Every error that comes from bad input names where the problem is: the row (for bulk calls)
and the field, so a user can fix the data without guessing.
"""

from __future__ import annotations

from typing import Any


class FeedbackLoopError(Exception):
    """Base class of every error raised by feedback-loop."""


class ValidationError(FeedbackLoopError, ValueError):
    """Input that cannot be stored as given.

    >>> str(ValidationError("must be a number", field="latency_ms", row=3))
    'row 3, field latency_ms: must be a number'
    """

    def __init__(self, message: str, *, field: str | None = None, row: int | None = None):
        self.message = message
        self.field = field
        self.row = row
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field is not None:
            where.append(f"field {self.field}")
        return f"{', '.join(where)}: {self.message}" if where else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (_validation_error, (self.message, self.field, self.row))


class DuplicatePredictionError(FeedbackLoopError):
    """A prediction id already stored for this model with different content.

    Re-sending an identical prediction is a safe retry and is not an error.
    """

    def __init__(self, model: str, prediction_ids: list[str]):
        self.model = model
        self.prediction_ids = prediction_ids
        shown = ", ".join(repr(p) for p in prediction_ids[:5])
        more = f" and {len(prediction_ids) - 5} more" if len(prediction_ids) > 5 else ""
        super().__init__(
            f"model {model!r}: prediction id {shown}{more} already stored with different content"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.model, self.prediction_ids))


class UnknownModelError(FeedbackLoopError, LookupError):
    """The named model has never been logged to."""


class RejectedVersionError(FeedbackLoopError):
    """Promoting a version the gate rejected, without ``force``.

    The gate's verdict is the newest ``gate_passed``/``gate_rejected`` event naming the version;
    promoting it anyway takes ``force=True``, and the override is recorded in the event.
    """

    def __init__(self, version: int, verdict: str):
        self.version = version
        self.verdict = verdict
        super().__init__(
            f"version {version} was rejected by the gate ({verdict}); "
            "promote it with force to override"
        )

    def __reduce__(self) -> tuple[Any, ...]:  # crosses process pools (the demo's replays)
        return (type(self), (self.version, self.verdict))


def _validation_error(message: str, field: str | None, row: int | None) -> ValidationError:
    """Rebuilds a pickled ``ValidationError`` (its ``field`` and ``row`` are keywords)."""
    return ValidationError(message, field=field, row=row)
