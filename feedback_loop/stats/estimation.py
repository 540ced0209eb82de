"""Estimate classification metrics before the labels arrive.

Ground truth is often delayed by days or weeks, yet a silent drop in accuracy is exactly what
monitoring should catch early. If a model's scores are calibrated -- among rows scored 0.8,
80 % are positive -- then each row contributes its probability to the cells of the confusion
matrix, and summing those contributions over a window gives the *expected* confusion matrix
without a single label. This stays valid under covariate shift (the inputs change, P(y | x)
does not), which is the common kind of drift; it cannot see concept drift, where P(y | x)
itself moves.

Calibration is learned once on labelled reference data with isotonic regression and kept as a
small monotone piecewise-linear table, so it serialises to JSON and applying it to a million
scores is one ``np.interp`` call.

Ratios (precision, recall, F1, ROC AUC) are reported as ratios of expected counts, which agree
with the expected ratio up to O(1/n). Precision, recall and F1 of an empty denominator are
0.0, as scikit-learn reports them by default; an undefined ROC AUC is NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt

__all__ = [
    "BinaryEstimate",
    "MulticlassEstimate",
    "ScoreCalibrator",
    "estimate_binary",
    "estimate_multiclass",
    "fit_one_vs_rest",
]

FloatArray = npt.NDArray[np.float64]


class BinaryEstimate(TypedDict):
    """Expected confusion counts and metrics of a binary classifier over one window."""

    n: int
    threshold: float
    tp: float
    fp: float
    fn: float
    tn: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    roc_auc: float


class MulticlassEstimate(TypedDict):
    """Expected accuracy, macro metrics and confusion matrix (rows: true, columns: predicted)."""

    n: int
    n_classes: int
    accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    confusion: list[list[float]]


def _scores_1d(values: npt.ArrayLike, name: str) -> FloatArray:
    """Return ``values`` as a finite 1-D float array in [0, 1], or raise naming ``name``."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    lo, hi = float(arr.min()), float(arr.max())  # NaN propagates through min/max
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"{name} must be finite (found NaN or inf)")
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} must lie in [0, 1], found values in [{lo:g}, {hi:g}]")
    return arr


def _binary_labels(labels: npt.ArrayLike, n: int) -> FloatArray:
    arr = np.asarray(labels)
    if arr.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match scores, got {arr.shape}")
    if not np.isin(arr, (0, 1)).all():
        raise ValueError("labels must be binary (0/1 or bool)")
    out = arr.astype(np.float64)
    if out.min() == out.max():
        raise ValueError("labels must contain both classes to fit a calibrator")
    return out


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0.0 else 0.0


class ScoreCalibrator:
    """Monotone map from raw scores to calibrated probabilities, stored as a knot table.

    Between knots the map is linear; outside them it is clipped to the end values, matching
    ``IsotonicRegression(out_of_bounds="clip")`` exactly.

    >>> cal = ScoreCalibrator.fit([0.1, 0.2, 0.6, 0.7, 0.8, 0.9], [0, 0, 0, 1, 1, 1])
    >>> cal.transform([0.0, 0.65, 1.0]).round(3).tolist()
    [0.0, 0.5, 1.0]
    >>> ScoreCalibrator.from_dict(cal.to_dict()) == cal
    True
    """

    __slots__ = ("_x", "_y")

    def __init__(self, x: npt.ArrayLike, y: npt.ArrayLike) -> None:
        xs = np.array(x, dtype=np.float64)
        ys = np.array(y, dtype=np.float64)
        if xs.ndim != 1 or xs.size == 0:
            raise ValueError(f"x must be a non-empty 1-D sequence, got shape {xs.shape}")
        if ys.shape != xs.shape:
            raise ValueError(f"y must have the same shape as x {xs.shape}, got {ys.shape}")
        if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
            raise ValueError("x and y must be finite")
        if np.any(np.diff(xs) <= 0):
            raise ValueError("x must be strictly increasing")
        if np.any(np.diff(ys) < 0):
            raise ValueError("y must be non-decreasing")
        if ys[0] < 0.0 or ys[-1] > 1.0:
            raise ValueError("y must lie in [0, 1]")
        xs.flags.writeable = False
        ys.flags.writeable = False
        self._x: FloatArray = xs
        self._y: FloatArray = ys

    @classmethod
    def fit(
        cls,
        scores: npt.ArrayLike,
        labels: npt.ArrayLike,
        *,
        sample_weight: npt.ArrayLike | None = None,
    ) -> ScoreCalibrator:
        """Fit isotonic regression of ``labels`` on ``scores`` (positive-class scores)."""
        s = _scores_1d(scores, "scores")
        y = _binary_labels(labels, s.size)
        from sklearn.isotonic import IsotonicRegression  # scikit-learn: imported when used

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        iso.fit(s, y, sample_weight=sample_weight)
        return cls(iso.X_thresholds_, iso.y_thresholds_)

    @classmethod
    def identity(cls) -> ScoreCalibrator:
        """A calibrator that leaves scores unchanged, for models already known to be calibrated.

        >>> ScoreCalibrator.identity().transform([0.25]).tolist()
        [0.25]
        """
        return cls([0.0, 1.0], [0.0, 1.0])

    @property
    def x(self) -> FloatArray:
        """Knot positions (read-only, strictly increasing)."""
        return self._x

    @property
    def y(self) -> FloatArray:
        """Calibrated probability at each knot (read-only, non-decreasing)."""
        return self._y

    def transform(self, scores: npt.ArrayLike) -> FloatArray:
        """Map scores to calibrated probabilities (any shape, values not validated)."""
        return np.interp(np.asarray(scores, dtype=np.float64), self._x, self._y)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready representation."""
        return {"kind": "piecewise_linear", "x": self._x.tolist(), "y": self._y.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreCalibrator:
        """Inverse of :meth:`to_dict`."""
        kind = data.get("kind", "piecewise_linear")
        if kind != "piecewise_linear":
            raise ValueError(f"data has unknown calibrator kind {kind!r}")
        return cls(data["x"], data["y"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ScoreCalibrator):
            return NotImplemented
        return bool(np.array_equal(self._x, other._x) and np.array_equal(self._y, other._y))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ScoreCalibrator(n_knots={self._x.size})"


def _expected_auc(sorted_scores: FloatArray, p: FloatArray) -> float:
    """ROC AUC expected when row i is positive with probability ``p[i]``, independently.

    Rows are ranked by the model's own scores (``sorted_scores``, ascending); each distinct
    pair (i, j) adds ``p_i (1 - p_j)`` when i outranks j and half of it on a tie. Self-pairs
    are excluded so the result matches the realised AUC's expectation to O(1/n).
    """
    n = sorted_scores.size
    starts = np.flatnonzero(np.concatenate(([True], sorted_scores[1:] != sorted_scores[:-1])))
    pos = np.add.reduceat(p, starts)  # expected positives per tie group
    neg = np.diff(np.append(starts, n)) - pos  # expected negatives per tie group
    neg_below = np.cumsum(neg) - neg  # expected negatives strictly below each group
    self_pairs = float(np.dot(p, 1.0 - p))
    numerator = float(np.dot(pos, neg_below)) + 0.5 * (float(np.dot(pos, neg)) - self_pairs)
    denominator = float(pos.sum()) * float(neg.sum()) - self_pairs
    return numerator / denominator if denominator > 0.0 else float("nan")


def estimate_binary(
    scores: npt.ArrayLike,
    threshold: float = 0.5,
    calibrator: ScoreCalibrator | None = None,
) -> BinaryEstimate:
    """Expected confusion counts and metrics of a binary classifier from its scores alone.

    A row is predicted positive when its score is >= ``threshold``. ``calibrator`` maps scores
    to probabilities; leave it ``None`` when the scores are already calibrated. ROC AUC ranks
    rows by the raw scores (what the model outputs) and weighs them by the calibrated
    probabilities, so flat isotonic steps do not introduce artificial ties.

    >>> est = estimate_binary([0.9, 0.8, 0.3, 0.1])
    >>> round(est["accuracy"], 3), round(est["tp"], 2), round(est["fn"], 2)
    (0.825, 1.7, 0.4)
    """
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold!r}")
    # Every quantity below is invariant to row order, so sort once: predicted positives become
    # a suffix and tie groups for the AUC become contiguous runs.
    s = np.sort(_scores_1d(scores, "scores"))
    p = s if calibrator is None else calibrator.transform(s)
    n = s.size
    split = int(np.searchsorted(s, threshold, side="left"))
    n_pos_pred = n - split
    tp = float(p[split:].sum())
    fn = float(p[:split].sum())
    fp = n_pos_pred - tp
    tn = split - fn
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    return BinaryEstimate(
        n=n,
        threshold=float(threshold),
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        accuracy=(tp + tn) / n,
        precision=precision,
        recall=recall,
        f1=_ratio(2.0 * tp, 2.0 * tp + fp + fn),
        roc_auc=_expected_auc(s, p),
    )


def _proba_2d(proba: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(proba, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(f"proba must have shape (n, k) with k >= 2, got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError("proba must not be empty")
    if not np.isfinite(arr).all():
        raise ValueError("proba must be finite (found NaN or inf)")
    if arr.min() < 0.0 or arr.max() > 1.0:
        raise ValueError("proba must lie in [0, 1]")
    if np.any(arr.sum(axis=1) <= 0.0):
        raise ValueError("proba has a row of zeros")
    return arr


def fit_one_vs_rest(proba: npt.ArrayLike, labels: npt.ArrayLike) -> list[ScoreCalibrator]:
    """Fit one calibrator per class on its column, for :func:`estimate_multiclass`.

    ``labels`` are integer class indices into the columns of ``proba``.

    >>> cals = fit_one_vs_rest([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9]], [0, 1, 1, 1])
    >>> len(cals)
    2
    """
    q = _proba_2d(proba)
    y = np.asarray(labels)
    n, k = q.shape
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match proba, got {y.shape}")
    if not np.isin(y, np.arange(k)).all():
        raise ValueError(f"labels must be integer class indices in [0, {k})")
    return [ScoreCalibrator.fit(q[:, j], y == j) for j in range(k)]


def estimate_multiclass(
    proba: npt.ArrayLike,
    calibrators: Sequence[ScoreCalibrator | None] | None = None,
) -> MulticlassEstimate:
    """Expected accuracy and macro precision/recall/F1 of a multiclass classifier.

    The predicted class is the argmax of the raw ``proba``. Each column is optionally mapped
    through its one-vs-rest calibrator (``None`` entries are left as they are) and rows are
    renormalised to sum to one; a row that calibration maps to all zeros keeps its raw
    probabilities. Cell (j, c) of the expected confusion matrix is the summed probability of
    class j over rows predicted c. One-vs-rest calibration does not make the renormalised rows
    jointly calibrated, so with more than two classes expect a residual bias of up to about a
    point (typically an overstatement for overconfident models).

    >>> est = estimate_multiclass([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])
    >>> round(est["accuracy"], 3)
    0.65
    """
    raw = _proba_2d(proba)
    n, k = raw.shape
    pred = raw.argmax(axis=1)
    q = raw
    if calibrators is not None:
        if len(calibrators) != k:
            raise ValueError(
                f"calibrators must have one entry per class ({k}), got {len(calibrators)}"
            )
        q = np.column_stack(
            [
                raw[:, j] if cal is None else cal.transform(raw[:, j])
                for j, cal in enumerate(calibrators)
            ]
        )
    totals = q.sum(axis=1)
    empty = totals <= 0.0
    if empty.any():
        q[empty] = raw[empty]
        totals[empty] = raw[empty].sum(axis=1)
    q = q / totals[:, None]
    confusion = np.stack([np.bincount(pred, weights=q[:, j], minlength=k) for j in range(k)])
    correct = np.diag(confusion)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    precision = [_ratio(c, d) for c, d in zip(correct, predicted, strict=True)]
    recall = [_ratio(c, d) for c, d in zip(correct, actual, strict=True)]
    f1 = [_ratio(2.0 * c, d + a) for c, d, a in zip(correct, predicted, actual, strict=True)]
    return MulticlassEstimate(
        n=n,
        n_classes=k,
        accuracy=float(correct.sum()) / n,
        macro_precision=float(np.mean(precision)),
        macro_recall=float(np.mean(recall)),
        macro_f1=float(np.mean(f1)),
        confusion=confusion.tolist(),
    )
