"""Ages and sizes as people write them in settings and on the command line (``30d``,
``5GiB``), parsed into seconds and bytes (pure)."""

from __future__ import annotations

import re
from typing import Any

DAY = 86400.0
_AGE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY, "w": 7 * DAY}
SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
AGE_WORDS = "an age such as 30d, 12h, 90m or 2w (s, m, h, d, w), or 0"
SIZE_WORDS = "a size such as 5GiB or 500M (binary units), or a whole number of bytes"


def parse_age(text: str) -> float:
    """``30d`` -> seconds; ``ValueError`` naming the accepted forms."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if m is None or (not m.group(2) and float(m.group(1)) != 0):
        raise ValueError(f"must be {AGE_WORDS}, got {text!r}")
    return float(m.group(1)) * _AGE_UNITS.get(m.group(2), 1.0)


def parse_size(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", value, re.IGNORECASE) \
        if isinstance(value, str) else None
    if m is None:
        raise ValueError(f"must be {SIZE_WORDS}, got {value!r}")
    return int(float(m.group(1)) * SIZE_UNITS[m.group(2).upper()])


