"""A job's metrics file (``$AILABBER_METRICS``) as series of numbers.

The job appends one JSON object per line, ``{"step": 10, "loss": 0.3}``; every other key
with a number is a point of the series of that name, at x = the line's ``step``, or at
its line number when it has none.  The file reaches the workstation by appending pulls
while the job still writes it, and nothing makes the job write what it should, so each
line is taken for what it holds and nothing in it stops the rest: a last line without its
newline yet (the job or the pull is in the middle of it), a line that is not a JSON
object, a value that is not a number or is NaN or infinite are skipped, and counted, so
that the reader sees how much was left out and why.

Pure: the caller reads the bytes once and hands them in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

#: The key whose number is the x of every other value on its line.
X_KEY = "step"

#: Why something was left out -> how the count is said.  The keys are the ``--json`` ones.
SKIP_REASONS: dict[str, tuple[str, str]] = {
    "partial_line": ("partial last line (still being written)", "partial last lines"),
    "not_json": ("line that is not JSON", "lines that are not JSON"),
    "not_object": ("line that is not a JSON object", "lines that are not JSON objects"),
    "bad_step": ("line whose step is not a finite number", "lines whose step is not a finite number"),
    "non_numeric": ("value that is not a number", "values that are not numbers"),
    "non_finite": ("NaN or infinite value", "NaN or infinite values"),
}

Number = int | float


@dataclass
class Series:
    name: str
    points: list[tuple[Number, Number]] = field(default_factory=list)    # (x, y) in file order
    by_step: int = 0            # how many points have a step for x (the rest: line numbers)

    @property
    def last(self) -> tuple[Number, Number]:
        return self.points[-1]

    def x_name(self) -> str:
        """What x is: ``step``, ``line`` (numbers), or ``x`` when some lines had a step and some not."""
        if self.by_step == len(self.points):
            return X_KEY
        return "line" if self.by_step == 0 else "x"

    def to_dict(self) -> dict[str, Any]:
        ys = [y for _x, y in self.points]
        x, y = self.last
        return {"last": y, "last_x": x, "x": self.x_name(), "count": len(ys), "min": min(ys), "max": max(ys),
                "points": [[px, py] for px, py in self.points]}


@dataclass
class Metrics:
    series: dict[str, Series] = field(default_factory=dict)     # in the order names first appear
    lines: int = 0                                              # complete lines read (blank ones too)
    skipped: dict[str, int] = field(default_factory=dict)       # SKIP_REASONS key -> count

    def skip(self, why: str, n: int = 1) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + n

    def only(self, names: Iterable[str]) -> Metrics:
        """The same figures with only the named series (those that exist)."""
        wanted = set(names)
        return Metrics({k: s for k, s in self.series.items() if k in wanted}, self.lines, dict(self.skipped))

    def skipped_text(self) -> str:
        """``""`` if nothing was left out, else e.g. ``skipped: 1 partial last line ..., 2 ...``."""
        parts = []
        for why, (one, many) in SKIP_REASONS.items():
            n = self.skipped.get(why, 0)
            if n:
                parts.append(f"{n} {one if n == 1 else many}")
        return "skipped: " + ", ".join(parts) if parts else ""

    def to_dict(self) -> dict[str, Any]:
        return {"lines": self.lines, "skipped": {k: self.skipped.get(k, 0) for k in SKIP_REASONS},
                "series": {name: s.to_dict() for name, s in self.series.items()}}


def _number(value: Any) -> Number | None:
    """A finite int or float, else None (bool is not a number here: ``true`` is no loss)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return value if math.isfinite(value) else None
    except OverflowError:               # an int too big for a float
        return None


def parse(data: bytes) -> Metrics:
    """Every series in a metrics file's bytes; what cannot be read is counted in ``skipped``."""
    m = Metrics()
    lines = data.split(b"\n")
    if lines[-1].strip():
        m.skip("partial_line")
    for number, raw in enumerate(lines[:-1], start=1):
        m.lines += 1
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError):     # ValueError: bad JSON, bad UTF-8
            m.skip("not_json")
            continue
        if not isinstance(obj, dict):
            m.skip("not_object")
            continue
        x: Number = number
        has_step = X_KEY in obj
        if has_step:
            step = _number(obj[X_KEY])
            if step is None:
                m.skip("bad_step")
                continue
            x = step
        for name, value in obj.items():
            if name == X_KEY:
                continue
            y = _number(value)
            if y is None:
                is_float = isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool))
                m.skip("non_finite" if is_float else "non_numeric")
                continue
            s = m.series.get(name)
            if s is None:
                s = m.series[name] = Series(name)
            s.points.append((x, y))
            s.by_step += has_step
    return m
