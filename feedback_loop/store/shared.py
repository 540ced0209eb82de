"""One engine (and one schema check) per database URL and process, shared by every loop."""

from __future__ import annotations

import threading

from sqlalchemy import Engine

from feedback_loop.store.engine import make_engine
from feedback_loop.store.migrate import ensure_schema

_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def engine_for(url: str | None) -> Engine:
    """The process's engine for ``url`` (``None``: the default database), migrated once."""
    key = url or ""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = make_engine(url)
            ensure_schema(engine)
            _ENGINES[key] = engine
        return engine


def dispose_engines() -> None:
    """Close every pooled connection this process opened (tests and short scripts)."""
    with _ENGINES_LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()
