"""The result of ``check_drift``: one row per column, and a verdict for the dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from rich.table import Table

from feedback_loop.stats.drift import DatasetDrift, DriftResult


@dataclass(frozen=True)
class DriftReport:
    """Drift of a window against a model's reference.

    ``columns`` holds a :class:`DriftResult` per feature and, under ``__prediction__`` and
    ``__label__``, for the model's output and the ground truth. ``dataset`` is the verdict over
    the features (the share of drifted features against a threshold).
    """

    model: str
    window_start: str
    window_end: str
    reference: str
    n_current: int
    columns: dict[str, DriftResult]
    dataset: DatasetDrift | None
    missing: list[str] = field(default_factory=list)  # profiled columns absent from the window

    @property
    def drifted(self) -> bool:
        return bool(self.dataset is not None and self.dataset.drifted)

    @property
    def drifted_columns(self) -> list[str]:
        return [name for name, result in self.columns.items() if result.drifted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "reference": self.reference,
            "n_current": self.n_current,
            "drifted": self.drifted,
            "share_drifted": None if self.dataset is None else self.dataset.share,
            "drifted_columns": self.drifted_columns,
            "missing": self.missing,
            "columns": {name: result.to_dict() for name, result in self.columns.items()},
        }

    def to_frame(self) -> pd.DataFrame:
        rows = [{"column": name, **result.to_dict()} for name, result in self.columns.items()]
        return pd.DataFrame(rows).set_index("column") if rows else pd.DataFrame()

    def __rich__(self) -> Table:
        verdict = "[bold red]DRIFT[/]" if self.drifted else "[green]no dataset drift[/]"
        share = "" if self.dataset is None else f", {self.dataset.share:.0%} of features drifted"
        table = Table(
            title=f"{self.model}: drift {self.window_start[:16]} → {self.window_end[:16]} "
            f"vs {self.reference} — {verdict}{share}"
        )
        for column in ("column", "method", "statistic", "p-value", "threshold", "drifted"):
            table.add_column(column, justify="left" if column in ("column", "method") else "right")
        for name, result in self.columns.items():
            table.add_row(
                name,
                result.method,
                f"{result.statistic:.4g}",
                "—" if result.p_value is None else f"{result.p_value:.3g}",
                f"{result.threshold:.3g}",
                "[bold red]yes[/]" if result.drifted else "no",
            )
        return table
