"""The limits every logged value must keep, checked before anything is written.

Whatever is stored must read back on both databases and through every face (library, HTTP,
dashboard). So, on every ingest path alike:

* times lie in ``[1970-01-01, 2262-04-11)`` UTC: hourly blocks need times from the epoch on,
  and pandas holds times as int64 nanoseconds, which end on 2262-04-11;
* strings fit their columns (see ``store/tables.py``): ids 200 characters, versions 100, tag keys
  100 (the segment filter's limit), tag values and class labels 200, feature names 200;
* strings hold neither NUL (PostgreSQL text cannot) nor a lone UTF-16 surrogate (not Unicode:
  it cannot be encoded as UTF-8, so reading it back fails);
* a model has at most ``MAX_CLASSES`` distinct class labels.

Bulk checks look at a whole column at once: one scan of the joined text finds nothing in the
common case, and only a column that holds a problem is searched row by row for the message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from feedback_loop.errors import ValidationError

MIN_TIME_US = 0  # 1970-01-01T00:00:00Z
MAX_TIME_US = 9_223_286_400_000_000  # 2262-04-11T00:00:00Z, excluded
TIME_RANGE_MESSAGE = "must be from 1970-01-01 up to (not including) 2262-04-11, UTC"

MAX_ID_LENGTH = 200
MAX_VERSION_LENGTH = 100
MAX_TAG_KEY_LENGTH = 100
MAX_TAG_VALUE_LENGTH = 200
MAX_LABEL_LENGTH = 200
MAX_FEATURE_NAME_LENGTH = 200
MAX_CLASSES = 1000
# The declarations, the registry and the audit trail (``store/tables.py``'s widths).
MAX_ALIAS_LENGTH = 100
MAX_REFERENCE_NAME_LENGTH = 100
MAX_KIND_LENGTH = 60
MAX_ACTOR_LENGTH = 200
MAX_KEY_NAME_LENGTH = 200  # label_key, score_key
MAX_PRIMARY_METRIC_LENGTH = 40
MAX_REASON_LENGTH = 2000  # a reason kept in the audit trail (any text: newlines allowed)

NUL_MESSAGE = "must not contain the NUL character (PostgreSQL text cannot hold it)"
SURROGATE_MESSAGE = "must not contain a lone surrogate (\\ud800-\\udfff is not Unicode text)"

_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")
# In JSON written with ``ensure_ascii`` (as ``canonical_json`` writes it), NUL and lone surrogates
# appear as escapes. Escaped backslashes and valid surrogate pairs are matched (and skipped) first,
# so group 1 is set only for a real NUL or lone surrogate.
_JSON_BAD = re.compile(
    r"\\\\|\\ud[89ab][0-9a-f]{2}\\ud[c-f][0-9a-f]{2}|(\\u0000|\\ud[89a-f][0-9a-f]{2})"
)


def check_time(us: int, *, field: str = "timestamp", row: int | None = None) -> None:
    """One time in epoch microseconds (any Python int) within the stored range."""
    if not MIN_TIME_US <= us < MAX_TIME_US:
        raise ValidationError(TIME_RANGE_MESSAGE, field=field, row=row)


def check_time_range(ts: np.ndarray, *, field: str = "timestamp", single: bool = False) -> None:
    """Refuse epoch microseconds outside the stored range (the row named for batches)."""
    if len(ts) == 0:
        return
    bad = (ts < MIN_TIME_US) | (ts >= MAX_TIME_US)
    if bad.any():
        raise ValidationError(
            TIME_RANGE_MESSAGE, field=field, row=None if single else int(np.argmax(bad))
        )


def seconds_in_range(seconds: np.ndarray) -> np.ndarray:
    """Whether epoch seconds (finite floats) fall in the range: checked before they are scaled to
    microseconds, where a huge number would overflow int64 silently."""
    return (seconds >= MIN_TIME_US / 1e6) & (seconds < MAX_TIME_US / 1e6)


def _bad_char_message(text: str) -> str:
    return NUL_MESSAGE if "\x00" in text else SURROGATE_MESSAGE


def check_text(value: str, *, field: str, row: int | None = None) -> None:
    """One string: no NUL, no lone surrogate."""
    found = _BAD_CHAR.search(value)
    if found is not None:
        raise ValidationError(_bad_char_message(found.group()), field=field, row=row)


def check_bounded(
    value: object, *, field: str, max_length: int, min_length: int = 1, row: int | None = None
) -> str:
    """One string field of a declaration, the registry or the audit trail: a string of
    ``min_length`` to ``max_length`` characters, without NUL or lone surrogates."""
    if not isinstance(value, str):
        raise ValidationError("must be a string", field=field, row=row)
    if len(value) > max_length:
        raise ValidationError(f"must be at most {max_length} characters", field=field, row=row)
    if len(value) < min_length:
        raise ValidationError(f"must be at least {min_length} character(s)", field=field, row=row)
    check_text(value, field=field, row=row)
    return value


def check_reason(reason: object, *, field: str = "reason") -> str:
    """A reason kept in the audit trail: the one rule of the library, the API and the
    dashboard (at most ``MAX_REASON_LENGTH`` characters, any text but NUL and lone
    surrogates; may be empty)."""
    return check_bounded(reason, field=field, max_length=MAX_REASON_LENGTH, min_length=0)


def check_actor(actor: object) -> str:
    """Who caused an event (a key's name, a worker's, ``user``)."""
    return check_bounded(actor, field="actor", max_length=MAX_ACTOR_LENGTH)


def check_event(kind: object, *, reason: object, actor: object, version: object = None) -> None:
    """An event of the audit trail fits its columns: kind 60 characters, actor 200, version
    100, reason ``MAX_REASON_LENGTH``; no NUL or lone surrogate anywhere."""
    check_bounded(kind, field="kind", max_length=MAX_KIND_LENGTH)
    check_reason(reason)
    check_actor(actor)
    if version is not None:
        check_bounded(version, field="version", max_length=MAX_VERSION_LENGTH)


def check_prediction_id(
    value: object, *, field: str = "prediction_id", row: int | None = None
) -> str:
    """One prediction id given on its own: a string or an integer (taken as its digits; not a
    bool), of 1 to ``MAX_ID_LENGTH`` characters, without NUL or lone surrogates."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValidationError(
            f"must be a string or an integer, got {type(value).__name__}", field=field, row=row
        )
    return check_bounded(str(value), field=field, max_length=MAX_ID_LENGTH, row=row)


def check_texts(
    values: Sequence[str | None],
    *,
    field: str,
    max_length: int | None = None,
    single: bool = False,
) -> None:
    """A column of plain strings (``None`` allowed): characters and, if given, length."""
    joined = _joined(values)
    if not joined:
        return
    if "\x00" in joined or (not joined.isascii() and _BAD_CHAR.search(joined)):
        row = next(i for i, v in enumerate(values) if v is not None and _BAD_CHAR.search(v))
        check_text(values[row] or "", field=field, row=None if single else row)
    if max_length is not None and len(joined) > max_length:
        # lengths counted by Arrow, in C (code points, as ``len``)
        lengths = pc.utf8_length(pa.array(values, pa.large_string())).to_numpy(zero_copy_only=False)
        too_long = np.nan_to_num(lengths.astype(np.float64)) > max_length
        if too_long.any():
            raise ValidationError(
                f"must be at most {max_length} characters",
                field=field,
                row=None if single else int(np.argmax(too_long)),
            )


def _joined(values: Sequence[str | None]) -> str:
    """The non-empty strings of a column, one scan of which finds what any of them holds
    (joined without a Python loop: ``filter(None, ...)`` drops the missing ones in C)."""
    return "\n".join(filter(None, values))


def check_json_texts(values: Sequence[str | None], *, field: str, single: bool = False) -> None:
    """A column of canonical JSON texts: no NUL and no lone surrogate in any string inside."""
    joined = _joined(values)
    if "\\u0000" not in joined and "\\ud" not in joined:
        return
    for i, text in enumerate(values):
        if text is not None:
            check_json_text(text, field=field, row=None if single else i)


def check_json_text(text: str, *, field: str, row: int | None = None) -> None:
    """One canonical JSON text (see ``check_json_texts``)."""
    if "\\u0000" not in text and "\\ud" not in text:
        return
    for match in _JSON_BAD.finditer(text):
        if match.group(1) is not None:
            message = NUL_MESSAGE if match.group(1) == "\\u0000" else SURROGATE_MESSAGE
            raise ValidationError(message, field=field, row=row)


_LONG_KEY = re.compile(r'"((?:[^"\\]|\\.){' + str(MAX_FEATURE_NAME_LENGTH + 1) + r',})":')


def check_feature_json(values: Sequence[str | None]) -> None:
    """Features given as dicts (canonical JSON objects): their names fit the limit. A regex on
    the escaped text finds candidates (an escaped key is never shorter than the key), which are
    then read to be sure."""
    joined = _joined(values)
    if len(joined) <= MAX_FEATURE_NAME_LENGTH or _LONG_KEY.search(joined) is None:
        return
    for i, text in enumerate(values):
        if text is not None and _LONG_KEY.search(text):
            check_feature_names(_keys(json.loads(text)), row=i)


def _keys(value: Any) -> list[str]:
    """The keys of a JSON object's objects, at any depth."""
    if isinstance(value, dict):
        return [*value, *(k for v in value.values() for k in _keys(v))]
    if isinstance(value, list):
        return [k for v in value for k in _keys(v)]
    return []


def check_tags(values: Sequence[str | None], *, single: bool = False) -> None:
    """Tags (canonical JSON objects): key and string value lengths, checked once per distinct
    text (tags name segments, so a column holds few distinct texts)."""
    check_json_texts(values, field="tags", single=single)
    present = set(values)
    present.discard(None)
    if not present or max(map(len, present)) <= MAX_TAG_KEY_LENGTH:  # type: ignore[arg-type]
        return
    for text in present:
        problem = tag_problem(json.loads(text))  # type: ignore[arg-type]
        if problem is not None:
            row = None if single else values.index(text)
            raise ValidationError(problem, field="tags", row=row)


def tag_problem(tags: dict[str, Any]) -> str | None:
    """What makes one row's tags too long to store, or None."""
    for key, value in tags.items():
        if len(key) > MAX_TAG_KEY_LENGTH:
            return f"tag key {key[:20]!r}... is longer than {MAX_TAG_KEY_LENGTH} characters"
        if isinstance(value, str) and len(value) > MAX_TAG_VALUE_LENGTH:
            return f"tag {key!r} has a value longer than {MAX_TAG_VALUE_LENGTH} characters"
    return None


def check_feature_names(names: Iterable[str], *, row: int | None = None) -> None:
    """Feature names: strings that fit the feature column and hold no NUL or lone surrogate."""
    for name in names:
        if len(name) > MAX_FEATURE_NAME_LENGTH:
            raise ValidationError(
                f"feature name {name[:20]!r}... is longer than {MAX_FEATURE_NAME_LENGTH} "
                "characters",
                field="features",
                row=row,
            )
        check_text(name, field="features", row=row)


def first_bad_label(keys: Iterable[str]) -> tuple[str, str] | None:
    """Class labels about to be coded (as their JSON keys): the first that may not be stored and
    why, or None. Only labels new to a model are checked."""
    for key in keys:
        problem = label_problem(json.loads(key))
        if problem is not None:
            return key, problem
    return None


def label_problem(label: Any) -> str | None:
    """What keeps one class label from being stored, or None."""
    if not isinstance(label, str):
        return None
    if len(label) > MAX_LABEL_LENGTH:
        return f"a label is longer than {MAX_LABEL_LENGTH} characters"
    found = _BAD_CHAR.search(label)
    return None if found is None else _bad_char_message(found.group())
