"""feedback-loop: close the machine-learning feedback loop.

Log every prediction, join the ground truth when it arrives, watch quality and drift, and
decide when to retrain.
"""

from feedback_loop.clock import ManualClock, SystemClock
from feedback_loop.errors import (
    DuplicatePredictionError,
    FeedbackLoopError,
    RejectedVersionError,
    UnknownModelError,
    ValidationError,
)
from feedback_loop.loop import FeedbackLoop
from feedback_loop.retraining import RetrainDecision

__version__ = "0.1.0"
__all__ = [
    "DuplicatePredictionError",
    "FeedbackLoop",
    "FeedbackLoopError",
    "ManualClock",
    "RejectedVersionError",
    "RetrainDecision",
    "SystemClock",
    "UnknownModelError",
    "ValidationError",
]
