"""Trainers: turn a dataset into a model.

Three kinds: a Python callable ``train(dataset) -> model``; a scikit-learn estimator, cloned and
refitted; or an external command (``python train.py --data IN --out OUT``) that reads a Parquet
file and writes a joblib file, so heavy training can run wherever the user's command sends it.
"""

from __future__ import annotations

import inspect
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from feedback_loop.errors import FeedbackLoopError, ValidationError
from feedback_loop.retrain.dataset import Dataset


class TrainingError(FeedbackLoopError):
    """The trainer failed; the message carries its error."""


class Trainer(Protocol):
    def train(self, data: Dataset) -> Any: ...


def variants(trainer: Trainer) -> list[tuple[str, Trainer]]:
    """The candidates a trainer proposes, by name: its ``candidates()`` when it has one (a
    small hyperparameter search, several estimators), else the trainer itself. The retraining
    fits each, keeps the best on validation, and the gate counts them all."""
    propose = getattr(trainer, "candidates", None)
    if callable(propose):
        found = list(propose())
        if found:
            return [(str(name), member) for name, member in found]
    return [("model", trainer)]


class CallableTrainer:
    def __init__(self, fn: Callable[[Dataset], Any]):
        self.fn = fn

    def train(self, data: Dataset) -> Any:
        return self.fn(data)


class EstimatorTrainer:
    """Clone a scikit-learn estimator and fit it (with sample weights when it takes them).

    ``param_grid``: parameter sets to try as well (``[{"max_iter": 50}, {"max_iter": 200}]``);
    each is one more candidate beside the estimator as given."""

    def __init__(self, estimator: Any, param_grid: Sequence[dict[str, Any]] = ()):
        self.estimator = estimator
        self.param_grid = [dict(p) for p in param_grid]

    def candidates(self) -> list[tuple[str, Trainer]]:
        if not self.param_grid:
            return [("model", self)]
        from sklearn.base import clone

        found: list[tuple[str, Trainer]] = [("model", EstimatorTrainer(self.estimator))]
        for params in self.param_grid:
            name = ",".join(f"{k}={v!r}" for k, v in sorted(params.items()))
            found.append((name, EstimatorTrainer(clone(self.estimator).set_params(**params))))
        return found

    def train(self, data: Dataset) -> Any:
        from sklearn.base import clone

        model = clone(self.estimator)
        accepts_weight = "sample_weight" in inspect.signature(model.fit).parameters
        if data.sample_weight is not None and accepts_weight:
            return model.fit(data.X, data.y, sample_weight=data.sample_weight)
        return model.fit(data.X, data.y)


class CommandTrainer:
    """Run a command with ``{data}`` (a Parquet file: features, ``__label__``, ``__weight__``)
    and ``{out}`` (where it must write the model with joblib) substituted."""

    def __init__(self, command: str | Sequence[str], timeout_s: float = 3600.0):
        parts = shlex.split(command) if isinstance(command, str) else list(command)
        if not any("{data}" in p for p in parts) or not any("{out}" in p for p in parts):
            raise ValidationError("the command must contain {data} and {out}", field="command")
        self.parts = parts
        self.timeout_s = timeout_s

    def train(self, data: Dataset) -> Any:
        import joblib

        with tempfile.TemporaryDirectory(prefix="feedback-loop-train-") as folder:
            data_path, out_path = Path(folder) / "data.parquet", Path(folder) / "model.joblib"
            table = data.X.copy()
            # pandas writes ``attrs`` into the Parquet metadata as JSON: a user's frame may
            # carry anything there, and the command only needs the columns.
            table.attrs = {}
            table["__label__"] = data.y
            if data.sample_weight is not None:
                table["__weight__"] = data.sample_weight
            table.to_parquet(data_path)
            argv = [p.format(data=data_path, out=out_path) for p in self.parts]
            try:
                done = subprocess.run(
                    argv, capture_output=True, text=True, timeout=self.timeout_s, check=False
                )
            except subprocess.TimeoutExpired as exc:
                raise TrainingError(f"training command timed out after {self.timeout_s} s") from exc
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
                raise TrainingError(
                    f"training command exited with {done.returncode}: " + " | ".join(tail)
                )
            if not out_path.exists():
                raise TrainingError("training command wrote no model at {out}")
            return joblib.load(out_path)


def as_trainer(obj: Any) -> Trainer:
    """Accept a trainer, a scikit-learn estimator, a command string/list, or a callable."""
    if hasattr(obj, "train") and callable(obj.train):
        return obj
    if hasattr(obj, "fit") and hasattr(obj, "get_params"):
        return EstimatorTrainer(obj)
    if isinstance(obj, str) or (
        isinstance(obj, list | tuple) and all(isinstance(p, str) for p in obj)
    ):
        return CommandTrainer(obj)
    if callable(obj):
        return CallableTrainer(obj)
    raise ValidationError(
        "must be a scikit-learn estimator, a callable train(dataset), or a command",
        field="trainer",
    )
