"""Charts as inline SVG, drawn on the server: line charts of metric series (several runs
overlaid) and horizontal bars (usage per student).

Inline SVG needs no script, no library and nothing from the network, prints and zooms
sharply, and is HTML a test can read: each line is a ``polyline`` carrying the series'
label and point count.  Colours come from the stylesheet (``c0`` .. ``c7``), so the SVG
holds no style of its own.  Pure: values in, ``Markup`` out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from ailabber.model.chart import number
from ailabber.web.html import Markup, attrs, esc

#: Lines are coloured c0 .. c7 in turn.
COLOURS = 8
#: A line with more points is drawn through this many of them (evenly spaced, the last
#: one always): a 640-pixel chart shows no more, and the page stays small.
MAX_DRAWN = 2000
#: Up to this many points in a chart, each gets a dot with its values as a tooltip.
MAX_DOTS = 300

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 12, 36


class Line(NamedTuple):
    label: str
    points: Sequence[tuple[float, float]]        # (x, y) in the order they were written


class Bar(NamedTuple):
    label: str
    value: float
    text: str               # what the bar says in words (e.g. "3.5 GPU-hours")


def ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round values from ``lo`` to ``hi`` (steps of 1, 2, 2.5 or 5 times a
    power of ten); just the ends when the range is empty or too wide for a float."""
    span = hi - lo
    if not span > 0 or not math.isfinite(span):
        return [lo] if hi == lo else [lo, hi]
    raw = span / n
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step)
    out: list[float] = []
    i = first
    while i * step <= hi + step * 1e-9 and len(out) <= 2 * n:
        out.append(i * step)
        i += 1
    return out or [lo, hi]


def _scale(v: float, lo: float, hi: float, length: float) -> float:
    """``v`` in [lo, hi] as 0 .. length (the middle for an empty range).  Halved first,
    which is exact, so that a range as wide as the floats does not overflow."""
    if hi <= lo:
        return length / 2
    return (v / 2 - lo / 2) / (hi / 2 - lo / 2) * length


def _range(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if lo == hi:                       # one value: a band around it, so the line sits mid-chart
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    return lo, hi


def thinned(points: Sequence[tuple[float, float]], limit: int = MAX_DRAWN) -> Sequence[tuple[float, float]]:
    """At most ``limit`` of ``points``, evenly spaced, the first and the last kept."""
    if len(points) <= limit:
        return points
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


def line_chart(title: str, lines: Sequence[Line], *, x_name: str = "step") -> Markup:
    """One chart: every line in ``lines`` on the same axes, a legend naming each with its
    number of points and its last value.  Lines without points are only named."""
    drawn = [(i, line, thinned(line.points)) for i, line in enumerate(lines) if line.points]
    legend = _legend(lines)
    if not drawn:
        return Markup(f"<figure{attrs(class_='chart', data_series=title)}><figcaption>{esc(title)}</figcaption>"
                      f"<p class=\"empty\">no points yet</p>{legend}</figure>")
    xs = [x for _i, _l, pts in drawn for x, _y in pts]
    ys = [y for _i, _l, pts in drawn for _x, y in pts]
    x_lo, x_hi = _range(xs)
    y_lo, y_hi = _range(ys)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return round(LEFT + _scale(x, x_lo, x_hi, plot_w), 1)

    def py(y: float) -> float:
        return round(TOP + plot_h - _scale(y, y_lo, y_hi, plot_h), 1)

    parts = [f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>']
    for t in ticks(y_lo, y_hi):
        y = py(t)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}"/>'
                     f'<text class="tick" x="{LEFT - 6}" y="{y + 4}" text-anchor="end">{esc(number(t))}</text>')
    for t in ticks(x_lo, x_hi):
        x = px(t)
        parts.append(f'<text class="tick" x="{x}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
                     f'{esc(number(t))}</text>')
    parts.append(f'<text class="axis" x="{WIDTH - RIGHT}" y="{HEIGHT - 4}" text-anchor="end">{esc(x_name)}</text>')
    dots = sum(len(pts) for _i, _l, pts in drawn) <= MAX_DOTS
    for i, line, pts in drawn:
        coords = " ".join(f"{px(x)},{py(y)}" for x, y in pts)
        a = attrs(class_=f"line c{i % COLOURS}", points=coords, data_label=line.label, data_points=len(line.points))
        parts.append(f"<polyline{a}><title>{esc(line.label)}</title></polyline>")
        if dots:
            parts += [f'<circle class="dot c{i % COLOURS}" cx="{px(x)}" cy="{py(y)}" r="2.5">'
                      f"<title>{esc(line.label)}: {esc(x_name)} {esc(number(x))}, {esc(number(y))}</title></circle>"
                      for x, y in pts]
    svg = (f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"{attrs(aria_label=title)}>'
           + "".join(parts) + "</svg>")
    return Markup(f"<figure{attrs(class_='chart', data_series=title)}><figcaption>{esc(title)}</figcaption>"
                  f"{svg}{legend}</figure>")


def _legend(lines: Sequence[Line]) -> str:
    items = []
    for i, line in enumerate(lines):
        n = len(line.points)
        if n:
            x, y = line.points[-1]
            shown = f", {len(thinned(line.points))} drawn" if n > MAX_DRAWN else ""
            what = f"{n} point{'s' if n != 1 else ''}{shown}, last {number(y)} at {number(x)}"
        else:
            what = "no points"
        items.append(f"<li{attrs(class_=f'c{i % COLOURS}')}><span class=\"key\"></span>{esc(line.label)}"
                     f" <span class=\"muted\">{esc(what)}</span></li>")
    return f'<ul class="legend">{"".join(items)}</ul>'


BAR_ROW, BAR_LABEL, BAR_TEXT = 22, 150, 150


def bar_chart(title: str, bars: Sequence[Bar]) -> Markup:
    """Horizontal bars, one per row, scaled to the largest value; each row names its
    label and says its value in words."""
    if not bars:
        return Markup('<p class="empty">nothing yet</p>')
    top = max(b.value for b in bars)
    room = WIDTH - BAR_LABEL - BAR_TEXT
    height = BAR_ROW * len(bars) + 4
    parts = []
    for i, b in enumerate(bars):
        y = 2 + i * BAR_ROW
        w = round(_scale(b.value, 0.0, top, room), 1) if top > 0 else 0.0
        parts.append(f"<g{attrs(class_='bar', data_label=b.label, data_value=f'{b.value:g}')}>"
                     f'<text class="label" x="{BAR_LABEL - 8}" y="{y + 15}" text-anchor="end">{esc(b.label)}</text>'
                     f'<rect class="c0" x="{BAR_LABEL}" y="{y + 3}" width="{max(w, 1.0) if b.value > 0 else 0}" '
                     f'height="{BAR_ROW - 6}"/>'
                     f'<text class="value" x="{BAR_LABEL + w + 6}" y="{y + 15}">{esc(b.text)}</text></g>')
    return Markup(f'<svg class="bars" viewBox="0 0 {WIDTH} {height}" role="img"{attrs(aria_label=title)}>'
                  + "".join(parts) + "</svg>")
