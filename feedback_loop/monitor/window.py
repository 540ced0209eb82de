"""Reading a window of the log for monitoring: its rows and features, as arrays."""

from __future__ import annotations

import numpy as np
from sqlalchemy import Engine

from feedback_loop.collect.handle import ModelHandle
from feedback_loop.collect.recording import ModelState
from feedback_loop.core.timeutil import Window, resolve_window
from feedback_loop.store.features import WindowFeatures, read_features
from feedback_loop.store.reader import WindowFilter, read_scores


def keys_of_codes(state: ModelState, codes: np.ndarray) -> np.ndarray:
    """Label codes back to their stored keys (``'"cat"'``, ``'1'``); -1 (thumbs down) and any
    other code without a key (the unlabeled sentinel) are None. One lookup array, indexed once."""
    codes = np.asarray(codes, dtype=np.int64)
    low = min(min(state.codes.values(), default=0), 0)
    high = max(state.codes.values(), default=-1)
    unknown = high - low + 1  # the last slot answers every code without a key
    table = np.full(unknown + 1, None, dtype=object)
    for key, code in state.codes.items():
        table[code - low] = key
    inside = (codes >= low) & (codes <= high)
    return table[np.where(inside, codes - low, unknown)]


def window_features(engine: Engine, window: WindowFilter, *, regression: bool) -> WindowFeatures:
    with engine.connect() as conn, conn.begin():
        return read_features(conn, window, regression=regression)


def window_scores(engine: Engine, window: WindowFilter) -> np.ndarray:
    """The logged scores of a window (only that column read)."""
    with engine.connect() as conn, conn.begin():
        return read_scores(conn, window)


def window_filter(
    handle: ModelHandle, window: Window, version: str | int | None = None
) -> WindowFilter:
    """The rows of ``window`` (a duration ending now, a pair, ``'all'``), of one version."""
    state = handle.read_state()
    start, end = resolve_window(window, handle.clock.now())
    return WindowFilter(state.id, start, end, None if version is None else str(version))


def read_window(
    handle: ModelHandle, window: Window, version: str | int | None = None
) -> WindowFeatures:
    """The window's rows with their features."""
    regression = handle.read_state().spec.task == "regression"
    return window_features(
        handle.engine, window_filter(handle, window, version), regression=regression
    )
