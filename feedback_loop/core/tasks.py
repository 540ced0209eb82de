"""What a model predicts, and how a logged prediction or actual is read.

A model's task is ``binary``, ``multiclass`` or ``regression``: declared, or inferred from the
first rows logged (floats that are not whole numbers: regression; only 0/1 or booleans: binary;
other labels: multiclass). A prediction is a label, a number, a dict naming its label and
confidence (``{'winner': 'LAL', 'confidence': 0.78}``: ``confidence`` is the probability of the
predicted label, while ``score`` or ``probability`` in a binary model is the probability of the
positive class) or class probabilities
(``{'probabilities': {'cat': 0.7, 'dog': 0.3}}``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from feedback_loop.errors import ValidationError

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")
SCORE_KEYS = ("confidence", "score", "probability", "prob", "p")
# 'confidence' is the probability of the predicted label; in a binary model the other score keys
# are the probability of the positive class (what predict_proba(X)[:, 1] gives).
CONFIDENCE_KEYS = ("confidence",)
PROBA_KEYS = ("probabilities", "proba", "probs")
LABEL_KEYS = ("label", "prediction", "class", "value", "y")


@dataclass
class TaskSpec:
    """How a model's predictions and actuals are read."""

    task: Task | None = None
    label_key: str | None = None
    score_key: str | None = None
    positive_label: Any = None
    primary_metric: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def classification(self) -> bool:
        return self.task in ("binary", "multiclass")

    @property
    def positive(self) -> Any:
        if self.positive_label is not None:
            return self.positive_label
        return 1 if self.task == "binary" else None


@dataclass(frozen=True)
class ParsedPrediction:
    label: Any = None  # a normalised class label, or None for regression
    score: float | None = None  # binary: P(positive); multiclass: confidence of the label
    proba: dict[Any, float] | None = None
    value: float | None = None  # regression


def normalize_label(value: Any, *, field_name: str, row: int | None) -> Any:
    """Labels are strings, booleans or integers; whole floats become integers."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        if math.isfinite(value) and float(value).is_integer():
            return int(value)
        raise ValidationError(f"{value!r} is not a class label", field=field_name, row=row)
    if isinstance(value, str):
        if not value:
            raise ValidationError("a label cannot be empty", field=field_name, row=row)
        return value
    raise ValidationError(
        f"a label must be a string, integer or boolean, got {type(value).__name__}",
        field=field_name,
        row=row,
    )


def label_key(label: Any) -> str:
    """The stored form of a label: JSON keeps 1, True and '1' apart."""
    return json.dumps(label)


def _number(value: Any, *, field_name: str, row: int | None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValidationError(
            f"must be a number, got {type(value).__name__}", field=field_name, row=row
        )
    number = float(value)
    if not math.isfinite(number):
        raise ValidationError("must be a finite number", field=field_name, row=row)
    return number


def _probability(value: Any, *, field_name: str, row: int | None) -> float:
    number = _number(value, field_name=field_name, row=row)
    if not 0.0 <= number <= 1.0:
        raise ValidationError(f"{number} is not a probability in [0, 1]", field=field_name, row=row)
    return number


def infer_task(prediction: Any) -> Task:
    """Guess a task from one prediction (the first logged, when no task was declared)."""
    if isinstance(prediction, dict):
        if any(k in prediction for k in PROBA_KEYS):
            return "multiclass"
        rest = {k: v for k, v in prediction.items() if k not in SCORE_KEYS}
        if len(rest) == 1:
            return infer_task(next(iter(rest.values())))
        return "multiclass"
    if isinstance(prediction, bool | np.bool_):
        return "binary"
    if isinstance(prediction, int | np.integer):
        return "binary" if prediction in (0, 1) else "multiclass"
    if isinstance(prediction, float | np.floating):
        return "binary" if float(prediction) in (0.0, 1.0) else "regression"
    return "multiclass"


def task_of_model(model: Any) -> tuple[Task, Any] | None:
    """The task a fitted model performs, with its positive class when binary, or None when the
    model does not tell: a classifier (``classes_``) with two classes is binary (positive class
    ``classes_[1]``, the column ``predict_proba`` gives second, unless the classes are 0/1 or
    booleans, whose positive class is already 1/True), with more is multiclass; a scikit-learn
    regressor is regression."""
    classes = getattr(model, "classes_", None)
    if classes is not None and hasattr(model, "predict_proba"):
        labels = [c.item() if isinstance(c, np.generic) else c for c in list(classes)]
        if len(labels) != 2:
            return "multiclass", None
        plain = {0, 1} == set(labels) or {False, True} == set(labels)
        return "binary", None if plain else labels[1]
    if not hasattr(model, "predict"):
        return None
    from sklearn.base import is_regressor

    try:
        regressor = is_regressor(model)
    except (AttributeError, TypeError):  # recent scikit-learn refuses non-estimators
        return None
    return ("regression", None) if regressor else None


def _dict_label(payload: dict[str, Any], spec: TaskSpec, field_name: str, row: int | None) -> Any:
    if spec.label_key is not None:
        if spec.label_key not in payload:
            raise ValidationError(
                f"the dict has no {spec.label_key!r} key (this model's label key)",
                field=field_name,
                row=row,
            )
        return payload[spec.label_key]
    candidates = [
        k for k in payload if k not in SCORE_KEYS and k not in PROBA_KEYS and k != "value_key"
    ]
    if len(candidates) == 1:
        return payload[candidates[0]]
    for key in LABEL_KEYS:
        if key in payload:
            return payload[key]
    raise ValidationError(
        "cannot tell which key holds the label: give one label key (e.g. 'label') "
        "or declare label_key",
        field=field_name,
        row=row,
    )


def dict_label_key(payload: dict[str, Any]) -> str | None:
    """The key that names the label in a dict prediction, if unambiguous."""
    candidates = [k for k in payload if k not in SCORE_KEYS and k not in PROBA_KEYS]
    return candidates[0] if len(candidates) == 1 else None


def dict_score_key(payload: dict[str, Any]) -> str | None:
    return next((k for k in SCORE_KEYS if k in payload), None)


def parse_prediction(value: Any, spec: TaskSpec, row: int | None = None) -> ParsedPrediction:
    """Read one prediction under ``spec`` (whose task is already known)."""
    name = "prediction"
    if value is None:
        raise ValidationError("is required", field=name, row=row)
    if spec.task == "regression":
        if isinstance(value, dict):
            value = _dict_label(value, spec, name, row)
        return ParsedPrediction(value=_number(value, field_name=name, row=row))
    if isinstance(value, dict):
        return _parse_dict(value, spec, row)
    if (
        spec.task == "binary"
        and isinstance(value, float | np.floating)
        and not isinstance(value, bool)
    ) and not float(value).is_integer():
        p = _probability(value, field_name=name, row=row)
        return ParsedPrediction(label=_binary_label(p >= 0.5, spec), score=p)
    label = normalize_label(value, field_name=name, row=row)
    return ParsedPrediction(label=label)


def _binary_label(is_positive: bool, spec: TaskSpec) -> Any:
    positive = spec.positive
    negative = spec.extra.get("negative_label")
    if negative is None:
        if positive is True:
            negative = False
        elif positive == 1:
            negative = 0
        else:
            raise ValidationError(
                "a bare probability needs the labels: declare positive_label and negative_label",
                field="prediction",
            )
    return positive if is_positive else negative


def _parse_dict(payload: dict[str, Any], spec: TaskSpec, row: int | None) -> ParsedPrediction:
    name = "prediction"
    proba_key = next((k for k in PROBA_KEYS if k in payload), None)
    proba: dict[Any, float] | None = None
    if proba_key is not None:
        raw = payload[proba_key]
        if not isinstance(raw, dict) or not raw:
            raise ValidationError(
                "probabilities must be a non-empty {label: probability} dict",
                field=f"{name}.{proba_key}",
                row=row,
            )
        proba = {
            normalize_label(k, field_name=f"{name}.{proba_key}", row=row): _probability(
                v, field_name=f"{name}.{proba_key}", row=row
            )
            for k, v in raw.items()
        }
        total = sum(proba.values())
        if not 0.99 <= total <= 1.01:
            raise ValidationError(
                f"probabilities sum to {total:.4f}, not 1", field=f"{name}.{proba_key}", row=row
            )
    has_label = (
        spec.label_key in payload
        if spec.label_key
        else dict_label_key(payload) or any(k in payload for k in LABEL_KEYS)
    )
    if has_label:
        label = normalize_label(_dict_label(payload, spec, name, row), field_name=name, row=row)
    elif proba is not None:
        label = max(proba, key=lambda k: proba[k])
    else:
        raise ValidationError("the dict names no label", field=name, row=row)
    score_key = spec.score_key if spec.score_key in payload else dict_score_key(payload)
    confidence = (
        _probability(payload[score_key], field_name=f"{name}.{score_key}", row=row)
        if score_key is not None
        else None
    )
    if proba is not None and confidence is None:
        confidence = proba.get(label)
    score = confidence
    if spec.task == "binary":
        positive = spec.positive
        if proba is not None and positive in proba:
            score = proba[positive]
        elif confidence is not None and score_key in CONFIDENCE_KEYS:
            score = confidence if label == positive else 1.0 - confidence
    return ParsedPrediction(label=label, score=score, proba=proba)


def parse_actual(value: Any, spec: TaskSpec, row: int | None = None, name: str = "actual") -> Any:
    """Read one actual: a label for classification, a number for regression."""
    if isinstance(value, dict):
        if spec.label_key is not None and spec.label_key in value:
            value = value[spec.label_key]
        elif len(value) == 1:
            value = next(iter(value.values()))
        else:
            raise ValidationError(
                "cannot tell which key holds the actual label", field=name, row=row
            )
    if spec.task == "regression":
        return _number(value, field_name=name, row=row)
    return normalize_label(value, field_name=name, row=row)
