"""The project file, ``feedback_loop.toml``: which models a worker looks after, and how.

```toml
[models.churn]
task = "binary"
retention = "90d"               # optional: drop raw rows older than this, keep the summaries

[models.churn.trainer]
command = "python train.py --data {data} --out {out}"
# or: estimator = "sklearn.linear_model.LogisticRegression"

[models.churn.dataset]
strategy = "sliding_window"   # sliding_window | all | recency_weighted
window = "30d"
holdout = 0.2

[models.churn.gate]
min_improvement = 0.0
alpha = 0.05

[models.churn.policy]           # see feedback_loop.retrain.policy.config
cooldown = "1d"
[[models.churn.policy.rules]]
type = "threshold"
max_drop = 0.05
```

A model without a ``[policy]`` table is looked after by the default policy
(``feedback_loop.retrain.policy.default_policy``) with the drift check as evidence, as a
``FeedbackLoop`` with no policy set is (``with_drift = false`` turns the drift check off).
"""

from __future__ import annotations

import dataclasses
import importlib
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

from feedback_loop.core.timeutil import parse_duration
from feedback_loop.deploy.gate import GateConfig
from feedback_loop.errors import ValidationError
from feedback_loop.loop import FeedbackLoop
from feedback_loop.retrain.dataset import DatasetSpec
from feedback_loop.retrain.policy import default_policy, policy_from_dict
from feedback_loop.retrain.trainers import CommandTrainer, EstimatorTrainer, Trainer
from feedback_loop.worker import ModelJob, Worker

_MODEL_KEYS = {
    "task",
    "trainer",
    "dataset",
    "gate",
    "policy",
    "with_drift",
    "with_estimate",
    "retention",
}


def _trainer(table: dict[str, Any], where: str) -> Trainer:
    if "command" in table:
        return CommandTrainer(table["command"], float(table.get("timeout_s", 3600)))
    if "estimator" in table:
        module, _, name = str(table["estimator"]).rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ValidationError(
                f"cannot import {table['estimator']!r}", field=f"{where}.estimator"
            ) from exc
        grid = table.get("param_grid", [])  # more candidates: [{max_iter = 50}, ...]
        if not isinstance(grid, list) or not all(isinstance(g, dict) for g in grid):
            raise ValidationError("must be a list of tables", field=f"{where}.param_grid")
        return EstimatorTrainer(cls(**table.get("params", {})), param_grid=grid)
    raise ValidationError("needs `command` or `estimator`", field=where)


def _dataset(table: dict[str, Any], where: str) -> DatasetSpec:
    values = dict(table)
    for key in ("window", "half_life"):
        if key in values:
            values[key] = parse_duration(values[key], field=f"{where}.{key}")
    return _build(DatasetSpec, values, where)


def _build(cls: Any, values: dict[str, Any], where: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValidationError(
            f"unknown key(s) {unknown}; known: {sorted(known)}", field=f"{where}.{unknown[0]}"
        )
    return cls(**values)


def _models(path: Path) -> dict[str, dict[str, Any]]:
    """The ``[models.NAME]`` tables of a project file, their keys checked."""
    with open(path, "rb") as handle:
        project = tomllib.load(handle)
    models = project.get("models")
    if not isinstance(models, dict) or not models:
        raise ValidationError("the project file declares no [models.NAME]", field="models")
    for name, table in models.items():
        unknown = sorted(set(table) - _MODEL_KEYS)
        if unknown:
            raise ValidationError(f"unknown key(s) {unknown}", field=f"models.{name}.{unknown[0]}")
    return models


def _retention(table: dict[str, Any], where: str) -> timedelta | None:
    value = table.get("retention")
    return None if value is None else parse_duration(value, field=f"{where}.retention")


def load_loops(path: Path, database: str | None) -> list[FeedbackLoop]:
    """A loop for each model of a project file, with its declared task and retention (what
    ``feedback-loop db prune --config`` applies)."""
    return [
        FeedbackLoop(
            name,
            tracking_db=database,
            task=table.get("task"),
            retention=_retention(table, f"models.{name}"),
        )
        for name, table in _models(path).items()
    ]


def load_worker(path: Path, database: str | None) -> Worker:
    """A worker for the models of a project file."""
    models = _models(path)
    jobs: dict[str, ModelJob] = {}
    for name, table in models.items():
        where = f"models.{name}"
        loop = FeedbackLoop(
            name,
            tracking_db=database,
            task=table.get("task"),
            retention=_retention(table, where),
        )
        if "trainer" not in table:
            raise ValidationError("every model needs a [trainer]", field=f"{where}.trainer")
        loop.set_trainer(
            _trainer(table["trainer"], f"{where}.trainer"),
            dataset=_dataset(table.get("dataset", {}), f"{where}.dataset"),
            gate=_build(GateConfig, table.get("gate", {}), f"{where}.gate"),
        )
        declared = "policy" in table
        policy = (
            policy_from_dict(table["policy"], name=name, key=f"{where}.policy")
            if declared
            else default_policy()
        )
        assert loop.trainer is not None
        jobs[name] = ModelJob(
            loop,
            loop.trainer,
            policy,
            bool(table.get("with_drift", not declared)),
            bool(table.get("with_estimate")),
        )
    return Worker(jobs)
