"""The dashboard: server-rendered pages of the models, served by ``feedback-loop serve``."""

from feedback_loop.dashboard.routes import COOKIE, router

__all__ = ["COOKIE", "router"]
