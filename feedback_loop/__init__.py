"""feedback-loop: close the machine-learning feedback loop.

Log every prediction, join the ground truth when it arrives, monitor quality and drift, decide
when to retrain, gate the candidate against the champion, promote it, watch it and roll it
back when it regresses.

The names a user configures a loop with are here; the folders below hold the loop's stages
(``collect``, ``monitor``, ``retrain``, ``deploy``), the pure computation they use (``stats``)
and the storage under them (``store``).
"""

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
