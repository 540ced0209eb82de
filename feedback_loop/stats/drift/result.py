"""The outcome of one drift check on one feature.

Every detector, whether a hypothesis test or a distance, returns the same small record so that
callers can store, compare and aggregate results without knowing which method produced them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class DriftResult:
    """One feature's drift verdict.

    Two kinds of methods share this record:

    * hypothesis tests (``p_value`` is set): ``threshold`` is the significance level alpha and
      ``drifted`` is ``p_value < threshold``;
    * distances (``p_value`` is ``None``): ``threshold`` is a cut-off on the statistic and
      ``drifted`` is ``statistic > threshold`` (strict, so a distance exactly at the cut-off
      is not drift, and a zero threshold flags any difference at all).

    ``n_reference``/``n_current`` count the values actually compared; ``missing_reference`` and
    ``missing_current`` count the values dropped as missing (NaN, infinities, ``None``), so a
    sudden rise in missing values stays visible even though it does not enter the statistic.

    Build results with :meth:`from_p_value` or :meth:`from_distance` so the verdict rule is
    applied in one place.

    >>> r = DriftResult.from_p_value("ks", statistic=0.3, p_value=0.001, alpha=0.05)
    >>> r.drifted
    True
    >>> DriftResult.from_distance("psi", statistic=0.05, threshold=0.2).drifted
    False
    """

    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    n_reference: int | None = None
    n_current: int | None = None
    missing_reference: int = 0
    missing_current: int = 0

    @classmethod
    def from_p_value(
        cls,
        method: str,
        statistic: float,
        p_value: float,
        alpha: float,
        *,
        n_reference: int | None = None,
        n_current: int | None = None,
        missing_reference: int = 0,
        missing_current: int = 0,
    ) -> DriftResult:
        """Result of a hypothesis test: drift when ``p_value < alpha``.

        >>> DriftResult.from_p_value("chi_square", 12.0, 0.2, 0.05).drifted
        False
        """
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
        p = float(p_value)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p_value must lie in [0, 1], got {p}")
        return cls(
            method=method,
            statistic=float(statistic),
            p_value=p,
            threshold=float(alpha),
            drifted=p < alpha,
            n_reference=n_reference,
            n_current=n_current,
            missing_reference=missing_reference,
            missing_current=missing_current,
        )

    @classmethod
    def from_distance(
        cls,
        method: str,
        statistic: float,
        threshold: float,
        *,
        n_reference: int | None = None,
        n_current: int | None = None,
        missing_reference: int = 0,
        missing_current: int = 0,
    ) -> DriftResult:
        """Result of a distance: drift when ``statistic > threshold``.

        >>> DriftResult.from_distance("wasserstein", 0.25, 0.1).drifted
        True
        """
        if math.isnan(threshold) or threshold < 0.0:
            raise ValueError(f"threshold must be a non-negative number, got {threshold}")
        stat = float(statistic)
        return cls(
            method=method,
            statistic=stat,
            p_value=None,
            threshold=float(threshold),
            drifted=stat > threshold,
            n_reference=n_reference,
            n_current=n_current,
            missing_reference=missing_reference,
            missing_current=missing_current,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python mapping, ready for JSON or a database row.

        >>> DriftResult.from_distance("psi", 0.3, 0.2).to_dict()["drifted"]
        True
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftResult:
        """Inverse of :meth:`to_dict`.

        >>> r = DriftResult.from_distance("linf", 0.02, 0.1)
        >>> DriftResult.from_dict(r.to_dict()) == r
        True
        """
        p = data.get("p_value")
        n_ref = data.get("n_reference")
        n_cur = data.get("n_current")
        return cls(
            method=str(data["method"]),
            statistic=float(data["statistic"]),
            p_value=None if p is None else float(p),
            threshold=float(data["threshold"]),
            drifted=bool(data["drifted"]),
            n_reference=None if n_ref is None else int(n_ref),
            n_current=None if n_cur is None else int(n_cur),
            missing_reference=int(data.get("missing_reference", 0)),
            missing_current=int(data.get("missing_current", 0)),
        )
