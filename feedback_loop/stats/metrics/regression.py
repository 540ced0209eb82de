"""Regression quality metrics.

Vectorised NumPy versions of scikit-learn's MAE, RMSE, MAPE and R², cheap enough to run on
every metrics query over large windows.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["REGRESSION_KEYS", "regression_metrics"]

REGRESSION_KEYS = ("mae", "rmse", "mape", "r2")

# scikit-learn's floor for |y_true| in MAPE: zero targets give huge but finite errors.
_EPS = float(np.finfo(np.float64).eps)


def regression_metrics(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> dict[str, float | None]:
    """MAE, RMSE, MAPE and R² of ``y_pred`` against ``y_true``.

    Rows where either side is NaN carry no information and are skipped. MAPE divides by
    ``max(|y_true|, eps)`` as scikit-learn does, so it is a fraction (not a percentage) and
    explodes, rather than failing, on zero targets. R² needs two rows; for a constant
    ``y_true`` it is 1.0 when every prediction is exact and 0.0 otherwise (scikit-learn's
    ``force_finite``). Everything is None when no rows remain, and a metric that overflows
    float64 is None rather than inf or NaN.

    >>> m = regression_metrics([1.0, 2.0, 4.0], [1.5, 2.0, 3.0])
    >>> m["mae"], m["mape"], round(m["r2"], 4)
    (0.5, 0.25, 0.7321)
    """
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.ndim != 1 or p.ndim != 1:
        raise ValueError(f"y_true and y_pred must be one-dimensional, got {t.shape}, {p.shape}")
    if t.size != p.size:
        raise ValueError(f"y_true and y_pred have different lengths: {t.size} vs {p.size}")
    if np.isnan(t.min(initial=0.0) + p.min(initial=0.0)):
        known = ~(np.isnan(t) | np.isnan(p))
        t, p = t[known], p[known]
    out: dict[str, float | None] = dict.fromkeys(REGRESSION_KEYS)
    n = t.size
    if n == 0:
        return out
    err = t - p
    abs_err = np.abs(err)
    sq_sum = _sum_sq(err)
    out["mae"] = float(abs_err.mean())
    out["rmse"] = float(np.sqrt(sq_sum / n))
    out["mape"] = float((abs_err / np.maximum(np.abs(t), _EPS)).mean())
    out["r2"] = _r2(t, sq_sum, exact=not abs_err.any()) if n >= 2 else None
    # Non-finite results come only from infinite inputs or float64 overflow (|values| beyond
    # about 1e154 when squared); None is safer than an inf or NaN leaking into JSON and averages.
    return {key: v if v is None or math.isfinite(v) else None for key, v in out.items()}


def _r2(t: npt.NDArray[np.float64], sq_sum: float, exact: bool) -> float:
    dev = t - t.mean()
    variance_sum = _sum_sq(dev)
    # A constant target is detected exactly: its float mean can be off by an ulp, which would
    # turn the "no variance" case into a division by a tiny spurious variance.
    if variance_sum == 0.0 or t.min() == t.max():
        return 1.0 if exact else 0.0
    return 1.0 - sq_sum / variance_sum


def _sum_sq(values: npt.NDArray[np.float64]) -> float:
    # einsum avoids both a temporary and BLAS, whose thread start-up dominates at this size.
    return float(np.einsum("i,i->", values, values))
