"""The dashboard: server-rendered pages of the models, served by ``feedback-loop serve``."""

from feedback_loop.dashboard.routes import install, router
from feedback_loop.dashboard.sessions import COOKIE

__all__ = ["COOKIE", "install", "router"]
