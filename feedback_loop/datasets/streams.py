"""Synthetic drifting streams from their published definitions, and a stationary control.

A loop is judged on streams it was not tuned on, where the truth about drift is known: when a
concept changes (abrupt streams), or that it changes all the time (gradual ones), or that it
never does (the control). Every generator is seeded and vectorised, and returns a
:class:`Stream`: a frame with a ``timestamp`` column (``rows_per_day`` rows a day, evenly spaced,
from ``start``), the features and ``target``, plus the row indices where a new concept begins.

Sources (definitions only):

* SEA: W. N. Street and Y. Kim, "A streaming ensemble algorithm (SEA) for large-scale
  classification", KDD 2001. Three attributes uniform on [0, 10], the third irrelevant; class 1
  when ``f1 + f2 <= theta``; four concepts with theta 8, 9, 7 and 9.5; 10% class noise.
* Agrawal: R. Agrawal, T. Imielinski and A. Swami, "Database mining: a performance
  perspective", IEEE TKDE 5(6), 1993. Nine attributes of a loan applicant; classification
  functions 1 to 4 (group A is ``target = 1``); attributes perturbed by 5% as in the paper.
* Rotating hyperplane: G. Hulten, L. Spencer and P. Domingos, "Mining time-changing data
  streams", KDD 2001 (as parameterised in MOA's HyperplaneGenerator: weights of the drifting
  attributes move by ``magnitude`` per row and reverse direction with probability 10%; 5%
  class noise).
* Random RBF with moving centroids: A. Bifet et al., "New ensemble methods for evolving data
  streams", KDD 2009 (MOA's RandomRBFGeneratorDrift): centroids with a class, a weight and a
  spread; each row is drawn around a centroid chosen by weight; centroids move at a constant
  speed and bounce off the unit cube's faces.
* Elec2 shuffled: the bundled Elec2 rows in a random order under Elec2's own timestamps, so
  every period looks like every other: a stream without drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

DEFAULT_START = pd.Timestamp("2024-01-01", tz="UTC")
SEA_THETAS: tuple[float, ...] = (8.0, 9.0, 7.0, 9.5)
AGRAWAL_FEATURES = [
    "salary",
    "commission",
    "age",
    "elevel",
    "car",
    "zipcode",
    "hvalue",
    "hyears",
    "loan",
]
Drift = Literal["abrupt", "gradual", "none"]


@dataclass(frozen=True)
class Stream:
    """A replayable stream and what is known about its drift.

    ``change_points`` are row indices where a new concept starts (abrupt drift only; a gradual
    stream changes at every row and a stationary one never does)."""

    name: str
    data: pd.DataFrame
    features: list[str]
    task: Literal["binary", "multiclass", "regression"]
    drift: Drift
    change_points: tuple[int, ...] = ()
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def change_times(self) -> list[pd.Timestamp]:
        """When each new concept starts, on the stream's clock."""
        return [self.data["timestamp"].iloc[i] for i in self.change_points]


def timestamps(n: int, rows_per_day: float, start: pd.Timestamp | str = DEFAULT_START) -> pd.Series:
    """``n`` evenly spaced UTC times, ``rows_per_day`` a day, from ``start``."""
    if rows_per_day <= 0:
        raise ValueError("rows_per_day must be positive")
    origin = pd.Timestamp(start)
    origin = origin.tz_localize("UTC") if origin.tzinfo is None else origin.tz_convert("UTC")
    step_ns = 86_400e9 / rows_per_day
    offsets = np.round(np.arange(n) * step_ns).astype("int64")
    return pd.Series(origin + pd.to_timedelta(offsets, unit="ns"), name="timestamp")


def _concepts(n_concepts: int, concept_rows: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """The concept index of every row, and where each concept after the first starts."""
    concept = np.repeat(np.arange(n_concepts), concept_rows)
    return concept, tuple(int(k * concept_rows) for k in range(1, n_concepts))


def _frame(
    columns: dict[str, np.ndarray], target: np.ndarray, rows_per_day: float, start: object
) -> pd.DataFrame:
    n = len(target)
    frame = pd.DataFrame({"timestamp": timestamps(n, rows_per_day, start)})  # type: ignore[arg-type]
    for name, values in columns.items():
        frame[name] = values
    frame["target"] = target
    return frame


def _flip(labels: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Binary labels with a ``share`` of them flipped at random (class noise)."""
    flip = rng.random(len(labels)) < share
    return np.where(flip, 1 - labels, labels)


def sea_labels(f1: ArrayLike, f2: ArrayLike, theta: ArrayLike) -> np.ndarray:
    """SEA's concept before noise: 1 when ``f1 + f2 <= theta``."""
    return (np.asarray(f1) + np.asarray(f2) <= np.asarray(theta)).astype(np.int64)


def sea(
    *,
    concept_rows: int = 15_000,
    thetas: tuple[float, ...] = SEA_THETAS,
    noise: float = 0.10,
    rows_per_day: float = 500,
    seed: int = 0,
    start: object = DEFAULT_START,
) -> Stream:
    """SEA concepts (abrupt switches of theta, 8 -> 9 -> 7 -> 9.5 by default), 10% class noise."""
    rng = np.random.default_rng(seed)
    concept, changes = _concepts(len(thetas), concept_rows)
    x = rng.uniform(0.0, 10.0, size=(len(concept), 3))
    clean = sea_labels(x[:, 0], x[:, 1], np.asarray(thetas)[concept])
    target = _flip(clean, noise, rng)
    columns = {f"f{i + 1}": x[:, i] for i in range(3)}
    return Stream(
        f"sea_{rows_per_day:g}",
        _frame(columns, target, rows_per_day, start),
        list(columns),
        "binary",
        "abrupt",
        changes,
        {"thetas": thetas, "noise": noise, "rows_per_day": rows_per_day},
    )


def _agrawal_attributes(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The nine attributes, as the paper draws them."""
    salary = rng.uniform(20_000.0, 150_000.0, n)
    commission = np.where(salary >= 75_000.0, 0.0, rng.uniform(10_000.0, 75_000.0, n))
    age = rng.integers(20, 81, n).astype(np.float64)
    elevel = rng.integers(0, 5, n).astype(np.float64)
    car = rng.integers(1, 21, n).astype(np.float64)
    zipcode = rng.integers(0, 9, n).astype(np.float64)
    hvalue = (9.0 - zipcode) * 100_000.0 * rng.uniform(0.5, 1.5, n)
    hyears = rng.integers(1, 31, n).astype(np.float64)
    loan = rng.uniform(0.0, 500_000.0, n)
    return dict(
        salary=salary,
        commission=commission,
        age=age,
        elevel=elevel,
        car=car,
        zipcode=zipcode,
        hvalue=hvalue,
        hyears=hyears,
        loan=loan,
    )


def _between(x: np.ndarray, low: float, high: float) -> np.ndarray:
    return (x >= low) & (x <= high)


def _by_age(age: np.ndarray, young: np.ndarray, middle: np.ndarray, old: np.ndarray) -> np.ndarray:
    return np.where(age < 40, young, np.where(age < 60, middle, old))


def _agrawal_f1(a: dict[str, np.ndarray]) -> np.ndarray:
    age = a["age"]
    return (age < 40) | (age >= 60)


def _agrawal_f2(a: dict[str, np.ndarray]) -> np.ndarray:
    s = a["salary"]
    return _by_age(
        a["age"],
        _between(s, 50_000, 100_000),
        _between(s, 75_000, 125_000),
        _between(s, 25_000, 75_000),
    )


def _agrawal_f3(a: dict[str, np.ndarray]) -> np.ndarray:
    e = a["elevel"]
    return _by_age(a["age"], np.isin(e, (0, 1)), np.isin(e, (1, 2, 3)), np.isin(e, (2, 3, 4)))


def _agrawal_f4(a: dict[str, np.ndarray]) -> np.ndarray:
    s, e = a["salary"], a["elevel"]
    low, mid, high = (
        _between(s, 25_000, 75_000),
        _between(s, 50_000, 100_000),
        _between(s, 75_000, 125_000),
    )
    return _by_age(
        a["age"],
        np.where(np.isin(e, (0, 1)), low, mid),
        np.where(np.isin(e, (1, 2, 3)), mid, high),
        np.where(np.isin(e, (2, 3, 4)), mid, low),
    )


AGRAWAL_FUNCTIONS: dict[int, Callable[[dict[str, np.ndarray]], np.ndarray]] = {
    1: _agrawal_f1,
    2: _agrawal_f2,
    3: _agrawal_f3,
    4: _agrawal_f4,
}


def agrawal_labels(attributes: dict[str, np.ndarray], function: int) -> np.ndarray:
    """Classification function ``function`` (1..4) of the paper: 1 for group A, else 0."""
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in attributes.items()}
    return AGRAWAL_FUNCTIONS[function](arrays).astype(np.int64)


def _perturb(
    a: dict[str, np.ndarray], share: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The paper's perturbation: numeric attributes moved by up to ``share`` of their range,
    after the class is set (the label follows the clean values)."""
    ranges = {
        "salary": (20_000.0, 150_000.0),
        "commission": (0.0, 75_000.0),
        "age": (20.0, 80.0),
        "hvalue": (0.0, 1_350_000.0),
        "hyears": (1.0, 30.0),
        "loan": (0.0, 500_000.0),
    }
    out = dict(a)
    for name, (low, high) in ranges.items():
        moved = a[name] + share * (high - low) * rng.uniform(-1.0, 1.0, len(a[name]))
        out[name] = np.clip(moved, low, high)
    return out


def agrawal(
    *,
    concept_rows: int = 15_000,
    functions: tuple[int, ...] = (1, 2, 3, 4),
    perturbation: float = 0.05,
    rows_per_day: float = 500,
    seed: int = 0,
    start: object = DEFAULT_START,
) -> Stream:
    """Agrawal with abrupt switches of classification function, 1 -> 2 -> 3 -> 4 by default."""
    rng = np.random.default_rng(seed)
    concept, changes = _concepts(len(functions), concept_rows)
    attributes = _agrawal_attributes(len(concept), rng)
    target = np.zeros(len(concept), dtype=np.int64)
    for k, function in enumerate(functions):
        rows = concept == k
        target[rows] = agrawal_labels({n: v[rows] for n, v in attributes.items()}, function)
    shown = _perturb(attributes, perturbation, rng) if perturbation > 0 else attributes
    return Stream(
        f"agrawal_{rows_per_day:g}",
        _frame(shown, target, rows_per_day, start),
        list(AGRAWAL_FEATURES),
        "binary",
        "abrupt",
        changes,
        {"functions": functions, "perturbation": perturbation, "rows_per_day": rows_per_day},
    )


def rotating_hyperplane(
    *,
    n_rows: int = 60_000,
    n_features: int = 10,
    n_drift_features: int = 5,
    magnitude: float = 0.001,
    reverse: float = 0.10,
    noise: float = 0.05,
    rows_per_day: float = 500,
    seed: int = 0,
    start: object = DEFAULT_START,
) -> Stream:
    """Gradual drift: class 1 when ``sum(w * x) >= sum(w) / 2``, with the weights of the first
    ``n_drift_features`` attributes moving by ``magnitude`` a row and reversing direction with
    probability ``reverse``."""
    rng = np.random.default_rng(seed)
    x = rng.random((n_rows, n_features))
    w0 = rng.random(n_features)
    reversals = rng.random((n_rows, n_drift_features)) < reverse
    direction = np.where(np.cumsum(reversals, axis=0) % 2 == 0, 1.0, -1.0)
    # the weights a row is labeled with: the start plus every move before it
    moves = np.vstack([np.zeros((1, n_drift_features)), np.cumsum(direction, axis=0)[:-1]])
    weights = np.tile(w0, (n_rows, 1))
    weights[:, :n_drift_features] += magnitude * moves
    target = _flip(hyperplane_labels(x, weights), noise, rng)
    columns = {f"x{i}": x[:, i] for i in range(n_features)}
    return Stream(
        f"hyperplane_{rows_per_day:g}",
        _frame(columns, target, rows_per_day, start),
        list(columns),
        "binary",
        "gradual",
        (),
        {"magnitude": magnitude, "noise": noise, "rows_per_day": rows_per_day},
    )


def hyperplane_labels(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The hyperplane concept before noise: 1 when ``sum(w x) >= sum(w) / 2`` (row by row)."""
    return (np.sum(weights * x, axis=1) >= 0.5 * np.sum(weights, axis=1)).astype(np.int64)


def _bounce(position: np.ndarray) -> np.ndarray:
    """A point moving freely, folded into [0, 1] as if it bounced off the faces."""
    folded = np.mod(position, 2.0)
    return np.where(folded > 1.0, 2.0 - folded, folded)


def random_rbf_drift(
    *,
    n_rows: int = 60_000,
    n_features: int = 10,
    n_classes: int = 5,
    n_centroids: int = 50,
    n_drift_centroids: int = 25,
    speed: float = 0.0001,
    rows_per_day: float = 500,
    seed: int = 0,
    start: object = DEFAULT_START,
) -> Stream:
    """Multiclass gradual drift: random RBF whose first ``n_drift_centroids`` centroids move
    ``speed`` a row in a random direction, bouncing off the unit cube."""
    rng = np.random.default_rng(seed)
    centres = rng.random((n_centroids, n_features))
    labels = rng.integers(0, n_classes, n_centroids)
    spread = rng.random(n_centroids)
    weight = rng.random(n_centroids)
    heading = rng.normal(size=(n_centroids, n_features))
    heading /= np.linalg.norm(heading, axis=1, keepdims=True)
    velocity = np.where(np.arange(n_centroids)[:, None] < n_drift_centroids, speed * heading, 0.0)
    pick = rng.choice(n_centroids, size=n_rows, p=weight / weight.sum())
    row = np.arange(n_rows)[:, None]
    centre = _bounce(centres[pick] + velocity[pick] * row)
    offset = rng.normal(size=(n_rows, n_features))
    offset /= np.linalg.norm(offset, axis=1, keepdims=True)
    x = centre + offset * (rng.normal(size=n_rows) * spread[pick])[:, None]
    columns = {f"x{i}": x[:, i] for i in range(n_features)}
    return Stream(
        f"rbf_{n_classes}class_{rows_per_day:g}",
        _frame(columns, labels[pick].astype(np.int64), rows_per_day, start),
        list(columns),
        "multiclass",
        "gradual",
        (),
        {"speed": speed, "n_classes": n_classes, "rows_per_day": rows_per_day},
    )


def elec2_shuffled(*, seed: int = 0, n_rows: int | None = None) -> Stream:
    """Elec2's rows in a random order under its own timestamps (kept in order): no drift.

    ``n_rows`` keeps only the first rows of the shuffled stream (a shorter control)."""
    from feedback_loop.datasets import ELEC2_FEATURES, load_elec2

    data = load_elec2()
    order = np.random.default_rng(seed).permutation(len(data))
    shuffled = data.drop(columns="timestamp").iloc[order].reset_index(drop=True)
    shuffled.insert(0, "timestamp", data["timestamp"].to_numpy())
    if n_rows is not None:
        shuffled = shuffled.iloc[:n_rows]
    return Stream("elec2_shuffled", shuffled, list(ELEC2_FEATURES), "binary", "none")


def elec2() -> Stream:
    """The bundled Elec2 stream (real drift; change points unknown)."""
    from feedback_loop.datasets import ELEC2_FEATURES, load_elec2

    return Stream("elec2", load_elec2(), list(ELEC2_FEATURES), "binary", "gradual")


__all__ = [
    "AGRAWAL_FEATURES",
    "SEA_THETAS",
    "Stream",
    "agrawal",
    "agrawal_labels",
    "elec2",
    "elec2_shuffled",
    "hyperplane_labels",
    "random_rbf_drift",
    "rotating_hyperplane",
    "sea",
    "sea_labels",
    "timestamps",
]
