"""Classification quality metrics over integer class codes.

These run on every metrics query over windows of up to millions of rows, so everything is
vectorised: the counting metrics come from one confusion matrix, and ROC AUC costs one integer
sort per ranked class. Definitions follow scikit-learn (zero_division=0, eps clipping for log
loss, tie-aware AUC) so numbers match what users get offline; calling scikit-learn once per
metric would validate and scan the arrays again each time, several times slower.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["CLASSIFICATION_KEYS", "classification_metrics"]

CLASSIFICATION_KEYS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "brier")

# Clip probabilities like scikit-learn's log_loss: float64 machine epsilon.
_EPS = float(np.finfo(np.float64).eps)
_ONE_BITS = np.float64(1.0).view(np.uint64)
# Above this many cells the dense confusion matrix is skipped for per-class counting.
_MAX_CONFUSION_CELLS = 1 << 22

Metrics = dict[str, float | None]
_IntArray = npt.NDArray[np.intp]
_FloatArray = npt.NDArray[np.float64]
_BoolArray = npt.NDArray[np.bool_]


def classification_metrics(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    n_classes: int,
    *,
    positive: int | None = None,
    score: npt.ArrayLike | None = None,
    proba: npt.ArrayLike | None = None,
) -> Metrics:
    """Accuracy, precision, recall, F1, ROC AUC, log loss and Brier score of one window.

    ``y_true`` and ``y_pred`` hold class codes ``0 .. n_classes - 1``.

    * ``positive`` given: binary metrics for that class against all others. ``score`` is
      P(positive) per row; rows where it is NaN are left out of roc_auc, log_loss and brier.
      Accuracy is always the exact-match rate of the codes.
    * ``positive`` is None: multiclass metrics. Precision, recall and F1 are macro averages
      over the classes seen in ``y_true`` or ``y_pred``. ``proba`` is an ``(n, n_classes)``
      matrix whose column ``c`` is P(class ``c``); rows holding a NaN are left out of the
      probability metrics. ROC AUC is the one-vs-rest macro average over the classes present
      in ``y_true`` (a class with no true rows has no defined AUC and is skipped). Log loss
      and Brier use every column as given, without renormalising rows; the multiclass Brier
      score sums over classes (range 0..2) and is halved for two classes, as in scikit-learn.
      A column-major (Fortran-ordered) ``proba`` avoids a strided copy per class.

    A metric that cannot be computed (no rows, a single class for AUC, no probabilities) is
    None. Mismatched lengths or shapes, codes outside the range and probabilities outside
    ``[0, 1]`` raise ``ValueError``.

    >>> m = classification_metrics([0, 1, 1, 0], [0, 1, 0, 0], 2, positive=1,
    ...                            score=[0.2, 0.9, 0.4, float("nan")])
    >>> m["accuracy"], m["precision"], m["recall"], m["roc_auc"]
    (0.75, 1.0, 0.5, 1.0)
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer):
        raise ValueError(f"n_classes must be an int, got {n_classes!r}")
    k = int(n_classes)
    if k < 1:
        raise ValueError(f"n_classes must be at least 1, got {k}")
    yt = _codes("y_true", y_true, k)
    yp = _codes("y_pred", y_pred, k)
    n = yt.size
    if yp.size != n:
        raise ValueError(f"y_true and y_pred have different lengths: {n} vs {yp.size}")

    binary = positive is not None
    if binary and proba is not None:
        raise ValueError("proba is for multiclass metrics; with positive= pass score=")
    if not binary and score is not None:
        raise ValueError("score is for binary metrics; pass positive= or use proba=")
    if positive is not None and (
        isinstance(positive, bool)
        or not isinstance(positive, int | np.integer)
        or not 0 <= positive < k
    ):
        raise ValueError(f"positive must be a class code in [0, {k}), got {positive!r}")
    s = None if score is None else _float_array("score", score, (n,))
    p = None if proba is None else _float_array("proba", proba, (n, k))

    out: Metrics = dict.fromkeys(CLASSIFICATION_KEYS)
    if n == 0:
        return out
    tp, true_sum, pred_sum = _class_counts(yt, yp, k)
    out["accuracy"] = float(tp.sum()) / n
    if positive is not None:
        c = int(positive)
        out.update(_binary_counts(int(tp[c]), int(true_sum[c]), int(pred_sum[c])))
        if s is not None:
            out.update(_binary_scores(yt == c, s))
    else:
        out.update(_macro_counts(tp, true_sum, pred_sum))
        if p is not None:
            out.update(_multiclass_scores(yt, p, k, true_sum))
    return out


def _codes(name: str, values: npt.ArrayLike, n_classes: int) -> _IntArray:
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    if a.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integer class codes, got dtype {a.dtype}")
    # Seen as unsigned, negative codes become huge, so one max checks both ends of the range.
    unsigned = a.view(f"u{a.itemsize}") if a.dtype.kind == "i" else a
    if a.size and unsigned.max() >= n_classes:
        raise ValueError(f"{name} holds codes outside [0, {n_classes}): {a.min()}..{a.max()}")
    return a.astype(np.intp, copy=False)


def _float_array(name: str, values: npt.ArrayLike, shape: tuple[int, ...]) -> _FloatArray:
    a = np.asarray(values, dtype=np.float64)
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    return a


def _drop_nan(name: str, values: _FloatArray) -> _BoolArray | None:
    """Check the probabilities and return the mask of rows without NaN (None if all are)."""
    # Bit patterns of +0.0 .. 1.0 are exactly the integers up to that of 1.0; negatives and NaN
    # lie above it. One integer max therefore clears the common case.
    if values.view(np.uint64).max() <= _ONE_BITS:
        return None
    lo, hi = np.fmin.reduce(values, axis=None), np.fmax.reduce(values, axis=None)
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} must be probabilities in [0, 1], got {lo}..{hi}")
    rows = values if values.ndim == 1 else np.einsum("ij->i", values)
    known = ~np.isnan(rows)
    return None if known.all() else known


def _class_counts(
    y_true: _IntArray, y_pred: _IntArray, k: int
) -> tuple[_IntArray, _IntArray, _IntArray]:
    """True positives, true totals and predicted totals per class."""
    if k * k <= _MAX_CONFUSION_CELLS:
        cm = np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)
        return np.diagonal(cm).copy(), cm.sum(axis=1), cm.sum(axis=0)
    # Many classes: the dense matrix would be mostly empty; count the marginals instead.
    hits = y_true[y_true == y_pred]
    return (
        np.bincount(hits, minlength=k),
        np.bincount(y_true, minlength=k),
        np.bincount(y_pred, minlength=k),
    )


def _binary_counts(tp: int, true_pos: int, pred_pos: int) -> Metrics:
    return {
        "precision": tp / pred_pos if pred_pos else 0.0,
        "recall": tp / true_pos if true_pos else 0.0,
        "f1": 2 * tp / (true_pos + pred_pos) if true_pos + pred_pos else 0.0,
    }


def _macro_counts(tp: _IntArray, true_sum: _IntArray, pred_sum: _IntArray) -> Metrics:
    seen = (true_sum + pred_sum) > 0
    tp_f = tp[seen].astype(np.float64)
    t, p = true_sum[seen], pred_sum[seen]
    zeros = np.zeros_like(tp_f)
    precision = np.divide(tp_f, p, out=zeros.copy(), where=p > 0)
    recall = np.divide(tp_f, t, out=zeros.copy(), where=t > 0)
    f1 = np.divide(2.0 * tp_f, t + p, out=zeros, where=(t + p) > 0)
    return {
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1": float(f1.mean()),
    }


def _binary_scores(is_pos: _BoolArray, score: _FloatArray) -> Metrics:
    known = _drop_nan("score", score)
    if known is not None:
        score, is_pos = score[known], is_pos[known]
    m = score.size
    if m == 0:
        return {}
    # Log loss on the probability given to the true outcome, clipped as scikit-learn does.
    p_true = np.where(is_pos, score, 1.0 - score)
    np.clip(p_true, _EPS, 1.0 - _EPS, out=p_true)
    residual = score - is_pos
    return {
        "roc_auc": _roc_auc(score, is_pos),
        "log_loss": float(-np.log(p_true).mean()),
        "brier": _sum_sq(residual) / m,
    }


def _multiclass_scores(
    y_true: _IntArray, proba: _FloatArray, k: int, class_sizes: _IntArray
) -> Metrics:
    known = _drop_nan("proba", proba)
    if known is not None:
        y_true = y_true[known]
        class_sizes = np.bincount(y_true, minlength=k)
    m = y_true.size
    if m == 0 or k < 2:
        return {}
    work = _AucWork(m)
    p_true = _true_class_proba(proba, y_true, known, work)
    rank = np.count_nonzero(class_sizes) >= 2
    aucs = []
    sq_sum = 0.0
    buffer, residual = np.empty(m), np.empty(m)
    # One pass per class (never per row): the column, copied once into a contiguous buffer,
    # feeds the Brier residual and the one-vs-rest AUC.
    for c in range(k):
        column = proba[:, c]
        if known is not None:
            column = np.compress(known, column, out=buffer)
        elif not column.flags.c_contiguous:
            np.copyto(buffer, column)
            column = buffer
        is_c = y_true == c
        np.subtract(column, is_c, out=residual)
        sq_sum += _sum_sq(residual)
        if rank and class_sizes[c]:
            aucs.append(_ranked_auc(column, is_c, int(class_sizes[c]), work))
    np.clip(p_true, _EPS, 1.0 - _EPS, out=p_true)
    # scikit-learn halves the Brier score only for two columns (the binary convention).
    brier = sq_sum / m * (0.5 if k < 3 else 1.0)
    return {
        "roc_auc": float(np.mean(aucs)) if aucs else None,
        "log_loss": float(-np.log(p_true).mean()),
        "brier": brier,
    }


def _true_class_proba(
    proba: _FloatArray, y_true: _IntArray, known: _BoolArray | None, work: _AucWork
) -> _FloatArray:
    """Each kept row's probability for its true class, as a fresh array."""
    n, k = proba.shape
    rows = work.positions if known is None else np.flatnonzero(known)
    # A flat take on the underlying buffer is several times faster than 2-D fancy indexing.
    if proba.flags.c_contiguous:
        flat = np.multiply(rows, k, out=work.scratch)
        flat += y_true
        return np.take(proba.ravel(), flat)
    if proba.flags.f_contiguous:
        flat = np.multiply(y_true, n, out=work.scratch)
        flat += rows
        return np.take(proba.T.ravel(), flat)
    return proba[rows, y_true]


def _roc_auc(score: _FloatArray, is_pos: _BoolArray) -> float | None:
    n_pos = int(np.count_nonzero(is_pos))
    if n_pos == 0 or n_pos == is_pos.size:
        return None
    return _ranked_auc(score, is_pos, n_pos, _AucWork(score.size))


class _AucWork:
    """Scratch buffers of one call, reused across its per-class passes."""

    def __init__(self, n: int) -> None:
        self.keys = np.empty(n, dtype=np.int64)
        self.scratch = np.empty(n, dtype=np.int64)
        self.positions = np.arange(n, dtype=np.int64)


def _ranked_auc(score: _FloatArray, is_pos: _BoolArray, n_pos: int, work: _AucWork) -> float:
    """Exact ROC AUC (ties count one half) from a single integer sort.

    AUC is the Mann-Whitney statistic ``U / (P * N)``. Scores are known to lie in ``[0, 1]``,
    so their IEEE bit patterns order like the floats; shifting out the sign bit (which only
    merges -0.0 with 0.0) leaves room to append the label as the lowest bit. Sorting those
    keys puts, within each run of equal scores, negatives before positives, so the positive
    at sorted position ``i`` has exactly ``i - (#positives before it)`` negatives scored at or
    below it. Summing that over positives counts tied pairs fully; subtracting half of the
    tied positive-negative pairs gives ``U``. Everything stays in exact integers.
    """
    n_neg = score.size - n_pos
    keys, scratch = work.keys, work.scratch
    np.left_shift(score.view(np.uint64), np.uint64(1), out=keys.view(np.uint64))
    np.bitwise_or(keys, is_pos, out=keys)
    keys.sort()
    # Sum over positives of the negatives at or below: positions minus (0 + 1 + ... + P-1).
    np.bitwise_and(keys, 1, out=scratch)
    positions = int(np.dot(scratch, work.positions))
    at_or_below = positions - n_pos * (n_pos - 1) // 2
    # A tied run holding both labels has one step from an even key to the next odd key.
    np.subtract(keys[1:], keys[:-1], out=scratch[:-1])
    steps = np.flatnonzero(scratch[:-1] == 1)
    steps = steps[(keys[steps] & 1) == 0]
    tied_pairs = 0
    if steps.size:
        run = keys[steps]
        starts = np.searchsorted(keys, run, side="left")
        ends = np.searchsorted(keys, run + 1, side="right")
        tied_pairs = int(np.dot(steps + 1 - starts, ends - steps - 1))
    twice_u = 2 * at_or_below - tied_pairs
    return twice_u / (2 * n_pos * n_neg)


def _sum_sq(values: npt.NDArray[np.float64]) -> float:
    # einsum avoids both a temporary and BLAS, whose thread start-up dominates at this size.
    return float(np.einsum("i,i->", values, values))
