"""The shape every streaming drift detector shares, and a helper to run one over a stream.

A detector consumes one value per step (usually a 0/1 error indicator from a model whose
ground truth has arrived) and exposes two flags that describe only the *last* update:
``drift_detected`` and ``warning_detected``. Keeping the flags per-update, rather than
latched, lets callers react exactly once per detection; the detector then restarts its own
statistics so that the next change can be found without caller intervention.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

__all__ = ["Detector", "DriftDetector", "run"]


@runtime_checkable
class Detector(Protocol):
    """Structural type of a streaming drift detector (third-party detectors may match it)."""

    @property
    def drift_detected(self) -> bool: ...

    def update(self, x: float) -> None: ...


class DriftDetector(ABC):
    """Base class holding the bookkeeping common to all detectors.

    Subclasses implement :meth:`update` and :meth:`_reset_stats`. ``update`` must clear or
    set ``_drift`` and ``_warning`` on every call and increment ``_n_seen``; on a drift it
    increments ``_n_detections`` and calls ``_reset_stats()`` (or, for window-based
    detectors, shrinks the window) so monitoring continues on the new concept.
    """

    __slots__ = ("_drift", "_n_detections", "_n_seen", "_warning")

    def __init__(self) -> None:
        self._n_seen = 0
        self._n_detections = 0
        self._drift = False
        self._warning = False

    @abstractmethod
    def update(self, x: float) -> None:
        """Feed one observation."""

    @abstractmethod
    def _reset_stats(self) -> None:
        """Forget the running statistics, keeping the lifetime counters."""

    def reset(self) -> None:
        """Return the detector to its freshly constructed state."""
        self._n_seen = 0
        self._n_detections = 0
        self._drift = False
        self._warning = False
        self._reset_stats()

    @property
    def drift_detected(self) -> bool:
        """Whether the most recent update signalled a drift."""
        return self._drift

    @property
    def warning_detected(self) -> bool:
        """Whether the most recent update is in the warning zone (always False without one)."""
        return self._warning

    @property
    def n_seen(self) -> int:
        """Number of updates since construction or the last :meth:`reset`."""
        return self._n_seen

    @property
    def n_detections(self) -> int:
        """Number of drifts signalled since construction or the last :meth:`reset`."""
        return self._n_detections

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_seen={self._n_seen}, n_detections={self._n_detections})"


def run(detector: Detector, stream: Iterable[float]) -> list[int]:
    """Feed ``stream`` to ``detector`` and return the 0-based indices where drift was signalled.

    >>> from feedback_loop.stats.drift.detectors import PageHinkley
    >>> run(PageHinkley(threshold=5.0), [0.0] * 100 + [1.0] * 100)
    [105]
    """
    update = detector.update
    hits: list[int] = []
    for i, x in enumerate(stream):
        update(float(x))
        if detector.drift_detected:
            hits.append(i)
    return hits


def check_open_unit(name: str, value: float) -> float:
    """Validate a probability-like parameter in the open interval (0, 1)."""
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return float(value)


def check_positive(name: str, value: float) -> float:
    """Validate a strictly positive real parameter."""
    if not value > 0.0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return float(value)


def check_min_int(name: str, value: int, minimum: int) -> int:
    """Validate an integer parameter with a lower bound (bools are rejected)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value
