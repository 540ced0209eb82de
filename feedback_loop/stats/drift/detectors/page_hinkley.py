"""Page–Hinkley test for a change in the mean of a real-valued stream.

Page, "Continuous inspection schemes", Biometrika 41 (1954); in the streaming form with a
fading factor used by Gama, Sebastião & Rodrigues, "On evaluating stream learning
algorithms", Machine Learning 90 (2013).

The test accumulates the deviations of each value from the running mean, minus a tolerance
``δ`` that absorbs ordinary noise: ``m_T = α m_{T-1} + (x_T - x̄_T - δ)``. Under a stable
mean ``m_T`` drifts downward; after an increase it climbs. Drift is declared when it has
climbed more than ``λ`` above its historical minimum. The fading factor ``α`` slowly forgets
old deviations so the statistic does not become numb on long streams. Decreases are watched
with the mirrored sum. Memory is O(1), which makes it the cheapest detector here.
"""

from __future__ import annotations

import math
from typing import Literal

from .base import DriftDetector, check_min_int, check_open_unit, check_positive

__all__ = ["PageHinkley"]

Direction = Literal["increase", "decrease", "both"]
_DIRECTIONS: tuple[Direction, ...] = ("increase", "decrease", "both")


class PageHinkley(DriftDetector):
    """Page–Hinkley change detector (no warning zone).

    Args:
        min_instances: Values needed since the last drift before testing (30).
        delta: Tolerated deviation per step, in units of ``x`` (0.005). Larger values make
            the test insensitive to small shifts.
        threshold: ``λ``, how far the cumulative sum must rise above its minimum (50).
            It is in units of ``x`` times steps, so rescale it with the data.
        alpha: Fading factor applied to the cumulative sums (1 - 0.0001).
        direction: ``"increase"`` (default, a rising error), ``"decrease"`` or ``"both"``.

    >>> ph = PageHinkley(threshold=10.0)
    >>> for x in [0.0] * 500 + [1.0] * 50:
    ...     ph.update(x)
    ...     if ph.drift_detected:
    ...         print("drift at", ph.n_seen - 1)
    drift at 510
    """

    __slots__ = (
        "_down",
        "_down_min",
        "_mean",
        "_n",
        "_up",
        "_up_min",
        "_watch_down",
        "_watch_up",
        "alpha",
        "delta",
        "direction",
        "min_instances",
        "threshold",
    )

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1.0 - 0.0001,
        direction: Direction = "increase",
    ) -> None:
        super().__init__()
        self.min_instances = check_min_int("min_instances", min_instances, 1)
        if not delta >= 0.0:
            raise ValueError(f"delta must be >= 0, got {delta!r}")
        self.delta = float(delta)
        self.threshold = check_positive("threshold", threshold)
        if alpha != 1.0:
            check_open_unit("alpha", alpha)
        self.alpha = float(alpha)
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be one of {_DIRECTIONS}, got {direction!r}")
        self.direction: Direction = direction
        self._watch_up = direction != "decrease"
        self._watch_down = direction != "increase"
        self._reset_stats()

    def _reset_stats(self) -> None:
        self._n = 0
        self._mean = 0.0
        self._up = self._up_min = 0.0
        self._down = self._down_min = 0.0

    @property
    def mean(self) -> float:
        """Running mean since the last drift."""
        return self._mean

    def update(self, x: float) -> None:
        """Feed one real value (for example a 0/1 error or a loss)."""
        if not math.isfinite(x):
            raise ValueError(f"PageHinkley expects a finite value, got {x!r}")
        self._n_seen += 1
        self._drift = False
        self._n += 1
        self._mean += (x - self._mean) / self._n
        dev = x - self._mean
        fired = False
        if self._watch_up:
            self._up = self.alpha * self._up + (dev - self.delta)
            if self._up < self._up_min:
                self._up_min = self._up
            fired = self._up - self._up_min > self.threshold
        if self._watch_down:
            self._down = self.alpha * self._down + (-dev - self.delta)
            if self._down < self._down_min:
                self._down_min = self._down
            fired = fired or self._down - self._down_min > self.threshold
        if fired and self._n >= self.min_instances:
            self._drift = True
            self._n_detections += 1
            self._reset_stats()
