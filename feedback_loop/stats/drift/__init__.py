"""Drift: two-sample tests and distances, reference profiles, streaming detectors, multivariate
drift and label-free performance estimation. Pure computation over NumPy arrays."""

from feedback_loop.stats.drift.calibrated import Variation, calibrated_chi_square
from feedback_loop.stats.drift.categorical import (
    categorical_jensen_shannon,
    categorical_psi,
    chi_square_test,
    count_categories,
    linf_distance,
)
from feedback_loop.stats.drift.correction import (
    DatasetDrift,
    benjamini_hochberg,
    bonferroni,
    dataset_drift,
)
from feedback_loop.stats.drift.profile import (
    CategoricalProfile,
    NumericProfile,
    Profile,
    build_profile,
    compare,
    compare_many,
    default_alpha,
    default_method,
    profile_from_dict,
)
from feedback_loop.stats.drift.result import DriftResult
from feedback_loop.stats.drift.univariate import (
    QuantileGrid,
    cramer_von_mises_test,
    ks_test,
    normalized_wasserstein,
    numeric_jensen_shannon,
    numeric_psi,
)

__all__ = [
    "CategoricalProfile",
    "DatasetDrift",
    "DriftResult",
    "NumericProfile",
    "Profile",
    "QuantileGrid",
    "Variation",
    "benjamini_hochberg",
    "bonferroni",
    "build_profile",
    "calibrated_chi_square",
    "categorical_jensen_shannon",
    "categorical_psi",
    "chi_square_test",
    "compare",
    "compare_many",
    "count_categories",
    "cramer_von_mises_test",
    "dataset_drift",
    "default_alpha",
    "default_method",
    "ks_test",
    "linf_distance",
    "normalized_wasserstein",
    "numeric_jensen_shannon",
    "numeric_psi",
    "profile_from_dict",
]
