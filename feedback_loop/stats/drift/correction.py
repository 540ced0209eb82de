"""From per-feature results to one dataset verdict, with optional multiple-testing correction.

Testing 25 features at alpha 0.05 flags about one feature per run even when nothing changed.
Two remedies are offered: Bonferroni (controls the chance of *any* false alarm, conservative)
and Benjamini–Hochberg (controls the expected share of false alarms among flagged features,
more power). The dataset verdict itself asks whether at least ``share_threshold`` (default
half) of the features drifted; a few false alarms rarely reach that share, which is why no
correction is applied unless asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from feedback_loop.stats.drift.result import DriftResult

Correction = Literal["none", "bonferroni", "benjamini_hochberg"]
DEFAULT_SHARE_THRESHOLD = 0.5


def _check_p_values(p_values: ArrayLike) -> NDArray[np.float64]:
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p-values must be 1-D, got shape {p.shape}")
    if np.any(np.isnan(p)) or np.any((p < 0.0) | (p > 1.0)):
        raise ValueError("p-values must lie in [0, 1]")
    return p


def bonferroni(p_values: ArrayLike) -> NDArray[np.float64]:
    """Bonferroni-adjusted p-values: ``min(1, p · m)``.

    >>> bonferroni([0.01, 0.02, 0.5]).tolist()
    [0.03, 0.06, 1.0]
    """
    p = _check_p_values(p_values)
    return np.minimum(p * p.size, 1.0)


def benjamini_hochberg(p_values: ArrayLike) -> NDArray[np.float64]:
    """Benjamini–Hochberg adjusted p-values (same as ``scipy.stats.false_discovery_control``).

    The i-th smallest p-value is scaled by m / i, then a running minimum from the largest
    down keeps the adjusted values in the same order as the raw ones.

    >>> benjamini_hochberg([0.01, 0.04, 0.03, 0.2]).round(6).tolist()
    [0.04, 0.053333, 0.053333, 0.2]
    """
    p = _check_p_values(p_values)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m, dtype=np.float64)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def adjust(p_values: ArrayLike, method: Correction) -> NDArray[np.float64]:
    """Apply ``method`` ("none", "bonferroni" or "benjamini_hochberg") to p-values.

    >>> adjust([0.2, 0.4], "bonferroni").tolist()
    [0.4, 0.8]
    """
    if method == "none":
        return _check_p_values(p_values).copy()
    if method == "bonferroni":
        return bonferroni(p_values)
    if method == "benjamini_hochberg":
        return benjamini_hochberg(p_values)
    raise ValueError(f"unknown correction {method!r}")


@dataclass(frozen=True)
class DatasetDrift:
    """Dataset verdict: drift when ``share >= threshold`` (at least that share of features).

    ``features`` holds the per-feature results after correction: tests carry the *adjusted*
    p-value and a verdict recomputed from it; distances are unchanged.

    >>> r = dataset_drift({"a": DriftResult.from_distance("psi", 0.3, 0.2)})
    >>> r.share, r.drifted, r.drifted_features
    (1.0, True, ('a',))
    """

    n_features: int
    n_drifted: int
    share: float
    threshold: float
    drifted: bool
    correction: Correction
    drifted_features: tuple[str, ...]
    features: Mapping[str, DriftResult]

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python mapping with each feature result expanded.

        >>> dataset_drift({"a": DriftResult.from_distance("psi", 0.1, 0.2)}).to_dict()["share"]
        0.0
        """
        return {
            "n_features": self.n_features,
            "n_drifted": self.n_drifted,
            "share": self.share,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "correction": self.correction,
            "drifted_features": list(self.drifted_features),
            "features": {name: res.to_dict() for name, res in self.features.items()},
        }


def dataset_drift(
    results: Mapping[str, DriftResult],
    *,
    share_threshold: float = DEFAULT_SHARE_THRESHOLD,
    correction: Correction = "none",
) -> DatasetDrift:
    """Aggregate per-feature results into a dataset verdict.

    ``correction`` adjusts the p-values of the hypothesis-test results jointly (distances
    have none and keep their verdicts).

    >>> tests = {f"f{i}": DriftResult.from_p_value("ks", 0.1, p, 0.05)
    ...          for i, p in enumerate([0.01, 0.02, 0.03, 0.9])}
    >>> dataset_drift(tests).n_drifted
    3
    >>> dataset_drift(tests, correction="bonferroni").n_drifted
    1
    """
    if not results:
        raise ValueError("no feature results to aggregate")
    if not 0.0 < share_threshold <= 1.0:
        raise ValueError(f"share_threshold must lie in (0, 1], got {share_threshold}")
    features = dict(results)
    tested = [name for name, res in features.items() if res.p_value is not None]
    if tested and correction != "none":
        raw = [float(features[name].p_value or 0.0) for name in tested]
        for name, p in zip(tested, adjust(raw, correction), strict=True):
            res = features[name]
            features[name] = replace(res, p_value=float(p), drifted=bool(p < res.threshold))
    drifted = tuple(name for name, res in features.items() if res.drifted)
    share = len(drifted) / len(features)
    return DatasetDrift(
        n_features=len(features),
        n_drifted=len(drifted),
        share=share,
        threshold=share_threshold,
        drifted=share >= share_threshold,
        correction=correction,
        drifted_features=drifted,
        features=features,
    )
