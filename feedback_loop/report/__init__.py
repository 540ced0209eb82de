"""Static, self-contained HTML reports of a model's life in the loop."""

from feedback_loop.report.build import build_report, write_report

__all__ = ["build_report", "write_report"]
