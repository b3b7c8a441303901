"""Line charts as inline SVG, drawn on the server: no script, no network, no library.

A chart is a few series over time (a rollout's weights; a metric's estimate with its
confidence band, the margin and zero), with markers where decisions happened. The
functions here are pure: numbers in, SVG text out, every label escaped. Points with
a missing value (None, NaN, infinite) break the line instead of drawing it to zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import TypeGuard

__all__ = ["Band", "Chart", "Line", "Marker", "render"]

WIDTH, HEIGHT = 640, 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 12, 12, 28


@dataclass(frozen=True, slots=True)
class Line:
    """A series: ``(time, value)`` points, drawn in time order."""

    label: str
    points: Sequence[tuple[datetime, float | None]]
    css: str  # the class that colours it (see ui.css)
    dashed: bool = False
    steps: bool = False  # a value holds until the next point (a weight), not a slope


@dataclass(frozen=True, slots=True)
class Band:
    """A shaded interval over time: ``(time, low, high)``."""

    label: str
    points: Sequence[tuple[datetime, float | None, float | None]]
    css: str


@dataclass(frozen=True, slots=True)
class Marker:
    """A vertical rule at ``at`` with a short label (a decision)."""

    at: datetime
    label: str
    css: str = "marker"


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    lines: Sequence[Line] = ()
    bands: Sequence[Band] = ()
    markers: Sequence[Marker] = ()
    unit: str = ""
    y_floor: float | None = None  # keep these in view (0 for weights, the margin)
    y_ceiling: float | None = None
    notes: Sequence[str] = field(default_factory=tuple)


def _finite(x: float | None) -> TypeGuard[float]:
    return x is not None and math.isfinite(x)


def _extent(chart: Chart) -> tuple[float, float, float, float] | None:
    """(t0, t1, y0, y1) over every drawn value; None when there is nothing to draw."""
    times = [t.timestamp() for line in chart.lines for t, v in line.points if _finite(v)]
    times += [
        t.timestamp()
        for band in chart.bands
        for t, lo, hi in band.points
        if _finite(lo) and _finite(hi)
    ]
    values = [v for line in chart.lines for _, v in line.points if _finite(v)]
    values += [
        x for band in chart.bands for _, lo, hi in band.points for x in (lo, hi) if _finite(x)
    ]
    if not times or not values:
        return None
    ys = [*values, *(y for y in (chart.y_floor, chart.y_ceiling) if y is not None)]
    y0, y1 = min(ys), max(ys)
    if y0 == y1:
        y0, y1 = y0 - 1.0, y1 + 1.0
    pad = (y1 - y0) * 0.05
    low = y0 if y0 == chart.y_floor else y0 - pad  # a given bound is the edge itself
    high = y1 if y1 == chart.y_ceiling else y1 + pad
    t0, t1 = min(times), max(times)
    if t0 == t1:
        t0, t1 = t0 - 1.0, t1 + 1.0
    return t0, t1, float(low), float(high)


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000 or magnitude < 0.001:
        return f"{value:.2g}"
    return f"{value:.3g}"


def render(chart: Chart) -> str:
    """The chart as an ``<svg>`` element (or a short note when it has no data)."""
    title = escape(chart.title)
    extent = _extent(chart)
    if extent is None:
        return f'<p class="chart-empty">{title}: no data yet</p>'
    t0, t1, y0, y1 = extent
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM

    def x(t: datetime) -> float:
        return _LEFT + (t.timestamp() - t0) / (t1 - t0) * plot_w

    def y(v: float) -> float:
        return _TOP + (y1 - v) / (y1 - y0) * plot_h

    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{title}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{title}</title>",
    ]
    for k in range(5):  # horizontal grid with the value axis
        value = y0 + (y1 - y0) * k / 4
        yy = y(value)
        out.append(
            f'<line class="grid" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}"/>'
        )
        out.append(
            f'<text class="tick" x="{_LEFT - 4}" y="{yy + 4:.1f}" '
            f'text-anchor="end">{escape(_fmt(value))}{escape(chart.unit)}</text>'
        )
    for band in chart.bands:
        drawn = [(t, lo, hi) for t, lo, hi in band.points if _finite(lo) and _finite(hi)]
        if len(drawn) == 1:  # one look: its interval as an error bar
            ((t, lo, hi),) = drawn
            out.append(
                f'<line class="{escape(band.css)} errorbar" x1="{x(t):.1f}" x2="{x(t):.1f}" '
                f'y1="{y(lo):.1f}" y2="{y(hi):.1f}"><title>{escape(band.label)}</title></line>'
            )
        for segment in _segments(
            [(t, lo, hi) for t, lo, hi in band.points if _finite(lo) and _finite(hi)]
        ):
            upper = " ".join(f"{x(t):.1f},{y(hi):.1f}" for t, _, hi in segment)  # type: ignore[arg-type]
            lower = " ".join(f"{x(t):.1f},{y(lo):.1f}" for t, lo, _ in reversed(segment))  # type: ignore[arg-type]
            out.append(
                f'<polygon class="{escape(band.css)}" points="{upper} {lower}">'
                f"<title>{escape(band.label)}</title></polygon>"
            )
    for line in chart.lines:
        dash = ' stroke-dasharray="4 3"' if line.dashed else ""
        for run in _runs(line.points):
            corners = _stepped(run) if line.steps else run
            coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in corners)
            if len(run) == 1:
                ((t, v),) = run
                out.append(
                    f'<circle class="{escape(line.css)}" cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5"/>'
                )
            else:
                out.append(
                    f'<polyline class="{escape(line.css)}" fill="none"{dash} '
                    f'points="{coords}"><title>{escape(line.label)}</title></polyline>'
                )
    for marker in chart.markers:
        xx = x(marker.at)
        out.append(
            f'<line class="{escape(marker.css)}" x1="{xx:.1f}" x2="{xx:.1f}" '
            f'y1="{_TOP}" y2="{HEIGHT - _BOTTOM}"><title>{escape(marker.label)}</title>'
            "</line>"
        )
    start = datetime.fromtimestamp(t0, UTC).strftime("%H:%M:%S")
    end = datetime.fromtimestamp(t1, UTC).strftime("%H:%M:%S")
    out.append(f'<text class="tick" x="{_LEFT}" y="{HEIGHT - 8}">{start}</text>')
    out.append(
        f'<text class="tick" x="{WIDTH - _RIGHT}" y="{HEIGHT - 8}" text-anchor="end">{end}</text>'
    )
    out.append("</svg>")
    legend = "".join(
        f'<span class="key {escape(item.css)}">{escape(item.label)}</span>'
        for item in [*chart.lines, *chart.bands]
        if isinstance(item, Line | Band)
    )
    return (
        f'<figure class="chart-box"><figcaption>{title}</figcaption>{"".join(out)}'
        f'<div class="legend">{legend}</div></figure>'
    )


def _runs(
    points: Sequence[tuple[datetime, float | None]],
) -> list[list[tuple[datetime, float]]]:
    """The points in time order, split where a value is missing."""
    runs: list[list[tuple[datetime, float]]] = [[]]
    for t, v in sorted(points, key=lambda p: p[0]):
        if _finite(v):
            runs[-1].append((t, float(v)))
        elif runs[-1]:
            runs.append([])
    return [r for r in runs if r]


def _stepped(run: list[tuple[datetime, float]]) -> list[tuple[datetime, float]]:
    """The corners of a step line through ``run``: each value held until the next."""
    out: list[tuple[datetime, float]] = []
    for k, (t, v) in enumerate(run):
        if k:
            out.append((t, run[k - 1][1]))
        out.append((t, v))
    return out


def _segments(
    points: Sequence[tuple[datetime, float | None, float | None]],
) -> list[list[tuple[datetime, float | None, float | None]]]:
    """Band points in time order, in runs of at least two (a polygon needs width)."""
    ordered = sorted(points, key=lambda p: p[0])
    return [ordered] if len(ordered) >= 2 else []
