"""Timing helpers shared by the benchmarks (imported as a sibling module, as ``pg_schema``)."""

from __future__ import annotations

import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any


def wall_times(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """The wall-clock seconds of ``repeat`` calls of ``fn``, and what the last call returned."""
    times: list[float] = []
    result: Any = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(best, median) wall-clock seconds over ``repeat`` calls."""
    times, _ = wall_times(fn, repeat)
    return min(times), statistics.median(times)


def timed_with_peak(fn: Callable[[], Any], repeat: int) -> tuple[float, int, Any]:
    """Best wall time over ``repeat`` calls, the tracemalloc peak (bytes) of one more call (not
    timed: tracing slows it down), and what the last timed call returned."""
    times, result = wall_times(fn, repeat)
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return min(times), peak, result
