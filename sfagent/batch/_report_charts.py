"""The report's charts as inline SVG strings: a line chart, a histogram, horizontal bars.

Pure string building, stdlib only, so the page needs no script library and no network. Every
text that reaches the markup goes through `html.escape`. Data marks are ``rect``, ``polyline``
and ``circle``; axes, grid and limit lines are ``line`` elements, so a browser test counting the
data marks (see the page's script) does not count the frame. Colours come from the page's CSS
classes (``s0``, ``s1``, ``limit``...), not from attributes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

__all__ = [
    "SCRIPT",
    "STYLE",
    "Series",
    "bin_values",
    "count_bins",
    "format_number",
    "format_seconds",
    "hbars",
    "histogram",
    "line_chart",
]

WIDTH = 720
HEIGHT = 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 14, 36
_PLOT_W = WIDTH - _LEFT - _RIGHT
_PLOT_H = HEIGHT - _TOP - _BOTTOM

Series = tuple[str, Sequence[int], str]
"""A histogram's stack layer: its legend label, one count per bin, and its CSS class."""


def format_number(value: float) -> str:
    """A short label for an axis tick or a bar: ``950``, ``1.2k``, ``3.4M``, ``0.0012``."""
    magnitude = abs(value)
    for size, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def format_seconds(seconds: float) -> str:
    """A duration as a short label: ``850 ms``, ``12.5 s``, ``4.2 min``, ``3.1 h``."""
    if seconds == 0:
        return "0"
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def _nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least `top` (1, 2, 2.5 or 5 times a power of ten apart)."""
    if not math.isfinite(top) or top <= 0:
        top = 1.0
    raw = top / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    ticks = [0.0]
    while ticks[-1] < top * (1 - 1e-12):
        ticks.append(step * len(ticks))
    return ticks


def _x(value: float, span: float) -> float:
    return _LEFT + _PLOT_W * (value / span if span > 0 else 0.0)


def _y(value: float, span: float) -> float:
    return _TOP + _PLOT_H * (1 - (value / span if span > 0 else 0.0))


def _frame(
    chart_id: str,
    label: str,
    body: list[str],
    *,
    y_ticks: Sequence[float],
    x_ticks: Sequence[tuple[float, str]],
    x_span: float,
    y_format: Callable[[float], str] = format_number,
) -> str:
    """The chart's ``<svg>``: gridlines, axis labels and `body` (its marks), with a title."""
    top = y_ticks[-1]
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(label)}">',
        f"<title>{escape(label)}</title>",
    ]
    for tick in y_ticks:
        y = _y(tick, top)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text class="ytick" x="{_LEFT - 6}" y="{y + 4:.1f}">{escape(y_format(tick))}</text>'
        )
    base = _TOP + _PLOT_H
    for value, text in x_ticks:
        x = _x(value, x_span)
        parts.append(f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}"/>')
        parts.append(f'<text class="xtick" x="{x:.1f}" y="{base + 18}">{escape(text)}</text>')
    parts.append(f'<line class="axis" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{base}" y2="{base}"/>')
    parts.extend(body)
    parts.append("</svg>")
    return "".join(parts)


def _time_ticks(span: float) -> list[tuple[float, str]]:
    """Ticks along a time axis of `span` seconds, labelled in s, min or h."""
    unit, name = (1.0, "s") if span <= 180 else (60.0, "min") if span <= 10800 else (3600.0, "h")
    return [(tick * unit, f"{format_number(tick)} {name}") for tick in _nice_ticks(span / unit)]


def line_chart(
    chart_id: str,
    label: str,
    *,
    points: Sequence[tuple[float, float]],
    x_span: float,
    limit: float | None,
    limit_label: str,
) -> str:
    """A line over time (x in seconds from 0 to `x_span`), with a dashed line at `limit`.

    Args:
        chart_id: The ``<svg>`` element's id.
        label: The chart's accessible title.
        points: ``(seconds, value)`` pairs in time order.
        x_span: The time axis' length in seconds.
        limit: Where to draw the limit line, or ``None`` for no limit.
        limit_label: The limit line's caption.
    """
    peak = max((value for _, value in points), default=0.0)
    y_ticks = _nice_ticks(max(peak, limit or 0.0) * 1.08)
    top = y_ticks[-1]
    coords = " ".join(f"{_x(t, x_span):.1f},{_y(v, top):.1f}" for t, v in points)
    body = [
        f'<polyline class="line s0" points="{coords}"><title>{escape(label)}</title></polyline>'
    ]
    if len(points) == 1:  # one point draws no line: show it as a dot
        t, v = points[0]
        body.append(
            f'<circle class="dot s0" cx="{_x(t, x_span):.1f}" cy="{_y(v, top):.1f}" r="3"/>'
        )
    if limit is not None:
        y = _y(limit, top)
        body.append(
            f'<line class="limit" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        body.append(
            f'<text class="limit-label" x="{WIDTH - _RIGHT - 4}" y="{y - 5:.1f}">'
            f"{escape(limit_label)}</text>"
        )
    return _frame(
        chart_id, label, body, y_ticks=y_ticks, x_ticks=_time_ticks(x_span), x_span=x_span
    )


def bin_values(values: Sequence[float], bins: int = 30) -> list[float]:
    """Equal-width bin edges from 0 to the largest value (``bins + 1`` edges, or 2 when flat)."""
    top = max(values, default=0.0)
    if not math.isfinite(top) or top <= 0:
        return [0.0, 1.0]
    return [top * i / bins for i in range(bins + 1)]


def count_bins(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    """How many `values` fall in each bin of `edges` (the last bin includes its right edge)."""
    counts = [0] * (len(edges) - 1)
    low, width = edges[0], edges[-1] - edges[0]
    last = len(counts) - 1
    for value in values:
        index = int((value - low) / width * len(counts)) if width > 0 else 0
        counts[min(max(index, 0), last)] += 1
    return counts


def histogram(
    chart_id: str,
    label: str,
    *,
    edges: Sequence[float],
    series: Sequence[Series],
    markers: Sequence[tuple[str, float]] = (),
    x_format: Callable[[float], str] = format_number,
) -> str:
    """Stacked bars over equal-width bins, with labelled vertical markers (percentiles).

    Args:
        chart_id: The ``<svg>`` element's id.
        label: The chart's accessible title.
        edges: The bins' edges, ascending, one more than each series' counts.
        series: The stack's layers, bottom first; an empty bin draws nothing.
        markers: ``(label, x)`` pairs drawn as vertical lines.
        x_format: How to label an x value.
    """
    low, span = edges[0], edges[-1] - edges[0]
    totals = [sum(layer[1][i] for layer in series) for i in range(len(edges) - 1)]
    y_ticks = _nice_ticks(max(totals, default=0) * 1.05)
    top = y_ticks[-1]
    body: list[str] = []
    for i in range(len(edges) - 1):
        x0, x1 = _x(edges[i] - low, span), _x(edges[i + 1] - low, span)
        below = 0
        for name, counts, css in series:
            if counts[i] == 0:
                continue
            y0, y1 = _y(below + counts[i], top), _y(below, top)
            tip = f"{x_format(edges[i])}–{x_format(edges[i + 1])}: {counts[i]:,} {name}"
            body.append(
                f'<rect class="bar {css}" x="{x0 + 0.5:.1f}" y="{y0:.1f}" '
                f'width="{max(x1 - x0 - 1, 1):.1f}" height="{y1 - y0:.1f}">'
                f"<title>{escape(tip)}</title></rect>"
            )
            below += counts[i]
    body.extend(_markers(markers, low, span))
    ticks = [
        (edges[0] + t, x_format(edges[0] + t)) for t in _nice_ticks(span) if t <= span * 1.0001
    ]
    return _frame(
        chart_id,
        label,
        body,
        y_ticks=y_ticks,
        x_ticks=[(v - low, s) for v, s in ticks],
        x_span=span,
    )


def _markers(markers: Sequence[tuple[str, float]], low: float, span: float) -> list[str]:
    """Labelled vertical dashed lines at the given x values."""
    parts = []
    for name, value in markers:
        x = _x(value - low, span)
        parts.append(
            f'<line class="marker" x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP}" y2="{_TOP + _PLOT_H}"/>'
            f'<text class="marker-label" x="{x + 3:.1f}" y="{_TOP + 10}">{escape(name)}</text>'
        )
    return parts


def hbars(chart_id: str, label: str, items: Sequence[tuple[str, int]]) -> str:
    """Horizontal bars, one per ``(label, count)`` item, longest first as given."""
    row = 26
    height = _TOP + row * len(items) + 10
    top = max((count for _, count in items), default=1) or 1
    left, width = 200, WIDTH - 200 - 70
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" aria-label="{escape(label)}">',
        f"<title>{escape(label)}</title>",
    ]
    for i, (name, count) in enumerate(items):
        y = _TOP + i * row
        bar = max(width * count / top, 1.0)
        shown = name if len(name) <= 28 else name[:27] + "…"
        parts.append(f'<text class="hlabel" x="{left - 8}" y="{y + 15}">{escape(shown)}</text>')
        parts.append(
            f'<rect class="bar s2" x="{left}" y="{y + 3}" width="{bar:.1f}" height="{row - 8}">'
            f"<title>{escape(name)}: {count:,}</title></rect>"
        )
        parts.append(f'<text class="hvalue" x="{left + bar + 6:.1f}" y="{y + 15}">{count:,}</text>')
    parts.append("</svg>")
    return "".join(parts)


STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d232b;
background:#f6f7f9;margin:0;padding:24px}
main{max-width:1040px;margin:0 auto}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d9dde3;padding-bottom:4px}
.sub{color:#5b6571;margin:0 0 16px}
.summary{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:8px;margin:0}
.metric{background:#fff;border:1px solid #e1e4e8;border-radius:6px;padding:8px 10px}
.metric dt{color:#5b6571;font-size:12px}
.metric dd{margin:0;font-size:18px;font-weight:600;font-variant-numeric:tabular-nums}
.note{display:block;color:#8a5a00;font-size:11px}
figure{margin:8px 0 16px;background:#fff;border:1px solid #e1e4e8;border-radius:6px;padding:8px}
figcaption{color:#5b6571;font-size:12px;margin-top:4px}
svg.chart{display:block;width:100%;max-width:720px;height:auto}
svg text{font-size:11px;fill:#5b6571}
.ytick,.hlabel{text-anchor:end}
.xtick{text-anchor:middle}
.limit-label{text-anchor:end;fill:#b3261e;font-weight:600}
.grid{stroke:#eceef1}
.axis{stroke:#9aa3ad}
.limit{stroke:#b3261e;stroke-width:1.5;stroke-dasharray:6 4}
.marker{stroke:#1d232b;stroke-width:1;stroke-dasharray:3 3}
.marker-label{fill:#1d232b}
.line{fill:none;stroke-width:1.8;stroke-linejoin:round}
.line.s0{stroke:#2f6fde}
.dot.s0{fill:#2f6fde}
.bar.s0{fill:#2f6fde}
.bar.s1{fill:#4c9a6a}
.bar.s2{fill:#d9534f}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border:1px solid #e1e4e8;padding:4px 8px;text-align:left;vertical-align:top;
overflow-wrap:anywhere}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.empty{color:#5b6571;font-style:italic}
footer{margin-top:32px;color:#8b949e;font-size:12px}
"""
"""The page's stylesheet: colours by class, so the SVG carries no style attributes."""

SCRIPT = """(function () {
  function measure() {
    var charts = [];
    document.querySelectorAll("svg.chart").forEach(function (svg) {
      var box = svg.getBoundingClientRect();
      var marks = 0;
      svg.querySelectorAll("rect, path, circle, polyline").forEach(function (el) {
        var b = el.getBBox();
        if (b.width > 0 || b.height > 0) { marks += 1; }
      });
      charts.push({id: svg.id, width: box.width, height: box.height, marks: marks});
    });
    document.body.dataset.rendered = JSON.stringify({charts: charts});
  }
  if (document.readyState === "complete") { measure(); }
  else { window.addEventListener("load", measure); }
})();"""
"""Measures each chart once the page is laid out, for the browser test (and anyone curious):
a mark counts when the browser gave it a box, that is when it was actually drawn."""
