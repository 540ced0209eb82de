"""Gathering a model's history from the log, the registry and the events, into one HTML file.

Reading for a report never writes: drift and segments are computed with the pure services,
not the ``FeedbackLoop`` methods that record events.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from jinja2 import BaseLoader, ChoiceLoader, Environment, PackageLoader, select_autoescape
from sqlalchemy import text

from feedback_loop.core.timeutil import from_us, parse_duration, to_us
from feedback_loop.errors import ValidationError
from feedback_loop.monitor.drift_checks import check_drift
from feedback_loop.monitor.references import stored_reference
from feedback_loop.monitor.segments import segments
from feedback_loop.monitor.window import window_features
from feedback_loop.report.svg import Marker, Series, heatmap, line_chart
from feedback_loop.store.reader import WindowFilter

if TYPE_CHECKING:
    from feedback_loop.loop import FeedbackLoop

MARKERS = {
    "promoted": "#16a34a",
    "rolled_back": "#dc2626",
    "gate_rejected": "#ea580c",
}
DECISIONS = (
    "retrain_due",
    "gate_passed",
    "gate_rejected",
    "promoted",
    "rolled_back",
    "watch_passed",
    "drift_detected",
    "retrain_failed",
)


# Bounds on what a caller controls: the period of a chart point, and how many points a chart
# computes (each one reads its window; a drift column also runs a drift check). The charts end
# at the newest prediction (or now, if later ones are dated in the future) and reach back at
# most that many periods: a stray old timestamp cannot make a page compute years of points.
MIN_PERIOD = timedelta(minutes=1)
MAX_PERIOD = timedelta(days=366)
MAX_POINTS = 500  # the HTML report (a file made on demand)
MAX_DRIFT_POINTS = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def chart_period(period: str) -> timedelta:
    """The period of a chart point, between one minute and one year."""
    try:
        step = parse_duration(period, field="period")
    except OverflowError:  # more days than a timedelta holds
        step = MAX_PERIOD * 2
    if not MIN_PERIOD <= step <= MAX_PERIOD:
        raise ValidationError(
            f"{period!r} is out of range: a period is 1m to 366d (for example '1d')",
            field="period",
        )
    return step


def _time_range(loop: FeedbackLoop) -> tuple[datetime, datetime] | None:
    state = loop.handle.read_state()
    with loop.engine.connect() as conn:
        low, high = conn.execute(
            text("SELECT MIN(ts), MAX(ts) FROM predictions WHERE model_id = :m"), {"m": state.id}
        ).one()
    if low is None:
        return None
    return from_us(low), from_us(high)


def _buckets(
    span: tuple[datetime, datetime], step: timedelta, now: datetime, limit: int
) -> list[tuple[datetime, datetime]]:
    """At most ``limit`` consecutive periods, aligned on multiples of ``step`` (so whole hours
    are read from the metric blocks), the last one holding the chart's end."""
    low, high = span
    end = high if low > now else min(high, now)
    last = _EPOCH + ((end - _EPOCH) // step) * step
    first = _EPOCH + ((max(low, _EPOCH) - _EPOCH) // step) * step
    count = max(1, min(limit, (last - first) // step + 1))
    return [(last - step * i, last - step * (i - 1)) for i in reversed(range(count))]


def build_report(loop: FeedbackLoop, *, period: str = "7d", max_drift_columns: int = 24) -> str:
    """The report as an HTML string."""
    return render(
        "report.html.j2", report_context(loop, period=period, max_drift_columns=max_drift_columns)
    )


def report_context(
    loop: FeedbackLoop,
    *,
    period: str = "7d",
    max_drift_columns: int = 24,
    max_points: int = MAX_POINTS,
    max_drift_points: int = MAX_DRIFT_POINTS,
) -> dict[str, Any]:
    """Everything the report's sections show, computed from the log, registry and events.

    The charts have at most ``max_points`` points (``max_drift_points`` drift columns, each a
    drift check), the most recent ones; the context says when older predictions are left out.
    """
    step = chart_period(period)
    span = _time_range(loop)
    state = loop.handle.read_state()
    metric = loop.primary_metric
    context: dict[str, Any] = {
        "model": loop.model_name,
        "task": state.spec.task,
        "metric": metric,
        "generated": loop.clock.now(),
        "period": period,
    }
    events = loop.events(limit=None)
    if span is None:
        context.update(empty=True)
        return context
    buckets = _buckets(span, step, loop.clock.now(), max_points)
    if buckets[0][0] > span[0] or buckets[-1][1] <= span[1]:
        context["clipped"] = {"start": buckets[0][0], "end": buckets[-1][1], "oldest": span[0]}
    drift_buckets = buckets[-max_drift_points:]
    if len(drift_buckets) < len(buckets):
        context["drift_clipped"] = {"start": drift_buckets[0][0], "points": len(drift_buckets)}
    series = [loop.get_metrics(window=(a, b)) for a, b in buckets]
    mids = [a + step / 2 for a, _ in buckets]
    baseline = _baseline_series(loop, mids, metric)
    lines = [Series(metric, mids, [m.get(metric) for m in series])]
    if any(v is not None for v in baseline):
        lines.append(Series("champion baseline", mids, baseline, "#64748b", dashed=True))
    if loop.retrain_threshold is not None:
        lines.append(
            Series("threshold", mids, [loop.retrain_threshold] * len(mids), "#dc2626", dashed=True)
        )
    markers = [
        Marker(e.time, f"{e.kind}: {e.reason}", MARKERS[e.kind])
        for e in events
        if e.kind in MARKERS
    ]
    context["quality_chart"] = line_chart(lines, markers=markers, y_label=metric)
    context["coverage_chart"] = line_chart(
        [Series("label coverage", mids, [m.get("label_coverage") for m in series])],
        y_label="coverage",
        y_range=(0.0, 1.05),
    )
    context["delay_chart"] = line_chart(
        [
            Series(
                "label delay p50 (h)", mids, [_hours(m.get("label_delay_p50_s")) for m in series]
            ),
            Series(
                "label delay p95 (h)", mids, [_hours(m.get("label_delay_p95_s")) for m in series]
            ),
        ],
        y_label="hours",
    )
    context["drift_chart"] = _drift_heatmap(loop, drift_buckets, max_drift_columns)
    context["segments"] = _segments(loop, span[1])
    context["decisions"] = [_decision(e) for e in events if e.kind in DECISIONS][:200]
    context["cards"] = _cards(loop, events)
    context["counts"] = {
        k: sum(1 for e in events if e.kind == k) for k in (*DECISIONS, "drift_detected")
    }
    if "clipped" in context:  # the whole log is as long to read as the charts are bounded
        context["totals"] = loop.get_metrics(window=(buckets[0][0], buckets[-1][1]))
        context["totals_over"] = "charted periods"
    else:
        context["totals"] = loop.get_metrics(window="all")
        context["totals_over"] = "all time"
    return context


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 3600


def _baseline_series(loop: FeedbackLoop, times: list[datetime], metric: str) -> list[float | None]:
    versions = {v.version: v.metrics for v in loop.versions()}
    moves = [m for m in loop.alias_history("champion")]
    out: list[float | None] = []
    for t in times:
        current = None
        for move in moves:
            if move["time"] <= t:
                current = move["version"]
        metrics = versions.get(current, {}) if current is not None else {}
        value = metrics.get(f"holdout_{metric}")
        out.append(None if value is None else float(value))
    return out


def _drift_heatmap(loop: FeedbackLoop, buckets: list[tuple[datetime, datetime]], limit: int) -> str:
    state = loop.handle.read_state()
    try:
        reference = stored_reference(loop.handle, "default", None)
    except ValidationError:
        return '<p class="empty">no reference profile: drift is not tracked</p>'
    names = list(reference["data"]["features"])[:limit]
    values: list[list[float | None]] = [[] for _ in names]
    for a, b in buckets:
        flt = WindowFilter(state.id, to_us(a), to_us(b))
        data = window_features(loop.engine, flt, regression=state.spec.task == "regression")
        report = None
        if len(data.features) >= 30:
            report = check_drift(
                state, reference, data, flt, methods=None, share_threshold=0.5, correction="none"
            )
        for i, name in enumerate(names):
            result = None if report is None else report.columns.get(name)
            if result is None:
                values[i].append(None)
            else:
                values[i].append(severity(result))
    return heatmap(names, [a for a, _ in buckets], values)


def severity(result: Any) -> float | None:
    """1.0 at the drift threshold, above it when drifted: -log10(p) / -log10(alpha) for tests,
    statistic / threshold for distances."""
    if result.p_value is not None:
        return float(np.log10(max(result.p_value, 1e-300)) / np.log10(result.threshold))
    return result.statistic / result.threshold if result.threshold else None


def _segments(loop: FeedbackLoop, end: datetime) -> dict[str, Any]:
    state = loop.handle.read_state()
    flt = WindowFilter(state.id, to_us(end - timedelta(days=30)), to_us(end) + 1)
    data = window_features(loop.engine, flt, regression=state.spec.task == "regression")
    keys = [str(c) for c in data.tags.columns]
    if not keys or not data.labeled.any():
        return {"by": [], "rows": []}
    rows = segments(state, data, keys[:2], metric=loop.primary_metric, min_support=30)
    return {"by": keys[:2], "rows": rows[:15]}


def _decision(event: Any) -> dict[str, Any]:
    checks = event.evidence.get("checks") if isinstance(event.evidence, dict) else None
    return {
        "time": event.time,
        "kind": event.kind,
        "version": event.version,
        "actor": event.actor,
        "reason": event.reason,
        "checks": checks or [],
        "evidence": json.dumps(event.evidence, default=str)[:600],
    }


def _cards(loop: FeedbackLoop, events: list[Any]) -> list[dict[str, Any]]:
    aliases = loop.aliases()
    promotions = {e.version: e.reason for e in events if e.kind == "promoted"}
    cards = []
    for v in reversed(loop.versions()):
        cards.append(
            {
                "version": v.version,
                "aliases": [a for a, n in aliases.items() if n == v.version],
                "created": from_us(v.created_at),
                "created_by": v.created_by,
                "train_start": None if v.train_start is None else from_us(v.train_start),
                "train_end": None if v.train_end is None else from_us(v.train_end),
                "train_rows": v.train_rows,
                "metrics": {k: val for k, val in v.metrics.items() if isinstance(val, int | float)},
                "sha256": v.sha256[:16],
                "why": promotions.get(str(v.version)),
            }
        )
    return cards


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:,.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def environment(*extra: BaseLoader) -> Environment:
    """Templates of the report (and of any page that reuses its sections)."""
    env = Environment(
        loader=ChoiceLoader([*extra, PackageLoader("feedback_loop.report", "templates")]),
        autoescape=select_autoescape(["html", "j2"]),
    )
    env.filters["num"] = _number
    return env


def render(template: str, context: dict[str, Any]) -> str:
    return environment().get_template(template).render(**context)


def write_report(loop: FeedbackLoop, path: str | Path, *, period: str = "7d") -> Path:
    """Write the report to ``path`` (one self-contained HTML file)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_report(loop, period=period), encoding="utf-8")
    return out
