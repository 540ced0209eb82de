"""Model names: one rule for every face (library, CLI, server, client).

A name becomes a folder of the artifact store and a path segment of the API, so it must not be
able to name another folder (``..``, separators) or carry characters that break a path, a log
line or a database (control characters, lone surrogates).
"""

from __future__ import annotations

import unicodedata

from feedback_loop.errors import ValidationError

MAX_MODEL_NAME = 200
NAME_RULE = (
    f"must be 1 to {MAX_MODEL_NAME} characters, not only spaces, not '.' or '..', "
    "without '/', '\\' or control characters"
)


def check_model_name(name: object) -> str:
    """``name`` if it is a valid model name; a ``ValidationError`` naming ``model_name``
    otherwise."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_MODEL_NAME:
        raise ValidationError(NAME_RULE, field="model_name")
    if name in (".", "..") or "/" in name or "\\" in name:
        raise ValidationError(NAME_RULE, field="model_name")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        raise ValidationError(NAME_RULE, field="model_name")
    return name
