"""Where did a model's error rise? The newest significant increase in a stream of errors.

A retraining after an abrupt change should learn from the rows after it and be judged on
rows after it. The served predictions' errors (out of sample by construction) locate the
change: the split that best separates a lower error before from a higher error after, by the
two-sample z statistic of the mean difference, over all splits at once (cumulative sums, no
loop over rows). A change is reported only when the best split's z is at least ``min_z``
(the maximum over many splits is larger than one z by chance: the default 4 is conservative).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ChangePoint:
    """The first row after the change, the mean error before and after, and the z of the
    difference."""

    index: int
    before: float
    after: float
    z: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def error_increase(
    errors: np.ndarray, *, min_segment: int = 30, min_z: float = 4.0
) -> ChangePoint | None:
    """The split where the mean error rises most significantly, or None.

    >>> rng = np.random.default_rng(0)
    >>> errors = np.r_[rng.random(600) < 0.1, rng.random(200) < 0.5].astype(float)
    >>> change = error_increase(errors)
    >>> 580 <= change.index <= 620, change.before < 0.15 < 0.4 < change.after
    (True, True)
    >>> error_increase((rng.random(800) < 0.2).astype(float)) is None
    True
    """
    e = np.asarray(errors, dtype=np.float64)
    n = len(e)
    if n < 2 * min_segment or not np.all(np.isfinite(e)):
        return None
    sd = float(np.std(e))
    if sd == 0.0:
        return None
    k = np.arange(min_segment, n - min_segment + 1)
    total = np.concatenate([[0.0], np.cumsum(e)])
    before = total[k] / k
    after = (total[n] - total[k]) / (n - k)
    z = (after - before) / (sd * np.sqrt(1.0 / k + 1.0 / (n - k)))
    best = int(np.argmax(z))
    if z[best] < min_z:
        return None
    return ChangePoint(int(k[best]), float(before[best]), float(after[best]), float(z[best]))
