"""A series of (x, y) points as a small line chart in a terminal, as lines of text.

Each character cell is a 2 x 4 grid of Unicode braille dots, so a chart ``width`` cells
wide shows ``2 * width`` distinct x positions; where the terminal cannot show braille,
``ascii`` draws one ``*`` per cell instead.  The points are drawn in x order, every
dot column from its lowest to its highest point, joined to the next column by a straight
line: a million points cost one pass over them plus the cells, and a spike in the middle
of many points still shows.
"""

from __future__ import annotations

from collections.abc import Sequence

#: The bit of each dot in a braille cell, by [row][column] (Unicode's dot numbering).
_BRAILLE_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
_BRAILLE_BASE = 0x2800
MIN_PLOT_WIDTH = 10


def number(v: float) -> str:
    """A value as a short label: 4 significant digits, no trailing zeros."""
    return f"{v:.4g}"


def _scale(v: float, lo: float, hi: float, steps: int) -> int:
    """``v`` in [lo, hi] as 0 .. steps - 1 (the middle when the range is a single value).
    Halved first, which is exact, so that a range as wide as the floats does not overflow."""
    if hi <= lo:
        return (steps - 1) // 2
    return min(steps - 1, max(0, round((v / 2 - lo / 2) / (hi / 2 - lo / 2) * (steps - 1))))


def _line(dots: set[tuple[int, int]], c0: int, r0: int, c1: int, r1: int) -> None:
    """Bresenham's line between two dots, both ends included."""
    dc, dr = abs(c1 - c0), -abs(r1 - r0)
    sc, sr = (1 if c0 < c1 else -1), (1 if r0 < r1 else -1)
    err = dc + dr
    while True:
        dots.add((c0, r0))
        if c0 == c1 and r0 == r1:
            return
        e2 = 2 * err
        if e2 >= dr:
            err += dr
            c0 += sc
        if e2 <= dc:
            err += dc
            r0 += sr


def _dots(points: Sequence[tuple[float, float]], cols: int, rows: int,
          xr: tuple[float, float], yr: tuple[float, float]) -> set[tuple[int, int]]:
    """The dots (column, row from the top) the points light on a cols x rows grid."""
    spans: dict[int, list[int]] = {}        # dot column -> [lowest row, highest row, first row, last row]
    for x, y in sorted(points, key=lambda p: p[0]):
        c = _scale(x, *xr, cols)
        r = rows - 1 - _scale(y, *yr, rows)
        span = spans.get(c)
        if span is None:
            spans[c] = [r, r, r, r]
        else:
            span[0], span[1], span[3] = min(span[0], r), max(span[1], r), r
    dots: set[tuple[int, int]] = set()
    prev: tuple[int, int] | None = None
    for c in sorted(spans):
        top, bottom, first, last = spans[c]
        for r in range(top, bottom + 1):
            dots.add((c, r))
        if prev is not None:
            _line(dots, prev[0], prev[1], c, first)
        prev = (c, last)
    return dots


def chart(points: Sequence[tuple[float, float]], width: int, height: int = 8, *, x_name: str = "",
          ascii: bool = False) -> list[str]:
    """The chart of ``points`` in lines at most ``width`` characters wide (but never with
    fewer than ``MIN_PLOT_WIDTH`` cells to draw in), ``height`` rows of plot plus two of
    x axis.  ``points`` must not be empty."""
    xs = [float(x) for x, _y in points]
    ys = [float(y) for _x, y in points]
    xr, yr = (min(xs), max(xs)), (min(ys), max(ys))
    top, bottom = number(yr[1]), number(yr[0])
    label = max(len(top), len(bottom))
    plot = max(MIN_PLOT_WIDTH, width - label - 2)
    per_col, per_row = (1, 1) if ascii else (2, 4)
    dots = _dots(list(zip(xs, ys)), plot * per_col, height * per_row, xr, yr)
    cells: dict[tuple[int, int], int] = {}
    for c, r in dots:
        key = (r // per_row, c // per_col)
        cells[key] = cells.get(key, 0) | (0 if ascii else _BRAILLE_BITS[r % 4][c % 2])
    tick, axis, corner, rule = ("+", "|", "+", "-") if ascii else ("┤", "│", "└", "─")
    if yr[0] < yr[1]:
        labels = {0: top, height - 1: bottom}
    else:                                   # one value: its label on the row of its line
        labels = {(height * per_row - 1 - _scale(yr[0], *yr, height * per_row)) // per_row: top}
    out = []
    for row in range(height):
        text = "".join(
            (" " if (row, col) not in cells else "*" if ascii else chr(_BRAILLE_BASE + cells[(row, col)]))
            for col in range(plot))
        name = labels.get(row, "")
        out.append(f"{name.rjust(label)} {tick if name else axis}{text}".rstrip())
    out.append(" " * label + " " + corner + rule * plot)
    left, right = number(xr[0]), number(xr[1]) + (f" {x_name}" if x_name else "")
    gap = max(1, plot + 1 - len(left) - len(right))
    out.append(" " * (label + 1) + left + " " * gap + right)
    return out
