"""A drift verdict calibrated to the window's size and to the reference's own natural variation.

Why: a fixed cut-off on a distance (PSI > 0.2) ignores the window size, so it misses real
shifts at a million rows; a plain two-sample test ignores that real data varies from one day
to the next, so on daily windows of a non-stationary reference it flags drift almost every
day. Both errors come from comparing the statistic with the wrong yardstick.

The yardstick here is the reference itself. Windows are compared on cells (the reference's
deciles for numbers, the profiled categories for categories) with the two-sample Pearson
chi-square ``X²``. If the rows of a period were independent draws from the reference, ``X²``
would follow ``χ²(ν)``, ``ν = k - 1``, whatever the window size. Real periods differ from
each other: a period's own distribution sits at a random divergence ``D`` (Pearson's, per
row) from the reference's. Given ``D``, a window of effective size ``e = m·n/(m + n)`` has a
non-central ``X²`` with non-centrality ``e·D``, so over periods

    mean = ν + e·μ,    variance = 2ν + 4·e·μ + e²·σ²,    μ = E[D], σ² = Var[D],

and the verdict uses the chi-square with that mean and variance (Satterthwaite: ``X²/a``
against ``χ²(ν')`` with ``a = variance/(2·mean)``, ``ν' = 2·mean²/variance``). Matching the
variance as well as the mean matters: natural variation is often one shift (a level that
moves from day to day) rather than noise spread over all cells, and that has a heavier tail
than a mean-matched scaled ``χ²(ν)``. So:

* when the reference is profiled (:func:`estimate_variation`), the rows, taken in their
  logged (time) order, are cut into contiguous chunks of a few size classes (50, 200, 800, ...
  rows, each with at least :data:`MIN_CHUNKS` chunks); each chunk is tested against the rest
  of the reference, and ``μ`` and ``σ²`` at that size are read off the mean (an upper 95%
  confidence bound of it) and the variance of the chunks' ``X²``, both floored at 0;
* a window of ``m`` rows takes ``μ`` and ``σ²`` interpolated between the size classes (in
  log size, constant beyond the ends) and is tested as above (:func:`calibrated_chi_square`);
  a reference without an estimate (profiles stored before, a reference too small to chunk)
  gets ``μ = σ² = 0``: the plain two-sample test;
* the p-value is compared with a per-column level; the monitoring service divides a
  family-wise level (1%) by the number of columns it checks, so a stationary window raises a
  false alarm in about one check in a hundred at most, however many features there are.

A shuffled reference (no time order) shows no natural variation and the verdict is the
exact-size two-sample chi-square test; a reference *sorted* by a column shows a lot, and the
verdict goes blind on that column. At large windows the ``e²·σ²`` term dominates and the test
becomes "is this window further from the reference than its own periods are from each
other", which keeps the daily windows of a seasonal stream from alarming every day while
shifts well beyond that spread (PSI 0.08 at a million rows) are still caught.

Ordered cells (the deciles of a number, a binary score's two values) get more power against
the shifts that matter most, moves in location and spread. ``X²`` spends its ``k - 1``
degrees of freedom evenly on every alternative; a location or scale shift lives mostly in one
of them. With ``p_j`` the pooled share of cell ``j``, ``d_j = o_j/m - r_j/n`` and ``g_1``,
``g_2`` the polynomials of degree one and two in the cells' mid-ranks, orthonormal under
``p`` (:func:`contrasts`), Pearson's statistic splits into orthogonal parts (Lancaster;
Neyman's smooth test on the ordered cells):

    X² = e·Σ_j d_j²/p_j = Σ_a V_a²,    V_a = √e·Σ_j g_a(j)·d_j,

and each ``V_a²`` is asymptotically ``χ²(1)`` under no drift, the ``V_a`` uncorrelated.
``V_1²`` is the rank-sum (Mann-Whitney) test with ties, up to the factor ``N/(N-1)``; ``V_2²``
is its counterpart for spread. A period's distribution moves each component by its own
``δ_a``, so each has the model above with ``ν = 1`` and divergence ``D_a = δ_a²``, estimated
from the same chunks (:class:`Variation` stores a table per component); when ``δ_a`` is
Gaussian over periods, ``V_a²`` is exactly ``(1 + e·τ²)·χ²(1)`` and the mean-and-variance
match is exact. The verdict tests the omnibus, linear and quadratic parts at 20%, 40% and
40% of the column's level (:data:`SPLIT`; Bonferroni, so the column's false-alarm rate stays
at most its level whatever the dependence between the parts) and reports
``min(1, min_i p_i/w_i)`` as its p-value. The price: a shift that lives only in higher
components (a change of shape with the same median and spread) meets the omnibus at a fifth
of the level, a critical value about 16% higher on ten cells at a per-column 1/600.
Categories have no order and keep the omnibus alone at the whole level; a stored variation
without component tables (made before they existed) also keeps the omnibus alone, and a
reference without any variation gets all three parts uncalibrated (plain tests). Everything
is computed from the window's counts on the reference's cells, so merged counts of stored
periods test the same way.

What the calibration costs: the chunk estimates are noisy, and the upper bound on ``μ``
that keeps natural variation from alarming also inflates the null on a stationary
reference, by about ``1.645·√(2ν/K)·e_window/e_chunk`` in the statistic's mean with ``K``
chunks of about the window's size. For a one-degree component and a reference twenty
windows long that is a factor of about 1.5 on the scale, close to the 1.6 a Student test
with ``K = 15`` degrees of freedom would cost at the same level: the price any test that
stays valid for every amount of natural variation pays when it learns that amount from ``K``
chunks.

Cells whose expected count in the window is below :data:`MIN_EXPECTED` (2: Cochran's 5
would leave a day of half-hourly rows, 48 values over ten deciles, untestable, and the
chunk estimate sees the heavier tail of small counts) are pooled, as are categories the
reference never saw, in runs of neighbouring cells (adjacent deciles) until a group reaches 2;
a last group that never does joins the one before. Pooling only coarsens the test, so it
stays valid, and a single unseen category in a large window cannot dominate it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from feedback_loop.stats.lazy import lazy

if TYPE_CHECKING:
    from scipy import stats
else:  # imported on first use: see stats.lazy
    stats = lazy("scipy.stats")

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

MIN_EXPECTED = 2.0
MIN_CHUNKS = 8
FIRST_SIZE = 50
SIZE_FACTOR = 4
FAMILY_ALPHA = 0.01
PSI_EPSILON = 1e-4
COMPONENTS = ("linear", "quadratic")
SPLIT = {"omnibus": 0.2, "linear": 0.4, "quadratic": 0.4}
UPPER_BOUND_Z = 1.645


@dataclass(frozen=True)
class Variation:
    """The reference's natural variation at a few chunk sizes (see the module docstring).

    ``sizes`` are chunk sizes in rows (increasing); ``mean`` and ``variance`` the estimated
    mean and variance of a period's per-row divergence ``D`` at each size. An empty table
    means none: the plain test. ``components`` holds the same table for the ordered
    components (:data:`COMPONENTS`) of ordered cells, as ``(name, Variation)`` pairs on the
    same sizes; a table without them (profiles stored before they existed, categories) is
    tested with the omnibus alone.

    >>> v = Variation(sizes=(100, 400), mean=(0.01, 0.002), variance=(1e-4, 4e-6))
    >>> v.at(100), v.at(1_600)
    ((0.01, 0.0001), (0.002, 4e-06))
    """

    sizes: tuple[int, ...] = ()
    mean: tuple[float, ...] = ()
    variance: tuple[float, ...] = ()
    components: tuple[tuple[str, Variation], ...] = ()

    def __post_init__(self) -> None:
        if not len(self.sizes) == len(self.mean) == len(self.variance):
            raise ValueError("sizes, mean and variance must have the same length")
        steps = np.diff(np.asarray(self.sizes, dtype=np.int64))
        if any(s < 2 for s in self.sizes) or np.any(steps <= 0):
            raise ValueError("sizes must be increasing and at least 2")
        values = np.asarray(self.mean + self.variance, dtype=np.float64)
        if not np.all(np.isfinite(values)) or np.any(values < 0.0):
            raise ValueError("mean and variance must be finite and non-negative")
        for name, part in self.components:
            if name not in COMPONENTS or part.sizes != self.sizes or part.components:
                raise ValueError(
                    f"component {name!r} must be one of {COMPONENTS} on the same sizes"
                )

    def at(self, size: int) -> tuple[float, float]:
        """``(μ, σ²)`` for a window of ``size`` rows, interpolated in log size."""
        if not self.sizes:
            return 0.0, 0.0
        x = np.log(max(size, 1))
        sizes = np.log(np.asarray(self.sizes, dtype=np.float64))
        return (
            float(np.interp(x, sizes, np.asarray(self.mean))),
            float(np.interp(x, sizes, np.asarray(self.variance))),
        )

    def component(self, name: str) -> Variation | None:
        """The table of the ordered component ``name``, or ``None`` when not estimated."""
        return next((part for found, part in self.components if found == name), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping; components, when estimated, under ``"components"``.

        >>> Variation((50,), (0.5,), (0.25,)).to_dict()
        {'sizes': [50], 'mean': [0.5], 'variance': [0.25]}
        """
        out: dict[str, Any] = {
            "sizes": list(self.sizes),
            "mean": list(self.mean),
            "variance": list(self.variance),
        }
        if self.components:
            out["components"] = {
                name: {"mean": list(part.mean), "variance": list(part.variance)}
                for name, part in self.components
            }
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Variation:
        """Inverse of :meth:`to_dict`; a mapping without ``"components"`` has none."""
        sizes = tuple(int(s) for s in data["sizes"])
        parts = tuple(
            (
                str(name),
                cls(
                    sizes=sizes,
                    mean=tuple(float(v) for v in part["mean"]),
                    variance=tuple(float(v) for v in part["variance"]),
                ),
            )
            for name, part in dict(data.get("components") or {}).items()
        )
        return cls(
            sizes=sizes,
            mean=tuple(float(v) for v in data["mean"]),
            variance=tuple(float(v) for v in data["variance"]),
            components=parts,
        )


def chunk_sizes(n: int, first: int = FIRST_SIZE, factor: int = SIZE_FACTOR) -> list[int]:
    """Size classes for ``n`` reference rows: ``first·factor^i`` with ``MIN_CHUNKS`` chunks.

    >>> chunk_sizes(100_000)
    [50, 200, 800, 3200]
    """
    out: list[int] = []
    size = first
    while n // size >= MIN_CHUNKS:
        out.append(size)
        size *= factor
    return out


def pool_map(reference: IntArray, size: float, min_expected: float = MIN_EXPECTED) -> IntArray:
    """Cell index after pooling, for a window of ``size`` rows against ``reference`` counts.

    Cells expected at ``min_expected`` or more keep their own cell; runs of rarer cells
    (unseen ones included), taken in order, are grouped until a group reaches
    ``min_expected``; a last group that never does joins the group before it. Neighbouring
    deciles merge, so ten rows over ten deciles still form five testable cells.

    >>> pool_map(np.array([500, 480, 10, 10]), 120).tolist()
    [0, 1, 2, 2]
    >>> pool_map(np.array([500, 490, 5, 5]), 120).tolist()
    [0, 1, 1, 1]
    >>> pool_map(np.full(10, 100), 10).tolist()
    [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    """
    n = max(int(reference.sum()), 1)
    expected = (size * reference / n).tolist()
    mapping = np.zeros(reference.size, dtype=np.int64)
    cell, group = -1, 0.0  # the last closed cell; what the open group has gathered
    open_members: list[int] = []
    for j, e in enumerate(expected):  # a few cells, never rows
        if e >= min_expected and not open_members:
            cell += 1
            mapping[j] = cell
            continue
        open_members.append(j)
        group += e
        if group >= min_expected:
            cell += 1
            mapping[open_members] = cell
            open_members, group = [], 0.0
    if open_members:
        mapping[open_members] = max(cell, 0)
    return mapping


def _pooled(counts: NDArray[Any], mapping: IntArray) -> NDArray[np.int64]:
    """Sum the last axis of ``counts`` into the pooled cells of ``mapping`` (one matmul)."""
    onehot = np.zeros((mapping.size, int(mapping.max()) + 1), dtype=np.int64)
    onehot[np.arange(mapping.size), mapping] = 1
    return np.atleast_2d(np.asarray(counts, dtype=np.int64)) @ onehot


def contrasts(shares: FloatArray) -> FloatArray:
    """Linear and quadratic contrasts of ordered cells, orthonormal under ``shares``.

    Rows ``g_1``, ``g_2`` are polynomials of degree one and two in the cells' mid-ranks
    ``x_j = Σ_{i<j} p_i + p_j/2`` with ``Σ p_j g_a(j) = 0`` and ``Σ p_j g_a(j) g_b(j) = δ_ab``
    (Gram-Schmidt under the weights ``p = shares``). With two cells only the linear row exists.

    >>> g = contrasts(np.full(4, 0.25))
    >>> np.round(g @ np.diag(np.full(4, 0.25)) @ g.T, 12).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    p = np.asarray(shares, dtype=np.float64)
    p = p / p.sum()
    x = np.cumsum(p) - p / 2
    rows: list[FloatArray] = []
    for power in range(1, min(len(COMPONENTS), p.size - 1) + 1):
        g = x**power - np.sum(p * x**power)
        for done in rows:
            g = g - np.sum(p * g * done) * done
        norm = np.sqrt(np.sum(p * g * g))
        if not norm > 1e-12:
            break
        rows.append(g / norm)
    return np.array(rows, dtype=np.float64).reshape(len(rows), p.size)


def _fit(values: FloatArray, dof: float, effective: float) -> tuple[float, float]:
    """``(μ, σ²)`` from the chunks' statistics: mean (upper bound) and variance, floored."""
    k = values.size
    mean = float(values.mean() + UPPER_BOUND_Z * values.std(ddof=1) / np.sqrt(k))
    mu = max((mean - dof) / effective, 0.0)
    spread = float(values.var(ddof=1)) - 2 * dof - 4 * effective * mu
    return mu, max(spread / effective**2, 0.0)


def estimate_variation(
    cells: IntArray, n_cells: int, sizes: Sequence[int] | None = None, *, ordered: bool = False
) -> Variation:
    """Estimate the natural variation from the reference's cell per row, rows in time order.

    For each chunk size ``c``, the first ``K·c`` rows form ``K`` contiguous chunks; chunk
    ``i`` against the rest of the reference gives ``X²_i = Σ_j (n·C_ij - c·R_j)² /
    ((n - c)·c·R_j)`` with effective size ``e = c·(n - c)/n``; then ``μ = (mean - ν)/e`` and
    ``σ² = (variance - 2ν - 4·e·μ)/e²``. With ``ordered`` cells (numbers), the same is done
    for each ordered component ``V²_a,i`` (``ν = 1``; see :func:`contrasts`). Counting is one
    ``bincount`` per size, so a million rows take a few milliseconds a size.

    >>> rng = np.random.default_rng(0)
    >>> v = estimate_variation(rng.integers(0, 5, 20_000), 5, ordered=True)
    >>> v.sizes[:3], max(v.mean) < 0.01, [name for name, _ in v.components]
    ((50, 200, 800), True, ['linear', 'quadratic'])
    """
    cells = np.asarray(cells, dtype=np.int64)
    n = cells.size
    totals = np.bincount(cells, minlength=n_cells).astype(np.int64)
    found: list[tuple[int, float, float]] = []
    parts: dict[str, list[tuple[float, float]]] = {name: [] for name in COMPONENTS}
    for c in chunk_sizes(n) if sizes is None else sizes:
        k = n // c
        if k < MIN_CHUNKS or c < 2:
            continue
        mapping = pool_map(totals, c)
        r = _pooled(totals, mapping)[0].astype(np.float64)
        dof = r.size - 1
        if dof < 1:
            continue
        chunk = np.repeat(np.arange(k, dtype=np.int64), c)
        counts = np.bincount(chunk * n_cells + cells[: k * c], minlength=k * n_cells)
        pooled = _pooled(counts.reshape(k, n_cells), mapping).astype(np.float64)
        x2 = np.sum((n * pooled - c * r) ** 2 / ((n - c) * c * r), axis=1)
        effective = c * (n - c) / n
        found.append((int(c), *_fit(x2, dof, effective)))
        if ordered:
            g = contrasts(r)
            shift = pooled / c - (r - pooled) / (n - c)
            v2 = effective * (shift @ g.T) ** 2
            for a, name in enumerate(COMPONENTS):
                # a component the cells cannot carry (two cells) is never tested: no spread
                parts[name].append(_fit(v2[:, a], 1, effective) if a < g.shape[0] else (0.0, 0.0))
    sized = tuple(f[0] for f in found)
    return Variation(
        sized,
        tuple(f[1] for f in found),
        tuple(f[2] for f in found),
        tuple(
            (name, Variation(sized, tuple(m for m, _ in fit), tuple(v for _, v in fit)))
            for name, fit in parts.items()
        )
        if ordered and found
        else (),
    )


@dataclass(frozen=True)
class Part:
    """One statistic of the verdict: ``name`` (omnibus, linear or quadratic), its raw
    ``statistic`` (``X²`` or ``V²_a``), its calibrated ``p_value`` and its share ``weight``
    of the column's level."""

    name: str
    statistic: float
    p_value: float
    weight: float


@dataclass(frozen=True)
class CalibratedTest:
    """Outcome of :func:`calibrated_chi_square`: the raw two-sample ``statistic`` (``X²``),
    the verdict's ``p_value``, the omnibus calibration (``χ²(dof)`` at ``statistic/scale``),
    the PSI over the same pooled cells and the ``parts`` tested.

    With one part the ``p_value`` is the omnibus's; with several it is the Bonferroni
    combination ``min(1, min_i p_i / w_i)``, so ``p_value <= alpha`` exactly when some part
    has ``p_i <= w_i·alpha``."""

    statistic: float
    p_value: float
    dof: float
    scale: float
    psi: float
    parts: tuple[Part, ...] = ()


def _calibrate(
    statistic: float, dof: float, effective: float, variation: Variation | None, size: int
) -> tuple[float, float, float]:
    """``(p-value, scale, dof')`` of ``statistic`` under the natural-variation model."""
    mu, sigma2 = (0.0, 0.0) if variation is None else variation.at(size)
    mean = dof + effective * mu
    variance = 2 * dof + 4 * effective * mu + effective**2 * sigma2
    scale, df = variance / (2 * mean), 2 * mean**2 / variance
    return float(stats.chi2.sf(statistic / scale, df)), scale, df


def calibrated_chi_square(
    reference: ArrayLike,
    current: ArrayLike,
    variation: Variation | None = None,
    *,
    ordered: bool | None = None,
) -> CalibratedTest:
    """Two-sample chi-square of ``current`` against ``reference`` counts, calibrated.

    Counts only: the verdict needs the window's count per reference cell and the stored
    variation, never the values. With ``ordered`` cells (deciles of a number) the omnibus,
    linear and quadratic parts are tested, each at its :data:`SPLIT` share of the level; a
    variation without component tables (stored before they existed) keeps the omnibus alone.
    ``ordered=None`` reads the order off the variation: cells whose variation carries
    component tables (estimated with ``ordered=True``) are ordered, others not.

    Without variation (and with no pooled cells) the statistic and p-value are those of
    :func:`scipy.stats.chi2_contingency` (no continuity correction) on the 2×k table.

    >>> t = calibrated_chi_square([100, 100], [50, 50])
    >>> t.statistic, t.p_value
    (0.0, 1.0)
    """
    ref = np.asarray(reference, dtype=np.int64)
    cur = np.asarray(current, dtype=np.int64)
    if ref.shape != cur.shape or ref.ndim != 1:
        raise ValueError("reference and current counts must be 1-D and aligned")
    n, m = int(ref.sum()), int(cur.sum())
    if n == 0 or m == 0:
        raise ValueError("both sides need at least one counted value")
    mapping = pool_map(ref, m)
    r = _pooled(ref, mapping)[0].astype(np.float64)
    o = _pooled(cur, mapping)[0].astype(np.float64)
    keep = (r + o) > 0
    r, o = r[keep], o[keep]
    dof = r.size - 1
    psi = _psi(r, o)
    if dof < 1:
        return CalibratedTest(0.0, 1.0, 0.0, 1.0, psi)
    pooled_share = (r + o) / (n + m)
    x2 = float(np.sum((n * o - m * r) ** 2 / ((n + m) * n * m * pooled_share)))
    effective = m * n / (m + n)
    p_value, scale, df = _calibrate(x2, dof, effective, variation, m)
    if ordered is None:
        ordered = variation is not None and bool(variation.components)
    tables = _component_tables(variation) if ordered and dof >= 2 else None
    if tables is None:
        return CalibratedTest(x2, p_value, df, scale, psi, (Part("omnibus", x2, p_value, 1.0),))
    g = contrasts(pooled_share)
    v2 = effective * (g @ (o / m - r / n)) ** 2
    parts = [Part("omnibus", x2, p_value, SPLIT["omnibus"])]
    for a, name in enumerate(COMPONENTS[: g.shape[0]]):
        p_a = _calibrate(float(v2[a]), 1, effective, tables[name], m)[0]
        parts.append(Part(name, float(v2[a]), p_a, SPLIT[name]))
    weight = sum(part.weight for part in parts)
    combined = min(1.0, min(part.p_value * weight / part.weight for part in parts))
    return CalibratedTest(x2, combined, df, scale, psi, tuple(parts))


def _component_tables(variation: Variation | None) -> dict[str, Variation | None] | None:
    """Tables for the ordered components; ``None`` when the variation was stored without them."""
    if variation is None:
        return dict.fromkeys(COMPONENTS)
    tables = {name: variation.component(name) for name in COMPONENTS}
    return None if any(t is None for t in tables.values()) else tables


def _psi(reference: FloatArray, current: FloatArray) -> float:
    p = np.maximum(reference / reference.sum(), PSI_EPSILON)
    q = np.maximum(current / current.sum(), PSI_EPSILON)
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((q - p) * np.log(q / p)))
