"""Two-sample drift checks for one numerical feature: on raw arrays, or against a reference
kept only as a quantile grid (:class:`QuantileGrid`).

Tests (verdict ``p < alpha``, alpha 0.05 by default):

* ``ks``: Kolmogorov–Smirnov, delegated to :func:`scipy.stats.ks_2samp` (``method='auto'``:
  exact p-value when both samples have at most 10,000 values, Smirnov's asymptotic one
  otherwise). Sensitive to the largest gap between the two CDFs.
* ``cramer_von_mises``: two-sample Cramér–von Mises, which integrates the squared CDF gap and
  so reacts to diffuse changes KS can miss. Ties get mid-ranks; the p-value is exact (via
  SciPy) when neither sample exceeds 20 values and asymptotic otherwise, as in
  :func:`scipy.stats.cramervonmises_2samp`.

Distances (verdict ``statistic > threshold``):

* ``wasserstein``: the earth mover's distance divided by the reference standard deviation
  (population, ``ddof=0``), so it reads as "how many reference standard deviations the mass
  moved"; threshold 0.1. A constant reference gives 0 when nothing moved and infinity
  otherwise.
* ``psi`` and ``jensen_shannon`` on ten reference-quantile bins (deciles); thresholds 0.2 and
  0.1, see :mod:`feedback_loop.stats.drift.categorical`. Quantile bins give each bin a tenth of the
  reference, which keeps PSI scale-free and stops empty bins from dominating it.

Missing values: NaN and ±infinity are dropped and counted in ``missing_*``; a side with no
finite value left raises ``ValueError``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from feedback_loop.stats.drift.categorical import (
    DEFAULT_ALPHA,
    DEFAULT_EPSILON,
    DEFAULT_THRESHOLDS,
    compare_counts,
)
from feedback_loop.stats.drift.result import DriftResult
from feedback_loop.stats.lazy import lazy

if TYPE_CHECKING:
    from scipy import special, stats
else:  # imported on first use: see stats.lazy
    special = lazy("scipy.special")
    stats = lazy("scipy.stats")

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

DEFAULT_BINS = 10
DEFAULT_GRID_SIZE = 2048
DEFAULT_WASSERSTEIN_THRESHOLD = 0.1
NUMERIC_THRESHOLDS: dict[str, float] = {
    "wasserstein": DEFAULT_WASSERSTEIN_THRESHOLD,
    "psi": DEFAULT_THRESHOLDS["psi"],
    "jensen_shannon": DEFAULT_THRESHOLDS["jensen_shannon"],
}
# Counting with one vectorised comparison per edge beats a binary search up to this many edges.
_MAX_EDGES_FOR_COMPARISON = 32
# Values per block when counting, so the repeated comparisons read from cache, not memory.
_COUNT_BLOCK = 65_536
# Largest sample size for which the Cramér–von Mises p-value is exact (SciPy's "auto" rule).
_CVM_EXACT_MAX_N = 20


def clean_numeric(values: ArrayLike, name: str = "values") -> tuple[FloatArray, int]:
    """Return the finite values as a float64 1-D array and how many were dropped.

    >>> x, dropped = clean_numeric([1.0, float("nan"), 3.0])
    >>> x.tolist(), dropped
    ([1.0, 3.0], 1)
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    out = arr.astype(np.float64, copy=False)
    n_finite = out.size
    if not np.isfinite(np.sum(out)):  # cheap screen: a finite sum means every value is finite
        finite = np.isfinite(out)
        n_finite = int(np.count_nonzero(finite))
        out = out[finite]
    if n_finite == 0:
        raise ValueError(f"{name} has no finite values")
    return out, arr.size - n_finite


def quantile_edges(reference: ArrayLike, bins: int = DEFAULT_BINS) -> FloatArray:
    """Inner edges of ``bins`` equal-frequency bins of the reference (duplicates removed).

    The outer bins are open-ended, so current values beyond the reference range still count.

    >>> quantile_edges(np.arange(101.0), bins=4).tolist()
    [25.0, 50.0, 75.0]
    """
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    probs = np.arange(1, bins) / bins
    return np.unique(np.quantile(np.asarray(reference, dtype=np.float64), probs))


def bin_counts(values: FloatArray, edges: FloatArray) -> NDArray[np.int64]:
    """Counts per bin: bin i holds ``edges[i-1] <= x < edges[i]`` (outer bins open-ended).

    For a handful of edges, one comparison pass per edge over cache-sized blocks is about
    ten times faster than a binary search per value, and it never builds an index array.

    >>> bin_counts(np.array([0.0, 1.0, 2.0, 5.0]), np.array([1.0, 3.0])).tolist()
    [1, 2, 1]
    """
    n = values.size
    if edges.size <= _MAX_EDGES_FOR_COMPARISON:
        below = np.zeros(edges.size, dtype=np.int64)
        for start in range(0, n, _COUNT_BLOCK):
            block = values[start : start + _COUNT_BLOCK]
            below += [np.count_nonzero(block < edge) for edge in edges]
        return np.diff(np.concatenate([[0], below, [n]]))
    index = np.searchsorted(edges, values, side="right")
    return np.bincount(index, minlength=edges.size + 1).astype(np.int64, copy=False)


def ks_test(
    reference: ArrayLike, current: ArrayLike, *, alpha: float = DEFAULT_ALPHA
) -> DriftResult:
    """Two-sample Kolmogorov–Smirnov test (SciPy, ``method='auto'``).

    >>> rng = np.random.default_rng(0)
    >>> ks_test(rng.normal(size=500), rng.normal(1.0, size=500)).drifted
    True
    """
    ref, missing_ref = clean_numeric(reference, "reference")
    cur, missing_cur = clean_numeric(current, "current")
    res = stats.ks_2samp(ref, cur)
    return DriftResult.from_p_value(
        "ks",
        float(res.statistic),
        float(res.pvalue),
        alpha,
        n_reference=ref.size,
        n_current=cur.size,
        missing_reference=missing_ref,
        missing_current=missing_cur,
    )


def cramer_von_mises_statistic(reference: FloatArray, current: FloatArray) -> float:
    """Two-sample Cramér–von Mises T from mid-ranks in the pooled sample (Anderson, 1962).

    >>> cramer_von_mises_statistic(np.array([1.0, 2.0]), np.array([1.0, 2.0])) < 0.1
    True
    """
    x = np.sort(reference)
    y = np.sort(current)
    n, m = x.size, y.size
    pooled = np.sort(np.concatenate([x, y]))

    def midranks(v: FloatArray) -> FloatArray:
        lo = np.searchsorted(pooled, v, side="left")
        hi = np.searchsorted(pooled, v, side="right")
        return (lo + hi + 1) / 2.0

    u = n * np.sum((midranks(x) - np.arange(1, n + 1)) ** 2) + m * np.sum(
        (midranks(y) - np.arange(1, m + 1)) ** 2
    )
    k, total = n * m, n + m
    return float(u / (k * total) - (4 * k - 1) / (6 * total))


def _cvm_limit_cdf(x: float) -> float:
    """CDF of the limiting Cramér–von Mises distribution (Csörgő & Faraway 1996, eq. 1.2)."""
    if x <= 0.0:
        return 0.0
    total = 0.0
    for start in range(0, 4096, 64):
        k = np.arange(start, start + 64, dtype=np.float64)
        y = 4.0 * k + 1.0
        q = y * y / (16.0 * x)
        log_coef = special.gammaln(k + 0.5) - special.gammaln(k + 1.0)
        terms = np.exp(log_coef - q) * np.sqrt(y) * special.kv(0.25, q)
        total += float(np.sum(terms)) / (math.pi**1.5 * math.sqrt(x))
        if terms[-1] < 1e-16 * max(float(terms[0]), 1e-300):
            break
    return total


def cramer_von_mises_pvalue(statistic: float, n_reference: int, n_current: int) -> float:
    """Asymptotic p-value of the two-sample T (standardised as in Anderson, 1962).

    >>> round(cramer_von_mises_pvalue(0.461, 10**6, 10**6), 2)
    0.05
    """
    n, m = float(n_reference), float(n_current)
    total, k = n + m, n * m
    mean = (1.0 + 1.0 / total) / 6.0
    var = (total + 1.0) * (4.0 * k * total - 3.0 * (n * n + m * m) - 2.0 * k)
    var /= 45.0 * total * total * 4.0 * k
    standardised = 1.0 / 6.0 + (statistic - mean) / math.sqrt(45.0 * var)
    if standardised < 0.003:  # the limiting CDF is below 1e-17 there
        return 1.0
    return min(1.0, max(0.0, 1.0 - _cvm_limit_cdf(standardised)))


def cramer_von_mises_test(
    reference: ArrayLike, current: ArrayLike, *, alpha: float = DEFAULT_ALPHA
) -> DriftResult:
    """Two-sample Cramér–von Mises test.

    >>> rng = np.random.default_rng(0)
    >>> cramer_von_mises_test(rng.normal(size=500), rng.normal(size=500, scale=2.0)).drifted
    True
    """
    ref, missing_ref = clean_numeric(reference, "reference")
    cur, missing_cur = clean_numeric(current, "current")
    if ref.size < 2 or cur.size < 2:
        raise ValueError("the Cramér–von Mises test needs at least two values per sample")
    if max(ref.size, cur.size) <= _CVM_EXACT_MAX_N:
        res = stats.cramervonmises_2samp(ref, cur, method="exact")
        statistic, p_value = float(res.statistic), float(res.pvalue)
    else:
        statistic = cramer_von_mises_statistic(ref, cur)
        p_value = cramer_von_mises_pvalue(statistic, ref.size, cur.size)
    return DriftResult.from_p_value(
        "cramer_von_mises",
        statistic,
        p_value,
        alpha,
        n_reference=ref.size,
        n_current=cur.size,
        missing_reference=missing_ref,
        missing_current=missing_cur,
    )


def wasserstein_1d(reference: FloatArray, current: FloatArray) -> float:
    """Earth mover's distance between two samples: the area between their empirical CDFs.

    >>> wasserstein_1d(np.array([0.0, 1.0]), np.array([2.0, 3.0]))
    2.0
    """
    x = np.sort(reference)
    y = np.sort(current)
    pooled = np.sort(np.concatenate([x, y]))
    widths = np.diff(pooled)
    f = np.searchsorted(x, pooled[:-1], side="right") / x.size
    g = np.searchsorted(y, pooled[:-1], side="right") / y.size
    return float(np.sum(np.abs(f - g) * widths))


def normalise_distance(distance: float, scale: float) -> float:
    """Distance in units of ``scale``; a zero scale maps 0 to 0 and anything else to infinity.

    >>> normalise_distance(0.5, 2.0), normalise_distance(0.0, 0.0), normalise_distance(1.0, 0.0)
    (0.25, 0.0, inf)
    """
    if scale > 0.0:
        return distance / scale
    return 0.0 if distance == 0.0 else math.inf


def normalized_wasserstein(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    threshold: float = DEFAULT_WASSERSTEIN_THRESHOLD,
) -> DriftResult:
    """Wasserstein-1 distance divided by the reference standard deviation.

    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=2_000)
    >>> normalized_wasserstein(ref, ref + 0.5).statistic > 0.45
    True
    """
    ref, missing_ref = clean_numeric(reference, "reference")
    cur, missing_cur = clean_numeric(current, "current")
    statistic = normalise_distance(wasserstein_1d(ref, cur), float(np.std(ref)))
    return DriftResult.from_distance(
        "wasserstein",
        statistic,
        threshold,
        n_reference=ref.size,
        n_current=cur.size,
        missing_reference=missing_ref,
        missing_current=missing_cur,
    )


def _binned(
    method: str,
    reference: ArrayLike,
    current: ArrayLike,
    bins: int,
    threshold: float,
    epsilon: float,
) -> DriftResult:
    ref, missing_ref = clean_numeric(reference, "reference")
    cur, missing_cur = clean_numeric(current, "current")
    edges = quantile_edges(ref, bins)
    return compare_counts(
        method,
        bin_counts(ref, edges),
        bin_counts(cur, edges),
        threshold=threshold,
        epsilon=epsilon,
        missing_reference=missing_ref,
        missing_current=missing_cur,
    )


def numeric_psi(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    bins: int = DEFAULT_BINS,
    threshold: float = DEFAULT_THRESHOLDS["psi"],
    epsilon: float = DEFAULT_EPSILON,
) -> DriftResult:
    """PSI on reference-quantile bins.

    >>> rng = np.random.default_rng(0)
    >>> numeric_psi(rng.normal(size=5_000), rng.normal(1.0, size=5_000)).drifted
    True
    """
    return _binned("psi", reference, current, bins, threshold, epsilon)


def numeric_jensen_shannon(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    bins: int = DEFAULT_BINS,
    threshold: float = DEFAULT_THRESHOLDS["jensen_shannon"],
) -> DriftResult:
    """Jensen–Shannon distance (base 2) on reference-quantile bins.

    >>> rng = np.random.default_rng(0)
    >>> numeric_jensen_shannon(rng.normal(size=5_000), rng.normal(size=5_000)).drifted
    False
    """
    return _binned("jensen_shannon", reference, current, bins, threshold, DEFAULT_EPSILON)


@dataclass(frozen=True, eq=False)
class QuantileGrid:
    """A reference CDF kept at a few thousand quantile nodes, for tests without its rows.

    ``count_le[i]`` / ``count_lt[i]`` count reference values ``<=`` / ``<`` ``nodes[i]``, so
    the reference CDF F is known exactly on both sides of every node. Between nodes the grid
    interpolates linearly (F̃). Write ``eps`` for :attr:`max_cell_mass`, the largest reference
    share strictly between neighbouring nodes (at most ``1/size + 1/n``), G for the current
    empirical CDF and ``en = n·m/(n+m)``:

    * :meth:`ks_statistic` returns D̂, the largest gap at the nodes. D̂ never exceeds the exact
      statistic D, and ``D - D̂ <= eps``: inside a cell F moves by at most ``eps`` while G is
      monotone, so the gap there cannot beat a node's gap by more.
    * :meth:`wasserstein` is the exact area between F̃ and G; since ``|F̃ - F| <= eps`` inside
      each cell, it is within :attr:`wasserstein_error_bound` (sum of cell mass × width) of
      the exact distance.
    * :meth:`cramer_von_mises_statistic` is the exact two-sample T of F̃ (weight n) against
      G; ``|T̂ - T| <= en·eps·(6·D + eps) <= en·eps·(6·D̂ + 7·eps)``, from the pointwise bound
      on ``|F̃ - F|`` plus an integration by parts for the change of measure.

    >>> g = QuantileGrid.from_sorted(np.arange(10_000.0), size=100)
    >>> g.nodes.size, round(g.max_cell_mass, 4)
    (101, 0.01)
    """

    nodes: FloatArray
    count_le: IntArray
    count_lt: IntArray
    n: int

    @classmethod
    def from_sorted(cls, sorted_values: FloatArray, size: int = DEFAULT_GRID_SIZE) -> QuantileGrid:
        """Grid of ``size + 1`` quantiles (ties merged) of an already sorted reference.

        >>> QuantileGrid.from_sorted(np.array([1.0, 1.0, 2.0]), size=2).nodes.tolist()
        [1.0, 2.0]
        """
        if size < 2:
            raise ValueError(f"grid size must be at least 2, got {size}")
        nodes = np.unique(np.quantile(sorted_values, np.arange(size + 1) / size))
        return cls(
            nodes=nodes,
            count_le=np.searchsorted(sorted_values, nodes, side="right"),
            count_lt=np.searchsorted(sorted_values, nodes, side="left"),
            n=int(sorted_values.size),
        )

    @property
    def max_cell_mass(self) -> float:
        """Largest reference share strictly between two neighbouring nodes (``eps``)."""
        if self.nodes.size < 2:
            return 0.0
        return float(np.max(self.count_lt[1:] - self.count_le[:-1]) / self.n)

    @property
    def wasserstein_error_bound(self) -> float:
        """Bound on ``|W(F̃, G) - W(F, G)|`` in data units: sum of cell mass × cell width."""
        if self.nodes.size < 2:
            return 0.0
        mass = (self.count_lt[1:] - self.count_le[:-1]) / self.n
        return float(np.sum(mass * np.diff(self.nodes)))

    def cdf(self, points: FloatArray, *, left: bool = False) -> FloatArray:
        """F̃ at ``points``: exact at nodes (``left`` gives the limit from below), linear
        between nodes, 0 below the first node and 1 above the last.

        >>> g = QuantileGrid.from_sorted(np.array([0.0, 1.0, 2.0, 3.0]), size=2)
        >>> g.nodes.tolist()
        [0.0, 1.5, 3.0]
        >>> g.cdf(np.array([-1.0, 0.0, 0.75, 3.0, 9.0])).tolist()
        [0.0, 0.25, 0.375, 1.0, 1.0]
        """
        right, below = self._cdf_both(points)
        return below if left else right

    def _cdf_both(self, points: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(F̃, F̃ from below) at ``points`` with one search and no masks.

        Slot k (the number of nodes <= point) covers [nodes[k-1], nodes[k]); slot 0 lies
        below the minimum (value 0), slot L above the maximum (value 1). Inside a slot F̃ rises
        from ``count_le[k-1]/n`` to ``count_lt[k]/n``; a point on a node has fraction 0, which
        gives the right-continuous value directly.
        """
        nodes = self.nodes
        at_or_below = self.count_le / self.n
        below = self.count_lt / self.n
        start_x = np.concatenate([nodes[:1], nodes])
        start_value = np.concatenate([[0.0], at_or_below])
        end_value = np.concatenate([[0.0], below[1:], [1.0]])
        width = np.concatenate([[1.0], np.diff(nodes), [1.0]])  # outer slots are flat anyway
        left_at_node = np.concatenate([[0.0], below])
        k = np.searchsorted(nodes, points, side="right")
        offset = points - start_x[k]
        frac = np.clip(offset / width[k], 0.0, 1.0)
        lo = start_value[k]
        right = lo + frac * (end_value[k] - lo)
        return right, np.where(offset == 0.0, left_at_node[k], right)

    def ks_statistic(self, current_sorted: FloatArray) -> float:
        """D̂: largest CDF gap at the nodes, on both sides of each node.

        >>> g = QuantileGrid.from_sorted(np.arange(1_000.0))
        >>> round(g.ks_statistic(np.arange(500.0, 1_500.0)), 3)
        0.5
        """
        m = current_sorted.size
        cur_le = np.searchsorted(current_sorted, self.nodes, side="right") / m
        cur_lt = np.searchsorted(current_sorted, self.nodes, side="left") / m
        gap_le = np.abs(self.count_le / self.n - cur_le)
        gap_lt = np.abs(self.count_lt / self.n - cur_lt)
        return float(max(gap_le.max(), gap_lt.max()))

    def _breakpoints(
        self, current_sorted: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        points = np.unique(np.concatenate([self.nodes, current_sorted]))
        cur = np.searchsorted(current_sorted, points, side="right") / current_sorted.size
        right, left = self._cdf_both(points)
        return points, right, left, cur

    def cramer_von_mises_statistic(self, current_sorted: FloatArray) -> float:
        """Two-sample T of F̃ (weight n) against the current sample (weight m).

        >>> g = QuantileGrid.from_sorted(np.sort(np.random.default_rng(0).normal(size=9_000)))
        >>> g.cramer_von_mises_statistic(np.linspace(3.0, 4.0, 100)) > 10
        True
        """
        _, ref_right, ref_left, cur = self._breakpoints(current_sorted)
        # Between breakpoints G is a constant g while F̃ - g rises linearly from a to b, so
        # the integral of (F̃ - g)² dF̃ there is (b³ - a³) / 3; atoms of F̃ (tied reference
        # values at a node) add mass × gap².
        a = ref_right[:-1] - cur[:-1]
        b = ref_left[1:] - cur[:-1]
        ref_part = float(np.sum(b**3 - a**3)) / 3.0
        ref_part += float(np.sum((ref_right - ref_left) * (ref_right - cur) ** 2))
        m = current_sorted.size
        cur_at_own = np.searchsorted(current_sorted, current_sorted, side="right") / m
        cur_part = float(np.mean((self.cdf(current_sorted) - cur_at_own) ** 2))
        n = float(self.n)
        total = n + m
        return n * m / total * (n / total * ref_part + m / total * cur_part)

    def wasserstein(self, current_sorted: FloatArray) -> float:
        """Area between F̃ and the current empirical CDF, in data units.

        >>> g = QuantileGrid.from_sorted(np.arange(1_000.0))
        >>> round(g.wasserstein(np.arange(1_000.0) + 10.0), 6)
        10.0
        """
        points, ref_right, ref_left, cur = self._breakpoints(current_sorted)
        width = np.diff(points)
        a = ref_right[:-1] - cur[:-1]
        b = ref_left[1:] - cur[:-1]
        same_side = a * b >= 0.0
        # Where F̃ - g changes sign the area is two triangles: (a² + b²) / (2·|b - a|) · width.
        crossing = np.divide(
            a * a + b * b, 2.0 * np.abs(b - a), out=np.zeros_like(a), where=~same_side
        )
        area = np.where(same_side, np.abs(a + b) / 2.0, crossing) * width
        return float(np.sum(area))
