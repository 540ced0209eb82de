"""Retraining policies from the project file, ``feedback_loop.toml``.

Policies live in the repository next to the model code, so a changed threshold is reviewed like
any other change. Reading is strict: a misspelt key would otherwise switch a rule off without a
word, so every unknown key or bad value raises a
:class:`~feedback_loop.retrain.policy.rules.PolicyError` (a ``ValueError``) naming its full
key path.

.. code-block:: toml

    [models.churn.policy]
    cooldown = "1d"
    combine = "any"          # any | all
    [[models.churn.policy.rules]]
    type = "threshold"       # scheduled | threshold | drift_share | drifted_features
    max_drop = 0.05          #   | data_volume | estimate_drop | any | all
    min_labeled = 200
    [[models.churn.policy.rules]]
    type = "scheduled"
    cron = "0 3 * * 1"

A rule of type ``any`` or ``all`` holds its own ``rules``, so combinations nest. Only the
``policy`` tables of ``[models.NAME]`` are read here; the other tables belong to other readers.

>>> policy = policy_from_dict({"cooldown": "1d", "rules": [{"type": "data_volume",
...                                                         "min_new_labels": 500}]})
>>> policy.rule, policy.cooldown
(DataVolume(min_new_labels=500), datetime.timedelta(days=1))
>>> try:
...     policy_from_dict({"rules": [{"type": "drift_share", "max_shar": 0.3}]})
... except ValueError as exc:
...     print(exc)
policy.rules[0].max_shar: unknown key; known: max_share, type
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from feedback_loop.retrain.policy.rules import (
    AllOf,
    AnyOf,
    DataVolume,
    DriftedFeatures,
    DriftShare,
    ErrorIncrease,
    EstimateDrop,
    PerformanceThreshold,
    Policy,
    PolicyError,
    Rule,
    Scheduled,
)
from feedback_loop.retrain.policy.schedule import parse_duration

Reader = Callable[[Any, str], Any]


def load_policies(path: str | os.PathLike[str]) -> dict[str, Policy]:
    """The policy of every ``[models.NAME.policy]`` table in a TOML file, by model name.

    A policy is named after its model unless it sets ``name``.
    """
    file = Path(path)
    with file.open("rb") as handle:
        try:
            document = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(str(file), f"not valid TOML: {exc}") from None
    return policies_from_dict(document)


def policies_from_dict(document: Mapping[str, Any]) -> dict[str, Policy]:
    """Like :func:`load_policies`, from an already parsed document."""
    models = document.get("models", {})
    if not isinstance(models, Mapping):
        raise PolicyError("models", "must be a table of models")
    policies: dict[str, Policy] = {}
    for model, table in models.items():
        key = f"models.{_quote(model)}"
        if not isinstance(table, Mapping):
            raise PolicyError(key, "must be a table")
        if "policy" in table:
            policies[model] = policy_from_dict(table["policy"], name=model, key=f"{key}.policy")
    return policies


def policy_from_dict(
    table: Mapping[str, Any], *, name: str = "default", key: str = "policy"
) -> Policy:
    """One policy from its table (keys ``name``, ``cooldown``, ``retry_after``,
    ``retry_labels``, ``cooldown_labels``, ``combine``, ``rules``).

    ``key`` is where the table sits, for error messages. Several rules combine with
    ``combine`` (default ``any``); a single rule without ``combine`` stands alone, so that
    ``policy_from_dict(p.to_dict()) == p``.
    """
    _check_table(
        table,
        key,
        _POLICY_KEYS,
    )
    policy_name = _string(table["name"], f"{key}.name") if "name" in table else name
    cooldown = timedelta(0)
    if "cooldown" in table:
        cooldown = _duration(table["cooldown"], f"{key}.cooldown")
    extra: dict[str, Any] = {}
    if "retry_after" in table:
        extra["retry_after"] = _duration(table["retry_after"], f"{key}.retry_after")
    if "retry_labels" in table:
        extra["retry_labels"] = _integer(table["retry_labels"], f"{key}.retry_labels")
    if "cooldown_labels" in table:
        extra["cooldown_labels"] = _integer(table["cooldown_labels"], f"{key}.cooldown_labels")
    rules = _rules(table.get("rules"), f"{key}.rules")
    rule: Rule
    if "combine" in table:
        combine = table["combine"]
        if combine not in ("any", "all"):
            raise PolicyError(f"{key}.combine", f"must be 'any' or 'all', got {combine!r}")
        rule = AnyOf(rules) if combine == "any" else AllOf(rules)
    else:
        rule = rules[0] if len(rules) == 1 else AnyOf(rules)
    return _build(Policy, {"rule": rule, "cooldown": cooldown, "name": policy_name, **extra}, key)


def rule_from_dict(table: Mapping[str, Any], *, key: str = "rule") -> Rule:
    """One rule from its table; ``type`` says which (see the module docs)."""
    if not isinstance(table, Mapping):
        raise PolicyError(key, f"must be a table, got {type(table).__name__}")
    if "type" not in table:
        raise PolicyError(f"{key}.type", f"is required; one of {_kinds()}")
    kind = table["type"]
    if kind in ("any", "all"):
        _check_table(table, key, {"type", "rules"})
        members = _rules(table.get("rules"), f"{key}.rules")
        return _build(AnyOf if kind == "any" else AllOf, {"rules": members}, key)
    if kind not in _TYPES:
        raise PolicyError(f"{key}.type", f"unknown type {kind!r}; one of {_kinds()}")
    cls, readers = _TYPES[kind]
    _check_table(table, key, {"type", *readers})
    values = {k: readers[k](v, f"{key}.{k}") for k, v in table.items() if k != "type"}
    missing = dataclasses.MISSING
    for f in dataclasses.fields(cls):
        if f.init and f.name not in values and f.default is f.default_factory is missing:
            raise PolicyError(f"{key}.{f.name}", "is required")
    rule: Rule = _build(cls, values, key)
    return rule


def _rules(value: Any, key: str) -> list[Rule]:
    if value is None:
        raise PolicyError(key, "is required: a list of rule tables")
    if not isinstance(value, list | tuple) or not value:
        raise PolicyError(key, "must be a non-empty list of rule tables")
    return [rule_from_dict(item, key=f"{key}[{i}]") for i, item in enumerate(value)]


def _build(cls: Callable[..., Any], values: dict[str, Any], key: str) -> Any:
    """Construct, moving the constructor's own complaint under ``key``."""
    try:
        return cls(**values)
    except PolicyError as exc:
        raise PolicyError(f"{key}.{exc.key}" if exc.key else key, exc.message) from None


def _check_table(table: Any, key: str, known: set[str]) -> None:
    if not isinstance(table, Mapping):
        raise PolicyError(key, f"must be a table, got {type(table).__name__}")
    for k in table:
        if k not in known:
            raise PolicyError(f"{key}.{k}", f"unknown key; known: {', '.join(sorted(known))}")


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(key, f"must be a number, got {value!r}")
    if not math.isfinite(value):
        raise PolicyError(key, f"must be finite, got {value!r}")
    return float(value)


def _integer(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(key, f"must be a whole number, got {value!r}")
    return value


def _boolean(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise PolicyError(key, f"must be true or false, got {value!r}")
    return value


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise PolicyError(key, f"must be a string, got {value!r}")
    return value


def _duration(value: Any, key: str) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise PolicyError(key, f"must be a duration such as '12h' or '7d', got {value!r}")
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PolicyError(key, str(exc)) from None


def _names(value: Any, key: str) -> list[str]:
    if not isinstance(value, list | tuple):
        raise PolicyError(key, f"must be a list of feature names, got {value!r}")
    for i, item in enumerate(value):
        _string(item, f"{key}[{i}]")
    return list(value)


_TYPES: dict[str, tuple[type[Any], dict[str, Reader]]] = {
    "scheduled": (Scheduled, {"every": _duration, "cron": _string}),
    "threshold": (
        PerformanceThreshold,
        {"threshold": _number, "max_drop": _number, "relative": _boolean, "min_labeled": _integer},
    ),
    "drift_share": (DriftShare, {"max_share": _number}),
    "error_increase": (ErrorIncrease, {"min_z": _number, "min_rows": _integer}),
    "drifted_features": (DriftedFeatures, {"features": _names, "any_of": _boolean}),
    "data_volume": (DataVolume, {"min_new_labels": _integer}),
    "estimate_drop": (EstimateDrop, {"max_drop": _number, "relative": _boolean}),
}
_POLICY_KEYS = {
    "name",
    "cooldown",
    "retry_after",
    "retry_labels",
    "cooldown_labels",
    "combine",
    "rules",
}
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _kinds() -> str:
    return ", ".join([*_TYPES, "any", "all"])


def _quote(name: str) -> str:
    """A TOML key as written in a path: bare when it can be, else quoted."""
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name)
