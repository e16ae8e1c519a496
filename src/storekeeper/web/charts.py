"""Charts drawn on the server as inline SVG: no chart library, no script, and the figures
are also given as text (title, description) for screen readers.

Colours come from CSS classes in the stylesheet, so the SVG carries no inline styles and
the pages' Content-Security-Policy can forbid them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

WIDTH = 900
HEIGHT = 220
LEFT = 48
RIGHT = 12
TOP = 12
BOTTOM = 28
PLOT_WIDTH = WIDTH - LEFT - RIGHT
PLOT_HEIGHT = HEIGHT - TOP - BOTTOM
# A bar for a figure above zero is never thinner than this (in viewBox units): a day with
# one unit shipped beside thousands received must still be seen and pointed at.
MIN_BAR_HEIGHT = 3
# Up to this many bars each carry their figure above them; beyond it the labels would
# crowd, and the tooltips give the figures.
MAX_VALUE_LABELS = 12


@dataclass(frozen=True)
class Series:
    label: str
    values: list[int]
    css_class: str


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 2.5, 5 times 10^n at or above `value` (at least 1), for a y axis
    whose ticks are round numbers."""
    if value <= 1:
        return 1
    magnitude = 1
    while magnitude * 10 < value:
        magnitude *= 10
    for step in (1, 2, 2.5, 5, 10):
        candidate = int(step * magnitude)
        if candidate >= value:
            return candidate
    return magnitude * 10


def _y(value: int, top: int) -> float:
    return TOP + PLOT_HEIGHT - (value / top) * PLOT_HEIGHT


def _frame(
    title: str, description: str, chart_id: str, body: list[str], top: int, unit: str = "units"
) -> Markup:
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" preserveAspectRatio="xMidYMid meet">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
    ]
    for fraction in (0, 0.5, 1):
        tick = round(top * fraction)
        y = _y(tick, top)
        parts.append(
            f'<line class="chart-grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text class="chart-label" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{tick:,}</text>"
        )
    middle = TOP + PLOT_HEIGHT / 2
    parts.append(
        f'<text class="chart-axis" x="10" y="{middle:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 10 {middle:.1f})">{escape(unit)}</text>'
    )
    parts.extend(body)
    parts.append("</svg>")
    return Markup("".join(parts))


def _day_labels(days: list[date], slot: float) -> list[str]:
    every = max(1, len(days) // 6)
    labels = []
    for index, day in enumerate(days):
        if index % every == 0 or index == len(days) - 1:
            x = LEFT + slot * index + slot / 2
            labels.append(
                f'<text class="chart-label" x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
                f"{day:%m-%d}</text>"
            )
    return labels


def bar_chart(
    days: list[date], series: list[Series], *, title: str, description: str, chart_id: str
) -> Markup:
    """Grouped bars: one group per day, one bar per series. Every day has a tooltip (an SVG
    `<title>`) with all its figures, each bar one of its own, and when there are few bars
    each carries its figure."""
    top = nice_ceiling(max((max(s.values, default=0) for s in series), default=0))
    slot = PLOT_WIDTH / max(len(days), 1)
    bar = max(slot * 0.8 / max(len(series), 1), 1.0)
    body: list[str] = []
    for index, day in enumerate(days):
        figures = ", ".join(
            f"{item.label} {item.values[index] if index < len(item.values) else 0:,}"
            for item in series
        )
        # Drawn first, under the bars: the whole day's column answers a hover.
        body.append(
            f'<rect class="chart-hit" x="{LEFT + slot * index:.1f}" y="{TOP}" '
            f'width="{slot:.1f}" height="{PLOT_HEIGHT}"><title>{day:%Y-%m-%d}: '
            f"{escape(figures)}</title></rect>"
        )
    drawn = [
        (position, index, value)
        for position, item in enumerate(series)
        for index, value in enumerate(item.values)
        if value > 0
    ]
    for position, index, value in drawn:
        item = series[position]
        x = LEFT + slot * index + slot * 0.1 + bar * position
        y = min(_y(value, top), TOP + PLOT_HEIGHT - MIN_BAR_HEIGHT)
        body.append(
            f'<rect class="{item.css_class}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
            f'height="{TOP + PLOT_HEIGHT - y:.1f}"><title>{escape(item.label)} '
            f"{days[index]:%Y-%m-%d}: {value:,}</title></rect>"
        )
        if len(drawn) <= MAX_VALUE_LABELS:
            body.append(
                f'<text class="chart-value" x="{x + bar / 2:.1f}" y="{max(y - 3, 10):.1f}" '
                f'text-anchor="middle">{value:,}</text>'
            )
    body.extend(_day_labels(days, slot))
    return _frame(title, description, chart_id, body, top)


def step_chart(
    days: list[date], values: list[int], *, title: str, description: str, chart_id: str
) -> Markup:
    """One value per day (the level at the end of that day) drawn as steps; every day has
    a tooltip with its figure."""
    top = nice_ceiling(max(values, default=0))
    slot = PLOT_WIDTH / max(len(days), 1)
    hits = [
        f'<rect class="chart-hit" x="{LEFT + slot * index:.1f}" y="{TOP}" width="{slot:.1f}" '
        f'height="{PLOT_HEIGHT}"><title>{day:%Y-%m-%d}: {value:,} on hand</title></rect>'
        for index, (day, value) in enumerate(zip(days, values, strict=False))
    ]
    points: list[str] = []
    for index, value in enumerate(values):
        y = _y(value, top)
        points.append(f"{LEFT + slot * index:.1f},{y:.1f}")
        points.append(f"{LEFT + slot * (index + 1):.1f},{y:.1f}")
    body = [*hits, f'<polyline class="chart-line" fill="none" points="{" ".join(points)}"/>']
    body.extend(_day_labels(days, slot))
    return _frame(title, description, chart_id, body, top)
