"""Timestamps and windows.

Storage keeps every time as integer microseconds since the Unix epoch (UTC): exact, compact,
and compared the same way on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from feedback_loop.core.limits import TIME_RANGE_MESSAGE, seconds_in_range
from feedback_loop.errors import ValidationError

US_PER_S = 1_000_000
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def to_us(value: Any, *, field: str = "timestamp", row: int | None = None) -> int:
    """One timestamp to epoch microseconds.

    Accepts an aware or naive (taken as UTC) datetime, a date, an ISO-8601 string, or a number
    of seconds since the epoch.

    >>> to_us("1970-01-01T00:00:01Z")
    1000000
    """
    if isinstance(value, bool):
        raise ValidationError("must be a time, not a boolean", field=field, row=row)
    if isinstance(value, int | float | np.integer | np.floating):
        if not np.isfinite(value):
            raise ValidationError("must be a finite number of seconds", field=field, row=row)
        if abs(float(value)) > 1e15:  # seconds: far outside any time that can be stored
            raise ValidationError(TIME_RANGE_MESSAGE, field=field, row=row)
        return round(float(value) * US_PER_S)
    if isinstance(value, datetime):
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
        return round(aware.timestamp() * US_PER_S)
    if isinstance(value, date):
        return to_us(datetime(value.year, value.month, value.day, tzinfo=UTC), field=field)
    if isinstance(value, str | np.datetime64 | pd.Timestamp):
        try:
            stamp = pd.Timestamp(value)
        except (ValueError, TypeError) as exc:
            raise ValidationError(f"cannot read {value!r} as a time", field=field, row=row) from exc
        if stamp is pd.NaT:
            raise ValidationError("is not a time", field=field, row=row)
        if stamp.tzinfo is None:
            stamp = stamp.tz_localize("UTC")
        try:
            return int(stamp.value // 1000)
        except OverflowError:  # past 2262 in nanoseconds: read in microseconds instead
            return int(stamp.asm8.astype("datetime64[us]").astype(np.int64))
    raise ValidationError(
        f"must be a datetime, ISO string or epoch seconds, got {type(value).__name__}",
        field=field,
        row=row,
    )


_PARSEABLE = ("string", "datetime", "datetime64", "date", "empty")


def to_us_array(values: pd.Series, default_us: int, *, field: str = "timestamp") -> np.ndarray:
    """A column of timestamps to epoch microseconds; missing values take ``default_us``."""
    if len(values) == 0:
        return np.empty(0, dtype=np.int64)
    if pd.api.types.is_bool_dtype(values.dtype):
        raise ValidationError("must be a time, not a boolean", field=field, row=0)
    if pd.api.types.is_numeric_dtype(values.dtype):
        seconds = values.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(seconds) & ~values.isna().to_numpy()
        if bad.any():
            raise ValidationError(
                "must be a finite number of seconds", field=field, row=int(np.argmax(bad))
            )
        # refused before scaling: a huge number of seconds would wrap around int64 silently
        outside = ~seconds_in_range(seconds) & ~np.isnan(seconds)
        if outside.any():
            raise ValidationError(TIME_RANGE_MESSAGE, field=field, row=int(np.argmax(outside)))
        out = np.rint(seconds * US_PER_S)
        out[np.isnan(out)] = default_us
        return out.astype(np.int64)
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(
        values.dtype
    ):
        parsed = pd.to_datetime(values, utc=True)
    else:
        missing = values.isna().to_numpy()
        if pd.api.types.infer_dtype(values, skipna=True) not in _PARSEABLE:
            # numbers among strings: pandas would read them as nanoseconds, not seconds
            return _element_wise(values, missing, default_us, field)
        try:
            parsed = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
        except (TypeError, ValueError, OverflowError):
            return _element_wise(values, missing, default_us, field)
        bad = parsed.isna().to_numpy() & ~missing
        if bad.any():
            row = int(np.argmax(bad))
            # the element-wise parser names what is wrong with the first bad row, or reads
            # what the vectorised one could not (a time beyond pandas' nanosecond range)
            to_us(values.iloc[row], field=field, row=row)
            return _element_wise(values, missing, default_us, field)
    # microseconds directly: through nanoseconds a time after 2262 would wrap around silently
    out = parsed.dt.tz_convert(None).to_numpy(dtype="datetime64[us]").astype(np.int64)
    out[parsed.isna().to_numpy()] = default_us
    return out


def _element_wise(
    values: pd.Series, missing: np.ndarray, default_us: int, field: str
) -> np.ndarray:
    """Times one by one (mixed types the vectorised parser refuses): each error names its row."""
    out = [default_us if missing[i] else to_us(v, field=field, row=i) for i, v in enumerate(values)]
    # kept within int64 (the range check refuses what is outside the stored range anyway)
    return np.clip(np.array(out, dtype=object), -(2**62), 2**62).astype(np.int64)


def from_us(us: int) -> datetime:
    """Epoch microseconds back to an aware UTC datetime."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(us))


def parse_duration(value: str | timedelta, *, field: str = "window") -> timedelta:
    """``'7d'``, ``'12h'``, ``'30m'``, ``'45s'``, ``'2w'`` or a timedelta.

    >>> parse_duration("36h")
    datetime.timedelta(days=1, seconds=43200)
    """
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise ValidationError("must be a positive duration", field=field)
        return value
    if isinstance(value, str):
        match = _WINDOW.match(value)
        if match:
            seconds = float(match.group(1)) * _UNITS[match.group(2)]
            if seconds > 0:
                return timedelta(seconds=seconds)
    raise ValidationError(
        f"{value!r} is not a duration: use a timedelta or a number with a unit s, m, h, d or w"
        " (for example '7d')",
        field=field,
    )


Window = str | timedelta | tuple[Any, Any] | None


def resolve_window(window: Window, now: datetime) -> tuple[int, int]:
    """A window to a half-open ``[start_us, end_us)`` range of event times.

    ``None`` or ``'all'`` means everything up to now; a duration means the last span up to now;
    a ``(start, end)`` pair is taken as given.
    """
    end = to_us(now) + 1
    if window is None or window == "all":
        return (np.iinfo(np.int64).min // 2, end)
    if isinstance(window, tuple):
        if len(window) != 2:
            raise ValidationError("a window tuple must be (start, end)", field="window")
        start_us = to_us(window[0], field="window start")
        end_us = to_us(window[1], field="window end")
        if end_us <= start_us:
            raise ValidationError("end must be after start", field="window")
        return (start_us, end_us)
    span = parse_duration(window)
    return (end - 1 - int(span.total_seconds() * US_PER_S), end)
