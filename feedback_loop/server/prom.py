"""Prometheus metrics of the server: ingest counts, request latency and per-model gauges.

The gauges hold what the monitoring endpoints last computed (quality over 7 days, label
coverage, the drifted share of features at the last drift check); a scrape only formats
numbers already in memory. With several uvicorn workers, ``PROMETHEUS_MULTIPROC_DIR`` (set by
``feedback-loop serve``) makes every worker write its numbers there and a scrape add them up.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

QUALITY_WINDOW = "7d"  # the window the per-model gauges describe
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServerMetrics:
    """The server's Prometheus metrics, in a registry of their own."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.predictions = Counter(
            "feedback_loop_predictions_ingested",
            "Predictions stored (identical retries not counted).",
            ["model"],
            registry=self.registry,
        )
        self.outcomes = Counter(
            "feedback_loop_outcomes_ingested",
            "Outcomes stored.",
            ["model"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "feedback_loop_http_request_duration_seconds",
            "Time to answer a request, by route template and status.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.quality = Gauge(
            "feedback_loop_model_quality",
            "Accuracy and the primary metric over the last 7 days, as last computed.",
            ["model", "metric"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.label_coverage = Gauge(
            "feedback_loop_model_label_coverage",
            "Share of the last 7 days' predictions that have an outcome, as last computed.",
            ["model"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.drift_share = Gauge(
            "feedback_loop_model_drifted_feature_share",
            "Share of features that drifted at the model's last drift check.",
            ["model"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )

    def observe_quality(self, model: str, metrics: dict[str, Any], primary: str) -> None:
        """Update the 7-day gauges from a ``get_metrics`` result over that window."""
        for name in {"accuracy", primary}:
            value = metrics.get(name)
            if isinstance(value, int | float):
                self.quality.labels(model=model, metric=name).set(float(value))
        coverage = metrics.get("label_coverage")
        if isinstance(coverage, int | float):
            self.label_coverage.labels(model=model).set(float(coverage))

    def observe_drift(self, model: str, share: float | None) -> None:
        if share is not None:
            self.drift_share.labels(model=model).set(float(share))

    def exposition(self) -> bytes:
        """The text format for a scrape: this process's numbers, or all workers' when the
        multiprocess directory is set."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            combined = CollectorRegistry()
            multiprocess.MultiProcessCollector(combined)
            return generate_latest(combined)
        return generate_latest(self.registry)


class RequestTimer:
    """ASGI middleware: observe each request's latency under its route template."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            # Unmatched paths share one label: raw paths would make a series per typo.
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.latency.labels(
                method=scope["method"], route=template, status=str(status)
            ).observe(time.perf_counter() - start)
