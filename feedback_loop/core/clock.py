"""Where "now" comes from.

Every timestamp feedback-loop fills in by itself is read from a clock, so tests, backtests and
the demo can replace the wall clock and replay months of production in seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Anything with a ``now()`` returning a timezone-aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to.

    >>> clock = ManualClock(datetime(2024, 1, 1, tzinfo=UTC))
    >>> clock.advance(timedelta(days=1)).isoformat()
    '2024-01-02T00:00:00+00:00'
    """

    def __init__(self, start: datetime):
        self._now = _aware(start)

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> datetime:
        self._now = _aware(moment)
        return self._now

    def advance(self, step: timedelta) -> datetime:
        self._now = self._now + step
        return self._now


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
