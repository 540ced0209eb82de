"""Drift tests that look at all features jointly.

Per-feature tests miss changes in how features relate to each other, and with many features
their multiple-testing burden grows. Two complementary checks live here:

* :func:`domain_classifier_drift` trains a classifier to tell reference rows from current
  rows. Its cross-validated ROC AUC is 0.5 when the windows are indistinguishable and grows
  with any change a gradient-boosted model can pick up, marginal or joint.
* :class:`PCAReconstructionDrift` learns the reference's principal subspace and tracks the
  error of reconstructing current rows from it. It is cheap to score repeatedly and reacts to
  changes in the correlation structure that leave every marginal untouched. It is blind to
  shifts that stay inside the learned subspace, so pair it with univariate tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sklearn.decomposition import PCA

__all__ = [
    "DomainClassifierResult",
    "PCAReconstructionDrift",
    "PCAReconstructionResult",
    "domain_classifier_drift",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class DomainClassifierResult:
    """Outcome of :func:`domain_classifier_drift`.

    ``statistic`` is the mean cross-validated ROC AUC and ``auc_std`` its spread over folds.
    ``feature_importance`` lists ``(feature, |AUC - 0.5|)`` from the most to the least
    separating feature, using each feature on its own.
    """

    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    auc_std: float
    n_reference: int
    n_current: int
    feature_importance: tuple[tuple[str, float], ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready representation (importance as an ordered ``{feature: score}`` map)."""
        return {
            "method": self.method,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "auc_std": self.auc_std,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "feature_importance": dict(self.feature_importance),
        }


@dataclass(frozen=True)
class PCAReconstructionResult:
    """Outcome of :meth:`PCAReconstructionDrift.score`.

    ``statistic`` is the current window's mean reconstruction error; ``drifted`` is true when
    it leaves ``[lower_threshold, threshold]``.
    """

    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    lower_threshold: float
    reference_error: float
    n_components: int
    n_current: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready representation."""
        return {
            "method": self.method,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "lower_threshold": self.lower_threshold,
            "reference_error": self.reference_error,
            "n_components": self.n_components,
            "n_current": self.n_current,
        }


def _matrix(values: npt.ArrayLike, name: str, *, allow_nan: bool) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, features), got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column")
    if np.isinf(arr).any():
        raise ValueError(f"{name} must not contain inf")
    if not allow_nan and np.isnan(arr).any():
        raise ValueError(f"{name} must not contain NaN; impute it first")
    return arr


def _check_columns(reference: FloatArray, current: FloatArray) -> None:
    if current.shape[1] != reference.shape[1]:
        raise ValueError(
            f"current has {current.shape[1]} columns but reference has {reference.shape[1]}"
        )


def _univariate_auc(reference: FloatArray, current: FloatArray) -> FloatArray:
    """Per-column ROC AUC of "current" against "reference" (Mann-Whitney U / (n m)).

    NaN ranks above every observed value, so a change in missingness also registers.
    """
    n, m = reference.shape[0], current.shape[0]
    both = np.vstack([reference, current])
    both[np.isnan(both)] = np.inf
    from scipy.stats import rankdata  # imported here: SciPy's stats take a second to import

    ranks = rankdata(both, axis=0)
    u = ranks[n:].sum(axis=0) - m * (m + 1) / 2.0
    return np.asarray(u / (n * m), dtype=np.float64)


def domain_classifier_drift(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    max_rows: int = 20_000,
    cv: int = 5,
    threshold_auc: float = 0.55,
    random_state: int = 0,
    feature_names: Sequence[str] | None = None,
) -> DomainClassifierResult:
    """Can a classifier tell the current window from the reference? Drifted if AUC > threshold.

    Each side is subsampled to at most ``max_rows`` rows, reference rows are labelled 0 and
    current rows 1, and a ``HistGradientBoostingClassifier`` (fast, NaN-aware) is scored by
    stratified ``cv``-fold ROC AUC. AUC is insensitive to the class ratio, so the windows need
    not be the same size. The default threshold of 0.55 leaves room for the fold-to-fold noise
    of a few thousand rows while still flagging shifts of a fraction of a standard deviation.

    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(1000, 3))
    >>> cur = rng.normal(size=(1000, 3)) + [0.0, 0.0, 1.0]
    >>> res = domain_classifier_drift(ref, cur, feature_names=["a", "b", "c"])
    >>> res.drifted, res.feature_importance[0][0]
    (True, 'c')
    """
    ref = _matrix(reference, "reference", allow_nan=True)
    cur = _matrix(current, "current", allow_nan=True)
    _check_columns(ref, cur)
    d = ref.shape[1]
    if cv < 2:
        raise ValueError(f"cv must be at least 2, got {cv}")
    if max_rows < cv:
        raise ValueError(f"max_rows must be at least cv ({cv}), got {max_rows}")
    if not 0.5 <= threshold_auc < 1.0:
        raise ValueError(f"threshold_auc must lie in [0.5, 1), got {threshold_auc}")
    for name, arr in (("reference", ref), ("current", cur)):
        if arr.shape[0] < cv:
            raise ValueError(f"{name} needs at least cv={cv} rows, got {arr.shape[0]}")
    names = [f"x{j}" for j in range(d)] if feature_names is None else list(feature_names)
    if len(names) != d:
        raise ValueError(f"feature_names must have {d} entries, got {len(names)}")

    rng = np.random.default_rng(random_state)
    if ref.shape[0] > max_rows:
        ref = ref[rng.choice(ref.shape[0], size=max_rows, replace=False)]
    if cur.shape[0] > max_rows:
        cur = cur[rng.choice(cur.shape[0], size=max_rows, replace=False)]

    # scikit-learn is imported here: a process that never runs this check need not import it
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x = np.vstack([ref, cur])
    y = np.concatenate([np.zeros(ref.shape[0]), np.ones(cur.shape[0])])
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=random_state)
    # Early stopping and modest trees keep the model from memorising noise, which would drag
    # the no-drift AUC below 0.5 and blunt real signals; they also make it several times faster.
    model = HistGradientBoostingClassifier(
        early_stopping=True, max_leaf_nodes=15, min_samples_leaf=40, random_state=random_state
    )
    aucs = cross_val_score(model, x, y, cv=folds, scoring="roc_auc")
    auc = float(np.mean(aucs))

    separation = np.abs(_univariate_auc(ref, cur) - 0.5)
    order = np.argsort(-separation, kind="stable")
    importance = tuple((names[j], float(separation[j])) for j in order)
    return DomainClassifierResult(
        method="domain_classifier",
        statistic=auc,
        p_value=None,
        threshold=float(threshold_auc),
        drifted=auc > threshold_auc,
        auc_std=float(np.std(aucs)),
        n_reference=int(ref.shape[0]),
        n_current=int(cur.shape[0]),
        feature_importance=importance,
    )


class PCAReconstructionDrift:
    """Flag windows whose rows are reconstructed unusually badly (or well) by reference PCA.

    ``fit`` standardises the reference, keeps enough principal components to explain
    ``explained_variance`` of it, and measures each reference row's mean squared
    reconstruction error out of fold (5-fold cross-fitting, so the reference level is not
    flattered by in-sample fit). Means of ``n_bootstrap`` chunks of ``chunk_size`` rows drawn
    with replacement give the spread of a window mean.

    ``score`` compares a window's mean error with the band
    ``reference_error ± n_sigma * chunk_std * sqrt(chunk_size / m)`` for a window of ``m``
    rows: the bootstrap spread rescaled by the 1/sqrt(m) law, so one fitted detector serves
    windows of any size. The bootstrap treats rows as independent; with strongly
    autocorrelated data widen the band through ``n_sigma``.

    >>> rng = np.random.default_rng(0)
    >>> cov = [[1.0, 0.9], [0.9, 1.0]]
    >>> det = PCAReconstructionDrift(explained_variance=0.9).fit(
    ...     rng.multivariate_normal([0, 0], cov, size=2000))
    >>> det.score(rng.multivariate_normal([0, 0], cov, size=500)).drifted
    False
    >>> flipped = [[1.0, -0.9], [-0.9, 1.0]]
    >>> det.score(rng.multivariate_normal([0, 0], flipped, size=500)).drifted
    True
    """

    def __init__(
        self,
        *,
        explained_variance: float = 0.95,
        n_sigma: float = 3.0,
        chunk_size: int = 500,
        n_bootstrap: int = 500,
        random_state: int = 0,
    ) -> None:
        if not 0.0 < explained_variance < 1.0:
            raise ValueError(f"explained_variance must lie in (0, 1), got {explained_variance}")
        if n_sigma <= 0:
            raise ValueError(f"n_sigma must be positive, got {n_sigma}")
        if chunk_size < 1 or n_bootstrap < 2:
            raise ValueError("chunk_size must be >= 1 and n_bootstrap >= 2")
        self.explained_variance = explained_variance
        self.n_sigma = n_sigma
        self.chunk_size = chunk_size
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state
        self._mean: FloatArray | None = None
        self._scale: FloatArray | None = None
        self._pca: PCA | None = None
        self._reference_error = float("nan")
        self._chunk_std = float("nan")
        self._chunk = chunk_size

    def _errors(self, pca: PCA, z: FloatArray) -> FloatArray:
        residual = z - pca.inverse_transform(pca.transform(z))
        return np.asarray(np.mean(residual**2, axis=1), dtype=np.float64)

    def fit(self, reference: npt.ArrayLike) -> PCAReconstructionDrift:
        """Learn the reference subspace and the spread of its chunk-mean error."""
        ref = _matrix(reference, "reference", allow_nan=False)
        n, d = ref.shape
        if d < 2:
            raise ValueError(f"reference needs at least 2 columns, got {d}")
        if n < 10:
            raise ValueError(f"reference needs at least 10 rows, got {n}")
        self._mean = ref.mean(axis=0)
        scale = ref.std(axis=0)
        self._scale = np.where(scale > 0.0, scale, 1.0)  # constant columns stay constant
        z = (ref - self._mean) / self._scale
        from sklearn.decomposition import PCA  # imported when first fitted, not with the module

        self._pca = PCA(n_components=self.explained_variance, svd_solver="full").fit(z)
        k = int(self._pca.n_components_)

        rng = np.random.default_rng(self.random_state)
        fold = rng.permutation(n) % 5
        errors = np.empty(n)
        for f in range(5):
            held_out = fold == f
            part = PCA(n_components=k, svd_solver="full").fit(z[~held_out])
            errors[held_out] = self._errors(part, z[held_out])
        self._reference_error = float(errors.mean())
        self._chunk = min(self.chunk_size, n)
        chunks = rng.integers(0, n, size=(self.n_bootstrap, self._chunk))
        self._chunk_std = float(errors[chunks].mean(axis=1).std(ddof=1))
        return self

    @property
    def n_components(self) -> int:
        """Number of principal components kept."""
        if self._pca is None:
            raise RuntimeError("PCAReconstructionDrift is not fitted; call fit(reference)")
        return int(self._pca.n_components_)

    @property
    def reference_error(self) -> float:
        """Mean out-of-fold reconstruction error of the reference rows."""
        return self._reference_error

    def score(self, current: npt.ArrayLike) -> PCAReconstructionResult:
        """Mean reconstruction error of ``current`` and whether it leaves the reference band."""
        if self._pca is None or self._mean is None or self._scale is None:
            raise RuntimeError("PCAReconstructionDrift is not fitted; call fit(reference)")
        cur = _matrix(current, "current", allow_nan=False)
        if cur.shape[1] != self._mean.size:
            raise ValueError(
                f"current has {cur.shape[1]} columns but reference has {self._mean.size}"
            )
        m = cur.shape[0]
        if m == 0:
            raise ValueError("current must not be empty")
        error = float(self._errors(self._pca, (cur - self._mean) / self._scale).mean())
        half_width = self.n_sigma * self._chunk_std * np.sqrt(self._chunk / m)
        upper = self._reference_error + half_width
        lower = max(self._reference_error - half_width, 0.0)
        return PCAReconstructionResult(
            method="pca_reconstruction",
            statistic=error,
            p_value=None,
            threshold=float(upper),
            drifted=bool(error > upper or error < lower),
            lower_threshold=float(lower),
            reference_error=self._reference_error,
            n_components=self.n_components,
            n_current=m,
        )
