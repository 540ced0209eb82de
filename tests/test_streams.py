"""The synthetic streams follow their published definitions, and drift where they say."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feedback_loop.datasets import streams


def test_sea_labels_are_the_threshold_rule_before_a_tenth_of_noise() -> None:
    stream = streams.sea(concept_rows=4_000, rows_per_day=100, seed=3)
    data = stream.data
    assert stream.change_points == (4_000, 8_000, 12_000)
    theta = np.repeat(streams.SEA_THETAS, 4_000)
    clean = (data["f1"] + data["f2"] <= theta).astype(int)
    flipped = (clean != data["target"]).mean()
    assert 0.085 < flipped < 0.115  # 10% class noise, as published
    assert data[["f1", "f2", "f3"]].min().min() >= 0 and data[["f1", "f2", "f3"]].max().max() <= 10
    # each concept fits its own theta better than its neighbour's
    for k, (start, theta_k) in enumerate(
        zip((0, *stream.change_points), streams.SEA_THETAS, strict=True)
    ):
        rows = data.iloc[start : start + 4_000]
        own = (streams.sea_labels(rows["f1"], rows["f2"], theta_k) == rows["target"]).mean()
        other = streams.SEA_THETAS[(k + 1) % 4]
        assert own > (streams.sea_labels(rows["f1"], rows["f2"], other) == rows["target"]).mean()


def test_sea_rule_on_hand_made_rows() -> None:
    f1, f2 = np.array([4.0, 4.0, 5.0, 0.0]), np.array([4.0, 4.5, 4.5, 9.5])
    assert streams.sea_labels(f1, f2, 8.0).tolist() == [1, 0, 0, 0]
    assert streams.sea_labels(f1, f2, 9.5).tolist() == [1, 1, 1, 1]


def _row(**values: float) -> dict[str, np.ndarray]:
    base = dict(salary=60_000.0, commission=20_000.0, age=30.0, elevel=0.0, car=1.0)
    base.update(zipcode=0.0, hvalue=500_000.0, hyears=10.0, loan=100_000.0)
    base.update(values)
    return {k: np.array([v]) for k, v in base.items()}


@pytest.mark.parametrize(
    ("function", "values", "group_a"),
    [
        (1, {"age": 39}, True),
        (1, {"age": 40}, False),
        (1, {"age": 60}, True),
        (2, {"age": 30, "salary": 50_000}, True),
        (2, {"age": 30, "salary": 110_000}, False),
        (2, {"age": 45, "salary": 120_000}, True),
        (2, {"age": 45, "salary": 60_000}, False),
        (2, {"age": 70, "salary": 30_000}, True),
        (3, {"age": 30, "elevel": 1}, True),
        (3, {"age": 30, "elevel": 2}, False),
        (3, {"age": 50, "elevel": 3}, True),
        (3, {"age": 65, "elevel": 1}, False),
        (4, {"age": 30, "elevel": 0, "salary": 30_000}, True),
        (4, {"age": 30, "elevel": 3, "salary": 30_000}, False),
        (4, {"age": 30, "elevel": 3, "salary": 90_000}, True),
        (4, {"age": 50, "elevel": 4, "salary": 120_000}, True),
        (4, {"age": 70, "elevel": 0, "salary": 30_000}, True),
        (4, {"age": 70, "elevel": 2, "salary": 30_000}, False),
    ],
)
def test_agrawal_functions_on_hand_made_rows(
    function: int, values: dict[str, float], group_a: bool
) -> None:
    assert streams.agrawal_labels(_row(**values), function).tolist() == [int(group_a)]


def test_agrawal_switches_function_at_its_change_points() -> None:
    stream = streams.agrawal(concept_rows=3_000, perturbation=0.0, rows_per_day=100, seed=1)
    data = stream.data
    assert stream.change_points == (3_000, 6_000, 9_000)
    assert list(data.columns) == ["timestamp", *streams.AGRAWAL_FEATURES, "target"]
    attributes = {c: data[c].to_numpy() for c in streams.AGRAWAL_FEATURES}
    for k, function in enumerate((1, 2, 3, 4)):
        rows = slice(3_000 * k, 3_000 * (k + 1))
        own = streams.agrawal_labels({c: v[rows] for c, v in attributes.items()}, function)
        assert (own == data["target"].to_numpy()[rows]).all()
        nxt = streams.agrawal_labels({c: v[rows] for c, v in attributes.items()}, (k + 1) % 4 + 1)
        assert (nxt != data["target"].to_numpy()[rows]).mean() > 0.2
    # commission is zero exactly when salary is 75k or more (unperturbed)
    assert ((data["commission"] == 0) == (data["salary"] >= 75_000)).all()


def test_timestamps_follow_rows_per_day() -> None:
    stream = streams.sea(concept_rows=250, rows_per_day=100)
    times = stream.data["timestamp"]
    assert times.is_monotonic_increasing
    assert (times.iloc[100] - times.iloc[0]) == pd.Timedelta(days=1)
    assert stream.change_times[0] == times.iloc[0] + pd.Timedelta(days=2.5)


def test_hyperplane_drifts_gradually_and_labels_follow_its_weights() -> None:
    stream = streams.rotating_hyperplane(n_rows=20_000, noise=0.0, seed=2)
    data = stream.data
    x = data[stream.features].to_numpy()
    early, late = slice(0, 2_000), slice(18_000, 20_000)
    # a rule fitted on the start fits the start exactly and the end less well: it rotated
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e4, max_iter=2_000).fit(x[early], data["target"][early])
    assert model.score(x[early], data["target"][early]) > 0.97
    assert model.score(x[late], data["target"][late]) < 0.95
    assert stream.drift == "gradual" and stream.change_points == ()


def test_random_rbf_is_multiclass_with_moving_centroids() -> None:
    moving = streams.random_rbf_drift(n_rows=6_000, n_classes=4, seed=5)
    still = streams.random_rbf_drift(n_rows=6_000, n_classes=4, seed=5, speed=0.0)
    assert moving.task == "multiclass" and set(moving.data["target"]) == {0, 1, 2, 3}
    assert (moving.data["target"] == still.data["target"]).all()  # same draws of centroids
    x, y = moving.data[moving.features], still.data[still.features]
    assert np.allclose(x.iloc[0], y.iloc[0])  # the first row is drawn before any move
    assert not np.allclose(x.iloc[-1000:], y.iloc[-1000:])
    assert ((x >= -3) & (x <= 4)).all().all()


def test_elec2_shuffled_keeps_the_clock_and_the_rows() -> None:
    control = streams.elec2_shuffled(seed=4)
    original = streams.elec2().data
    assert control.data["timestamp"].equals(original["timestamp"])
    assert control.data["target"].sum() == original["target"].sum()
    assert not control.data["feat_2"].equals(original["feat_2"])
    assert control.drift == "none"


def test_streams_are_seeded() -> None:
    a, b = streams.sea(concept_rows=500, seed=9), streams.sea(concept_rows=500, seed=9)
    assert a.data.equals(b.data)
    assert not a.data.equals(streams.sea(concept_rows=500, seed=10).data)
