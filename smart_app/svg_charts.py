"""Small server-rendered SVG charts for the staff panel (no script, no CDN, no inline CSS).

Colours and fonts are SVG presentation attributes, which the panel's Content-Security-Policy
(``default-src 'self'``, no ``'unsafe-inline'``) allows. Every text is escaped. Each chart is
an ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` listing its numbers, so a screen
reader gets the data, not just a picture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

from markupsafe import Markup

INK: Final = "#1d2733"
MUTED: Final = "#5b6775"
GRID: Final = "#e3e7ec"
FONT: Final = "system-ui, -apple-system, 'Segoe UI', sans-serif"


@dataclass(frozen=True)
class Series:
    """One named series of a chart: a colour and one value per category (None: no value)."""

    name: str
    color: str
    values: Sequence[float | None]


@dataclass(frozen=True)
class _Frame:
    width: int
    height: int
    left: int = 44
    right: int = 12
    top: int = 30
    bottom: int = 34

    @property
    def plot_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> float:
        return self.height - self.top - self.bottom

    def y(self, value: float, top_value: float) -> float:
        return self.top + self.plot_height * (1 - value / top_value if top_value else 1)


def _axis_ticks(value: float) -> list[float]:
    """Round gridline values from 0 to at or above ``value``, about four steps apart."""
    if value <= 0:
        return [0.0, 1.0]
    rough = value / 4
    magnitude = 10 ** math.floor(math.log10(rough))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if rough <= m * magnitude)
    return [step * i for i in range(math.ceil(value / step - 1e-9) + 1)]


def _number(value: float, percent: bool) -> str:
    text = f"{value:.0f}" if value == int(value) else f"{value:.1f}"
    return f"{text}%" if percent else text


def _open(frame: _Frame, title: str, description: str, chart_id: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(chart_id)}" '
        f'viewBox="0 0 {frame.width} {frame.height}" width="100%" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" '
        f'font-family="{FONT}" font-size="11" fill="{INK}">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(description)}</desc>',
    ]


def _axis(frame: _Frame, ticks: Sequence[float], percent: bool) -> list[str]:
    parts = []
    for value in ticks:
        y = frame.y(value, ticks[-1])
        parts.append(
            f'<line x1="{frame.left}" x2="{frame.width - frame.right}" y1="{y:.1f}" '
            f'y2="{y:.1f}" stroke="{GRID}" stroke-width="1"/>'
            f'<text x="{frame.left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{MUTED}">'
            f"{escape(_number(value, percent))}</text>"
        )
    return parts


def _legend(frame: _Frame, series: Sequence[Series]) -> list[str]:
    parts, x = [], float(frame.left)
    for each in series:
        parts.append(
            f'<rect x="{x:.1f}" y="8" width="10" height="10" rx="2" fill="{each.color}"/>'
            f'<text x="{x + 14:.1f}" y="17" fill="{INK}">{escape(each.name)}</text>'
        )
        x += 24 + 6.2 * len(each.name)
    return parts


def _category_labels(frame: _Frame, categories: Sequence[str]) -> list[str]:
    slot = frame.plot_width / max(1, len(categories))
    every = max(1, math.ceil(len(categories) * 44 / frame.plot_width))
    return [
        f'<text x="{frame.left + slot * (i + 0.5):.1f}" y="{frame.height - frame.bottom + 16}" '
        f'text-anchor="middle" fill="{MUTED}">{escape(label)}</text>'
        for i, label in enumerate(categories)
        if i % every == 0
    ]


def _describe(categories: Sequence[str], series: Sequence[Series], percent: bool) -> str:
    rows = []
    for i, category in enumerate(categories):
        values = []
        for each in series:
            value = each.values[i] if i < len(each.values) else None
            values.append(f"{each.name} {'n/a' if value is None else _number(value, percent)}")
        rows.append(f"{category}: {', '.join(values)}")
    return "; ".join(rows)


def stacked_bars(
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    chart_id: str,
    width: int = 560,
    height: int = 240,
) -> Markup:
    """One bar per category, the series stacked bottom-up (counts)."""
    frame = _Frame(width, height)
    totals = [sum(each.values[i] or 0 for each in series) for i in range(len(categories))]
    parts, top_value, slot = _begin(
        frame, categories, series, max(totals, default=0), title, chart_id, False
    )
    bar = min(42.0, slot * 0.64)
    for i in range(len(categories)):
        base = 0.0
        x = frame.left + slot * i + (slot - bar) / 2
        for each in series:
            value = each.values[i] or 0
            if value <= 0:
                continue
            y_top, y_bottom = frame.y(base + value, top_value), frame.y(base, top_value)
            parts.append(
                f'<rect x="{x:.1f}" y="{y_top:.1f}" width="{bar:.1f}" '
                f'height="{max(0.5, y_bottom - y_top):.1f}" fill="{each.color}">'
                f"<title>{escape(categories[i])}: {escape(each.name)} "
                f"{escape(_number(value, False))}</title></rect>"
            )
            base += value
    return _end(frame, categories, parts)


def grouped_bars(
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    chart_id: str,
    percent: bool = True,
    width: int = 560,
    height: int = 240,
) -> Markup:
    """Side-by-side bars per category, each labelled with its value; None leaves a gap."""
    frame = _Frame(width, height)
    values = [v for each in series for v in each.values if v is not None]
    parts, top_value, slot = _begin(
        frame, categories, series, max(values, default=0) * 1.08, title, chart_id, percent
    )
    bar = min(34.0, slot * 0.78 / max(1, len(series)))
    for i in range(len(categories)):
        start = frame.left + slot * i + (slot - bar * len(series)) / 2
        for j, each in enumerate(series):
            value = each.values[i] if i < len(each.values) else None
            if value is None:
                continue
            y = frame.y(value, top_value)
            height_px = max(0.5, frame.top + frame.plot_height - y)
            x = start + bar * j
            parts.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{bar - 2:.1f}" '
                f'height="{height_px:.1f}" fill="{each.color}"><title>{escape(categories[i])}: '
                f"{escape(each.name)} {escape(_number(value, percent))}</title></rect>"
                f'<text x="{x + bar / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle" '
                f'font-size="10" fill="{MUTED}">{escape(_number(value, percent))}</text>'
            )
    return _end(frame, categories, parts)


def line_chart(
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    chart_id: str,
    percent: bool = True,
    width: int = 560,
    height: int = 240,
) -> Markup:
    """One line per series across the categories, a dot per value; None breaks the line."""
    frame = _Frame(width, height)
    values = [v for each in series for v in each.values if v is not None]
    parts, top_value, slot = _begin(
        frame, categories, series, max(values, default=0) * 1.08, title, chart_id, percent
    )
    for each in series:
        segment: list[str] = []
        points: list[str] = []
        for i, value in enumerate(each.values):
            if value is None:
                if len(segment) > 1:
                    points.insert(0, _polyline(segment, each.color))
                segment = []
                continue
            x, y = frame.left + slot * (i + 0.5), frame.y(value, top_value)
            segment.append(f"{x:.1f},{y:.1f}")
            points.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{each.color}" '
                f'stroke="{each.color}" stroke-width="1.5"><title>{escape(categories[i])}: '
                f"{escape(each.name)} {escape(_number(value, percent))}</title></circle>"
            )
        if len(segment) > 1:
            points.insert(0, _polyline(segment, each.color))
        parts += points
    return _end(frame, categories, parts)


def _begin(
    frame: _Frame,
    categories: Sequence[str],
    series: Sequence[Series],
    largest: float,
    title: str,
    chart_id: str,
    percent: bool,
) -> tuple[list[str], float, float]:
    """A chart's opening, axis (up to ``largest``) and legend; its top value and slot width."""
    ticks = _axis_ticks(largest)
    parts = _open(frame, title, _describe(categories, series, percent), chart_id)
    parts += _axis(frame, ticks, percent) + _legend(frame, series)
    return parts, ticks[-1], frame.plot_width / max(1, len(categories))


def _end(frame: _Frame, categories: Sequence[str], parts: list[str]) -> Markup:
    parts += _category_labels(frame, categories)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text in it went through escape())


def _polyline(points: Sequence[str], color: str) -> str:
    return (
        f'<polyline points="{" ".join(points)}" fill="none" stroke="{color}" '
        'stroke-width="2" stroke-linejoin="round"/>'
    )
