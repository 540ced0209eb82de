"""The candidate-versus-champion gate: paired significance tests and promotion checks.

Pure computation over both models' outputs on the same evaluation rows; no storage. A
candidate is promoted only when it is demonstrably better (significantly, by a margin) and no
guard fails: no segment much worse, latency within budget, group gap within bounds.

>>> import numpy as np
>>> y = np.array([0, 1] * 100)
>>> champion = np.where(np.arange(200) < 150, y, 1 - y)  # right on 75% of rows
>>> decision = decide([
...     check_improvement(y, champion, y, task="binary"),
...     check_latency([3.0, 4.0, 5.0], budget_ms=10.0),
... ])
>>> decision.passed, decision.failed
(True, [])
"""

from feedback_loop.gate.checks import (
    LOWER_IS_BETTER,
    Check,
    GateDecision,
    Task,
    check_fairness,
    check_improvement,
    check_latency,
    check_segments,
    decide,
    row_outcomes,
)
from feedback_loop.gate.significance import (
    Alternative,
    BootstrapResult,
    McNemarResult,
    MetricFn,
    UndefinedMetricError,
    mcnemar,
    paired_bootstrap,
)

__all__ = [
    "LOWER_IS_BETTER",
    "Alternative",
    "BootstrapResult",
    "Check",
    "GateDecision",
    "McNemarResult",
    "MetricFn",
    "Task",
    "UndefinedMetricError",
    "check_fairness",
    "check_improvement",
    "check_latency",
    "check_segments",
    "decide",
    "mcnemar",
    "paired_bootstrap",
    "row_outcomes",
]
