"""Metrics per slice of a window, worst first: where the model performs poorly.

Pure computation: the caller passes the labeled rows' codes (or values) and the slicing keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

Scorer = Callable[[np.ndarray], dict[str, Any]]


def segment_metrics(
    keys: pd.DataFrame,
    scorer: Scorer,
    *,
    metric: str,
    lower_is_better: bool,
    min_support: int,
) -> list[dict[str, Any]]:
    """Score every combination of ``keys`` values with at least ``min_support`` rows.

    ``scorer`` receives the row indices of a slice and returns its metrics. Slices are sorted
    worst first on ``metric``; slices where it is undefined go last.

    >>> keys = pd.DataFrame({"region": ["eu", "eu", "us", "us", "us"]})
    >>> right = np.array([1, 0, 1, 1, 1])
    >>> rows = segment_metrics(keys, lambda i: {"accuracy": right[i].mean()},
    ...                        metric="accuracy", lower_is_better=False, min_support=2)
    >>> [(r["segment"]["region"], r["accuracy"]) for r in rows]
    [('eu', 0.5), ('us', 1.0)]
    """
    if keys.empty or len(keys.columns) == 0:
        return []
    filled = keys.astype(object).where(keys.notna(), None)
    groups = filled.groupby(list(filled.columns), dropna=False, sort=False).indices
    out = []
    for value, index in groups.items():
        if len(index) < min_support:
            continue
        values = value if isinstance(value, tuple) else (value,)
        segment = {
            str(c): (None if pd.isna(v) else v) for c, v in zip(keys.columns, values, strict=True)
        }
        out.append({"segment": segment, "n": len(index), **scorer(np.asarray(index))})

    def order(row: dict[str, Any]) -> tuple[int, float]:
        value = row.get(metric)
        if value is None:
            return (1, 0.0)
        return (0, -value if lower_is_better else value)

    return sorted(out, key=order)
