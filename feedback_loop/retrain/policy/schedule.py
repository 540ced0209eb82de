"""Cron expressions and durations for time-based retraining.

A scheduled rule needs only two questions answered: when is the next cron time after a moment,
and when was the last one before it. Answering them directly (minute resolution, UTC) keeps the
policy module free of a scheduler dependency and makes every answer easy to check by hand.

>>> from datetime import UTC, datetime
>>> monday_3am = CronSchedule.parse("0 3 * * 1")
>>> monday_3am.next_after(datetime(2024, 10, 18, 12, 0, tzinfo=UTC)).isoformat()
'2024-10-21T03:00:00+00:00'
>>> parse_duration("36h"), format_duration(parse_duration("14d"))
(datetime.timedelta(days=1, seconds=43200), '2w')
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

_MINUTE = timedelta(minutes=1)
_DAY = timedelta(days=1)
# (name, lowest, highest); day-of-week accepts 7 as a second spelling of Sunday.
_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
)
_LONGEST_MONTH = {m: 29 if m == 2 else calendar.monthrange(2001, m)[1] for m in range(1, 13)}
# A feasible schedule matches within one 400-year Gregorian cycle; searching further is a bug.
_HORIZON_YEARS = 400
_NUMBER = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class CronSchedule:
    """A parsed 5-field cron expression: minute hour day-of-month month day-of-week.

    Build it with :meth:`parse`. Times are whole minutes in UTC. Day of month and day of week
    follow Vixie cron: when both fields are restricted a day matches if *either* does; when
    either field starts with ``*`` (including ``*/n``) both must match.

    >>> s = CronSchedule.parse("30 9 1,15 * 5")   # 09:30 on the 1st, the 15th and Fridays
    >>> s.next_after(datetime(2024, 11, 2, tzinfo=UTC)).isoformat()
    '2024-11-08T09:30:00+00:00'
    >>> s.previous_at_or_before(datetime(2024, 11, 2, tzinfo=UTC)).isoformat()
    '2024-11-01T09:30:00+00:00'
    """

    expr: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday ... 6 = Saturday
    dom_star: bool
    dow_star: bool

    @classmethod
    def parse(cls, expr: str) -> CronSchedule:
        """Parse ``expr``; a ``ValueError`` names the field that is wrong.

        >>> CronSchedule.parse("0 3 * * 8")
        Traceback (most recent call last):
        ...
        ValueError: day-of-week '8': 8 is out of range 0-7
        """
        if not isinstance(expr, str):
            raise ValueError(f"a cron expression must be a string, not {type(expr).__name__}")
        parts = expr.split()
        if len(parts) != 5:
            raise ValueError(
                "a cron expression has 5 fields (minute hour day-of-month month day-of-week),"
                f" got {len(parts)} in {expr!r}"
            )
        sets = [
            _parse_field(text, name, low, high)
            for text, (name, low, high) in zip(parts, _FIELDS, strict=True)
        ]
        minutes, hours, days, months, weekdays = sets
        schedule = cls(
            expr=" ".join(parts),
            minutes=tuple(sorted(minutes)),
            hours=tuple(sorted(hours)),
            days=frozenset(days),
            months=frozenset(months),
            weekdays=frozenset(d % 7 for d in weekdays),
            dom_star=parts[2].startswith("*"),
            dow_star=parts[4].startswith("*"),
        )
        schedule._check_feasible(parts[2], parts[3])
        return schedule

    def __str__(self) -> str:
        return self.expr

    def matches(self, moment: datetime) -> bool:
        """Whether ``moment``'s minute is a time of this schedule.

        >>> CronSchedule.parse("*/15 * * * *").matches(datetime(2024, 1, 1, 0, 45, tzinfo=UTC))
        True
        """
        t = _utc(moment)
        return (
            t.minute in self.minutes
            and t.hour in self.hours
            and t.month in self.months
            and self._day_matches(t.date())
        )

    def next_after(self, moment: datetime) -> datetime:
        """The first schedule time strictly after ``moment``."""
        start = _floor_minute(_utc(moment))
        try:
            return self._search_forward(start + _MINUTE)
        except OverflowError:
            raise ValueError(f"no time of {self.expr!r} after {start.isoformat()}") from None

    def previous_at_or_before(self, moment: datetime) -> datetime:
        """The last schedule time at or before ``moment`` (seconds are ignored)."""
        start = _floor_minute(_utc(moment))
        try:
            return self._search_backward(start)
        except OverflowError:
            raise ValueError(f"no time of {self.expr!r} before {start.isoformat()}") from None

    def _day_matches(self, day: date) -> bool:
        dom = day.day in self.days
        dow = (day.weekday() + 1) % 7 in self.weekdays
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow

    def _search_forward(self, start: datetime) -> datetime:
        day, hour, minute = start.date(), start.hour, start.minute
        while day.year <= start.year + _HORIZON_YEARS:
            if day.month not in self.months:
                day, hour, minute = _first_of_next_month(day), 0, 0
                continue
            if not self._day_matches(day):
                day, hour, minute = day + _DAY, 0, 0
                continue
            i = bisect_left(self.hours, hour)
            if i == len(self.hours):
                day, hour, minute = day + _DAY, 0, 0
                continue
            if self.hours[i] != hour:
                hour, minute = self.hours[i], 0
            j = bisect_left(self.minutes, minute)
            if j == len(self.minutes):
                hour, minute = hour + 1, 0
                continue
            return datetime(day.year, day.month, day.day, hour, self.minutes[j], tzinfo=UTC)
        raise ValueError(f"no time of {self.expr!r} within {_HORIZON_YEARS} years")

    def _search_backward(self, start: datetime) -> datetime:
        day, hour, minute = start.date(), start.hour, start.minute
        while day.year >= start.year - _HORIZON_YEARS:
            if day.month not in self.months:
                day, hour, minute = day.replace(day=1) - _DAY, 23, 59
                continue
            if not self._day_matches(day):
                day, hour, minute = day - _DAY, 23, 59
                continue
            i = bisect_right(self.hours, hour)
            if i == 0:
                day, hour, minute = day - _DAY, 23, 59
                continue
            if self.hours[i - 1] != hour:
                hour, minute = self.hours[i - 1], 59
            j = bisect_right(self.minutes, minute)
            if j == 0:
                hour, minute = hour - 1, 59
                continue
            return datetime(day.year, day.month, day.day, hour, self.minutes[j - 1], tzinfo=UTC)
        raise ValueError(f"no time of {self.expr!r} within {_HORIZON_YEARS} years")

    def _check_feasible(self, dom_text: str, month_text: str) -> None:
        # Only "specific days AND every weekday" can name dates that never exist (Feb 30):
        # a restricted day-of-week otherwise recurs in every month.
        if not (self.dow_star and not self.dom_star):
            return
        if any(d <= _LONGEST_MONTH[m] for m in self.months for d in self.days):
            return
        raise ValueError(f"day-of-month {dom_text!r} never occurs in month {month_text!r}")


def _parse_field(text: str, name: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ValueError(f"{name} {text!r}: empty item in the list")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            step = _number(step_text, name, text)
            if step < 1:
                raise ValueError(f"{name} {text!r}: the step must be at least 1")
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first_text, _, last_text = base.partition("-")
            first, last = _number(first_text, name, text), _number(last_text, name, text)
            if first > last:
                raise ValueError(f"{name} {text!r}: range {first}-{last} runs backwards")
        elif slash:
            raise ValueError(
                f"{name} {text!r}: a step needs '*' or a range before it, such as '*/{step}'"
                f" or '{base}-{high}/{step}'"
            )
        else:
            first = last = _number(base, name, text)
        for value in (first, last):
            if not low <= value <= high:
                raise ValueError(f"{name} {text!r}: {value} is out of range {low}-{high}")
        values.update(range(first, last + 1, step))
    return values


def _number(text: str, name: str, field: str) -> int:
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"{name} {field!r}: {text!r} is not a number")
    return int(text)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; pass an aware UTC datetime")
    return moment.astimezone(UTC)


def _floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _first_of_next_month(day: date) -> date:
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhdw])\s*")


def parse_duration(text: str) -> timedelta:
    """``'30m'``, ``'12h'``, ``'7d'``, ``'2w'`` (also ``'45s'``, ``'1.5h'``, ``'0s'``).

    >>> parse_duration("90m")
    datetime.timedelta(seconds=5400)
    """
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration; use a number and a unit s, m, h, d or w, such as '7d'"
        )
    micros = Decimal(match.group(1)) * _UNITS[match.group(2)] * 1_000_000
    return timedelta(microseconds=int(micros.to_integral_value()))


def format_duration(span: timedelta) -> str:
    """The shortest exact spelling that :func:`parse_duration` reads back.

    >>> format_duration(timedelta(hours=36)), format_duration(timedelta(seconds=1.5))
    ('36h', '1.5s')
    """
    micros = span // timedelta(microseconds=1)
    if micros < 0:
        return "-" + format_duration(-span)
    if micros == 0:
        return "0s"
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit] * 1_000_000
        if micros % size == 0:
            return f"{micros // size}{unit}"
    seconds, fraction = divmod(micros, 1_000_000)
    return f"{seconds}.{fraction:06d}".rstrip("0") + "s"


def human_duration(span: timedelta) -> str:
    """A rough reading for messages: the two largest units, truncated.

    >>> human_duration(timedelta(days=7, hours=2, minutes=59))
    '7d 2h'
    """
    if span < timedelta(0):
        return "-" + human_duration(-span)
    seconds = int(span.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")) if n]
    return " ".join(parts[:2]) or "0s"
