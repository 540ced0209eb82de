"""Model names: one rule for every face (library, CLI, server, client).

A name becomes a folder of the artifact store and a path segment of the API, so it must not be
able to name another folder (``..``, separators) or carry characters that break a path, a log
line or a database (control characters, lone surrogates).
"""

from __future__ import annotations

import unicodedata

from feedback_loop.core.limits import NUL_MESSAGE
from feedback_loop.errors import ValidationError

MAX_MODEL_NAME = 200


def check_model_name(name: object) -> str:
    """``name`` if it is a valid model name; a ``ValidationError`` naming ``model_name``
    otherwise: 1 to 200 characters, not only spaces, not ``.`` or ``..``, without ``/``,
    ``\\`` or control characters."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_MODEL_NAME:
        problem = f"must be a string of 1 to {MAX_MODEL_NAME} characters, not only spaces"
    elif name in (".", ".."):
        problem = "must not be '.' or '..'"
    elif "/" in name or "\\" in name:
        problem = "must not contain '/' or '\\'"
    elif "\x00" in name:
        problem = NUL_MESSAGE
    elif any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        problem = "must not contain control characters or lone surrogates"
    else:
        return name
    raise ValidationError(problem, field="model_name")
