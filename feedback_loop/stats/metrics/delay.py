"""Label-delay summary: how long ground truth takes to arrive after a prediction."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["DELAY_KEYS", "delay_percentiles"]

DELAY_KEYS = ("label_delay_p50_s", "label_delay_p95_s")


def delay_percentiles(delays_seconds: npt.ArrayLike) -> dict[str, float | None]:
    """Median and 95th percentile of label delays in seconds (linear interpolation).

    NaN delays (labels not yet known) are skipped; with no delays left both are None. Both
    percentiles come from one partial sort.

    >>> delay_percentiles([10.0, 20.0, 30.0, 40.0])
    {'label_delay_p50_s': 25.0, 'label_delay_p95_s': 38.5}
    """
    d = np.asarray(delays_seconds, dtype=np.float64)
    if d.ndim != 1:
        raise ValueError(f"delays_seconds must be one-dimensional, got shape {d.shape}")
    if d.size and np.isnan(d.min()):
        d = d[~np.isnan(d)]
    if d.size == 0:
        return dict.fromkeys(DELAY_KEYS)
    p50, p95 = np.percentile(d, [50.0, 95.0])
    return {"label_delay_p50_s": float(p50), "label_delay_p95_s": float(p95)}
