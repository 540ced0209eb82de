"""JSON responses that accept what the library returns: numpy scalars, datetimes and NaN.

Metric dicts carry numpy numbers and an undefined metric may be NaN; JSON has no NaN, so it
becomes ``null``, as the library documents for undefined metrics.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
from starlette.responses import JSONResponse


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, datetime | date):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    return str(value)


class Reply(JSONResponse):
    """The app's JSON response: compact, NaN-free."""

    def render(self, content: Any) -> bytes:
        return json.dumps(
            jsonable(content), ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode()


def reply(content: Any, status_code: int = 200) -> Reply:
    return Reply(content, status_code=status_code)
