"""Small SVG charts, written inline so a report needs nothing from the network to display."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

WIDTH, HEIGHT = 860, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 36
PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2")


@dataclass(frozen=True)
class Series:
    name: str
    x: Sequence[datetime]
    y: Sequence[float | None]
    color: str | None = None
    dashed: bool = False


@dataclass(frozen=True)
class Marker:
    x: datetime
    label: str
    color: str


def _scale(lo: float, hi: float, out_lo: float, out_hi: float):  # type: ignore[no-untyped-def]
    span = (hi - lo) or 1.0
    return lambda v: out_lo + (v - lo) / span * (out_hi - out_lo)


def line_chart(
    series: Sequence[Series],
    *,
    markers: Sequence[Marker] = (),
    y_label: str = "",
    y_range: tuple[float, float] | None = None,
) -> str:
    """A time-series chart with optional event markers (vertical lines)."""
    points = [(x, y) for s in series for x, y in zip(s.x, s.y, strict=True) if y is not None]
    if not points:
        return '<p class="empty">no data yet</p>'
    xs = [p[0].timestamp() for p in points] + [m.x.timestamp() for m in markers]
    x0, x1 = min(xs), max(xs)
    ys = [float(p[1]) for p in points if p[1] is not None]
    y0, y1 = y_range or (min(ys), max(ys))
    pad = (y1 - y0) * 0.05 or max(abs(y0) * 0.1, 0.05)
    y0, y1 = (y0 - pad, y1 + pad) if y_range is None else (y0, y1)
    sx = _scale(x0, x1, LEFT, WIDTH - RIGHT)
    sy = _scale(y0, y1, HEIGHT - BOTTOM, TOP)
    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" class="chart" role="img">']
    for i in range(5):
        value = y0 + (y1 - y0) * i / 4
        y = sy(value)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="tick" '
            f'text-anchor="end">{value:.3g}</text>'
        )
    for i in range(6):
        t = x0 + (x1 - x0) * i / 5
        x = sx(t)
        label = datetime.fromtimestamp(t).strftime("%Y-%m-%d")
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 12}" class="tick" text-anchor="middle">{label}</text>'
        )
    for m in markers:
        x = sx(m.x.timestamp())
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" '
            f'stroke="{m.color}" class="marker"><title>{escape(m.label)}</title></line>'
        )
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        path, pen = [], "M"
        for x, y in zip(s.x, s.y, strict=True):
            if y is None:
                pen = "M"
                continue
            path.append(f"{pen}{sx(x.timestamp()):.1f},{sy(float(y)):.1f}")
            pen = "L"
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        parts.append(
            f'<path d="{" ".join(path)}" fill="none" stroke="{color}" '
            f'stroke-width="2"{dash} class="series" data-name="{escape(s.name)}"/>'
        )
    legend_x = LEFT + 40
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        parts.append(
            f'<rect x="{legend_x}" y="{TOP + 2}" width="10" height="10" '
            f'fill="{color}"/><text x="{legend_x + 14}" y="{TOP + 11}" '
            f'class="legend">{escape(s.name)}</text>'
        )
        legend_x += 22 + 7 * len(s.name)
    if y_label:
        parts.append(
            f'<text x="12" y="{HEIGHT / 2:.0f}" class="tick" '
            f'transform="rotate(-90 12 {HEIGHT / 2:.0f})">{escape(y_label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def heatmap(
    rows: Sequence[str],
    columns: Sequence[datetime],
    values: Sequence[Sequence[float | None]],
    *,
    title: str = "",
) -> str:
    """Rows × time columns, coloured by value (1.0 = at the drift threshold; red above)."""
    if not rows or not columns:
        return '<p class="empty">no drift checks yet</p>'
    cell_w = max(4.0, (WIDTH - 140) / len(columns))
    cell_h = 18
    height = cell_h * len(rows) + 40
    parts = [f'<svg viewBox="0 0 {WIDTH} {height}" class="chart heatmap" role="img">']
    for r, name in enumerate(rows):
        y = 8 + r * cell_h
        parts.append(
            f'<text x="130" y="{y + 13}" class="tick" text-anchor="end">{escape(name)}</text>'
        )
        for c, value in enumerate(values[r]):
            x = 136 + c * cell_w
            fill = _heat(value)
            tip = "—" if value is None else f"{value:.2f}× threshold"
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{cell_w:.1f}" height="{cell_h - 2}" '
                f'fill="{fill}"><title>{escape(name)} '
                f"{columns[c]:%Y-%m-%d}: {tip}</title></rect>"
            )
    y = 8 + len(rows) * cell_h + 14
    for c in range(0, len(columns), max(1, len(columns) // 6)):
        parts.append(
            f'<text x="{136 + c * cell_w:.1f}" y="{y}" class="tick">{columns[c]:%Y-%m-%d}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _heat(value: float | None) -> str:
    if value is None:
        return "#f1f5f9"
    v = max(0.0, min(value, 2.0)) / 2.0
    if v < 0.5:  # white to amber below the threshold
        t = v / 0.5
        return f"rgb({255},{int(255 - 60 * t)},{int(255 - 200 * t)})"
    t = (v - 0.5) / 0.5  # amber to red above it
    return f"rgb({int(255 - 35 * t)},{int(195 - 170 * t)},{int(55 - 30 * t)})"
