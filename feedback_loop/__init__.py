"""feedback-loop: close the machine-learning feedback loop.

Log every prediction, join the ground truth when it arrives, monitor quality and drift, decide
when to retrain, gate the candidate against the champion, promote it, watch it and roll it
back when it regresses.

The names a user configures a loop with are here; the folders below hold the loop's stages
(``collect``, ``monitor``, ``retrain``, ``deploy``), the pure computation they use (``stats``)
and the storage under them (``store``).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feedback_loop.core.clock import ManualClock, SystemClock
    from feedback_loop.deploy.gate import GateConfig
    from feedback_loop.errors import (
        DuplicatePredictionError,
        FeedbackLoopError,
        RejectedVersionError,
        UnknownModelError,
        ValidationError,
    )
    from feedback_loop.loop import FeedbackLoop
    from feedback_loop.retrain.dataset import DatasetSpec
    from feedback_loop.retrain.decision import RetrainDecision

# Where each public name lives. They are imported on first use (PEP 562): a process that needs
# one corner of the library (``feedback-loop keys create``, a training command importing the
# errors) does not pay for importing all of it (SciPy, scikit-learn, pandas: seconds).
_HOMES = {
    "DatasetSpec": "feedback_loop.retrain.dataset",
    "DuplicatePredictionError": "feedback_loop.errors",
    "FeedbackLoop": "feedback_loop.loop",
    "FeedbackLoopError": "feedback_loop.errors",
    "GateConfig": "feedback_loop.deploy.gate",
    "ManualClock": "feedback_loop.core.clock",
    "RejectedVersionError": "feedback_loop.errors",
    "RetrainDecision": "feedback_loop.retrain.decision",
    "SystemClock": "feedback_loop.core.clock",
    "UnknownModelError": "feedback_loop.errors",
    "ValidationError": "feedback_loop.errors",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'feedback_loop' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value  # found once, then a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])


__version__ = "0.1.0"
__all__ = [
    "DatasetSpec",
    "DuplicatePredictionError",
    "FeedbackLoop",
    "FeedbackLoopError",
    "GateConfig",
    "ManualClock",
    "RejectedVersionError",
    "RetrainDecision",
    "SystemClock",
    "UnknownModelError",
    "ValidationError",
]
