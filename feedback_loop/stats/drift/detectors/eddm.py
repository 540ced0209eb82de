"""EDDM: the Early Drift Detection Method.

Baena-García, del Campo-Ávila, Fidalgo, Bifet, Gavaldà & Morales-Bueno, "Early Drift
Detection Method", ECML PKDD Workshop on Knowledge Discovery from Data Streams, 2006.

Instead of the error *rate*, EDDM tracks the *distance* (in examples) between consecutive
errors. While a learner improves, errors grow further apart; a new concept brings them
closer. EDDM tracks the mean ``p'`` and standard deviation ``s'`` of those distances and
the largest ``p' + 2 s'`` seen so far; when the current value falls below a fraction ``α``
of that maximum it warns, below ``β`` it declares drift. Because it reacts to the spacing of
errors rather than their accumulated count it catches slow, gradual changes earlier than DDM,
at the price of more false alarms on noisy stationary streams.
"""

from __future__ import annotations

import math

from .base import DriftDetector, check_min_int, check_open_unit

__all__ = ["EDDM"]


class EDDM(DriftDetector):
    """Early Drift Detection Method over a 0/1 error stream.

    Args:
        alpha: Warning when ``(p' + 2 s') / max(p' + 2 s')`` drops below this (paper: 0.95).
        beta: Drift when the same ratio drops below this (paper: 0.90); must be < ``alpha``.
        min_num_errors: Errors needed since the last drift before the ratio is tested, so
            that ``p'`` and ``s'`` are reasonably estimated (300; paper: 30).

    With the paper's 30 the reference maximum is taken from as few as 30 error distances,
    whose spread is noisy: on the benchmark streams (``benchmarks/detectors.py``) EDDM then
    raised about 7 false alarms per 10,000 rows and 3 signals per change. Waiting for 300
    errors gives one signal per change and 0.1 false alarms per 10,000 rows, at the price of
    a longer delay, above all at low error rates (300 errors at 10% is 3,000 examples).

    Between two errors the statistic does not change, so a warning stays raised until the
    next error re-evaluates it; a drift is reported on the single update that found it.

    >>> import random
    >>> from feedback_loop.stats.drift.detectors import run
    >>> rng = random.Random(3)
    >>> eddm = EDDM()
    >>> before = [rng.random() < 0.1 for _ in range(4000)]
    >>> after = [rng.random() < 0.5 for _ in range(1000)]
    >>> run(eddm, before + after)
    [4119]
    """

    __slots__ = (
        "_last_error",
        "_m2",
        "_max_level",
        "_mean",
        "_n",
        "_n_errors",
        "alpha",
        "beta",
        "min_num_errors",
    )

    def __init__(self, alpha: float = 0.95, beta: float = 0.90, min_num_errors: int = 300) -> None:
        super().__init__()
        self.alpha = check_open_unit("alpha", alpha)
        self.beta = check_open_unit("beta", beta)
        if self.beta >= self.alpha:
            raise ValueError(f"beta ({beta!r}) must be < alpha ({alpha!r})")
        self.min_num_errors = check_min_int("min_num_errors", min_num_errors, 2)
        self._reset_stats()

    def _reset_stats(self) -> None:
        self._n = 0
        self._last_error = 0
        self._n_errors = 0
        self._mean = 0.0
        self._m2 = 0.0
        self._max_level = 0.0

    @property
    def mean_distance(self) -> float:
        """Mean number of examples between consecutive errors since the last drift."""
        return self._mean

    def update(self, x: float) -> None:
        """Feed one error indicator: 1 for a wrong prediction, 0 for a correct one."""
        if x != 0 and x != 1:
            raise ValueError(f"EDDM expects a 0/1 error indicator, got {x!r}")
        self._n_seen += 1
        self._drift = False
        self._n += 1
        if not x:
            return
        distance = self._n - self._last_error
        self._last_error = self._n
        self._n_errors += 1
        delta = distance - self._mean
        self._mean += delta / self._n_errors
        self._m2 += delta * (distance - self._mean)
        if self._n_errors < self.min_num_errors:
            return
        level = self._mean + 2.0 * math.sqrt(self._m2 / self._n_errors)
        if level > self._max_level:
            self._max_level = level
        ratio = level / self._max_level
        if ratio < self.beta:
            self._drift = True
            self._warning = False
            self._n_detections += 1
            self._reset_stats()
        else:
            self._warning = ratio < self.alpha
