"""Pure, vectorised quality metrics over NumPy arrays.

No storage or I/O here: callers pass the joined prediction/label columns of a window and get a
dict of floats (None where a metric is undefined), with definitions matching scikit-learn.
"""

from feedback_loop.stats.metrics.classification import CLASSIFICATION_KEYS, classification_metrics
from feedback_loop.stats.metrics.delay import DELAY_KEYS, delay_percentiles
from feedback_loop.stats.metrics.regression import REGRESSION_KEYS, regression_metrics

__all__ = [
    "CLASSIFICATION_KEYS",
    "DELAY_KEYS",
    "REGRESSION_KEYS",
    "classification_metrics",
    "delay_percentiles",
    "regression_metrics",
]
