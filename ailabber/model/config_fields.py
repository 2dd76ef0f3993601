"""How one value of a student's task_config.toml is checked and reported.

The table-level parse (``config``) decides which fields exist; this module holds what every
field shares: quoting a student's string so a message stays one line, collecting every
problem rather than the first, and the value checks themselves (bounded integers, sizes as
Slurm writes them, durations, arrays, relative paths that cannot climb out).  Pure: it reads
no file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

MAX_STRING = 4096
MAX_LIST = 1000
MAX_MEMORY_MB = 64 * 1024 * 1024          # 64T
MAX_TIME_S = 365 * 86400

# --------------------------------------------------------------------------- messages


def quote(value: str, limit: int = 60) -> str:
    """Quote a student's string for a message: shortened and escaped so it stays one line."""
    shown = value if len(value) <= limit else value[:limit] + "..."
    if shown.isprintable() and "'" not in shown and "\\" not in shown:
        return f"'{shown}'"
    return json.dumps(shown)  # ASCII-escapes newlines, line separators and other controls


def describe(value: Any) -> str:
    """What a TOML value is, for "got ..." in a message."""
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"float {value}"
    if isinstance(value, str):
        return f"string {quote(value)}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


def field_key(key: str) -> str:
    """A key as a field name: plain when it is a plain word, else quoted."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]{1,60}", key) else quote(key)


class Problems:
    """Collects every problem so a single run shows the student all there is to fix."""

    def __init__(self, source: Path, as_typed: bool = False) -> None:
        """``as_typed``: name the whole path the user gave, not just its last component,
        where the problem is the path itself (a directory, a missing file)."""
        name = str(source) if as_typed else source.name or str(source)
        self.name = name if name.isprintable() else quote(name)
        self.lines: list[str] = []

    def add(self, field_name: str, message: str) -> None:
        self.lines.append(f"{self.name}: {field_name}: {message}")


# --------------------------------------------------------------------------- scalars


def integer_field(p: Problems, tbl: dict[str, Any], section: str, key: str,
                  lo: int, hi: int, default: int) -> int:
    if key not in tbl:
        return default
    value, name = tbl[key], f"{section}.{key}"
    if type(value) is not int:  # bool is an int subclass, and 1.5 GPUs means nothing
        p.add(name, f"must be an integer between {lo} and {hi}, got {describe(value)}")
        return default
    if value < lo:
        p.add(name, f"must be an integer >= {lo}, got {value}")
    elif value > hi:
        p.add(name, f"must be an integer <= {hi}, got {value}")
    return value


_MEMORY_RE = re.compile(r"([0-9]{1,15})([KkMmGgTt]?)")
_KIB = {"K": 1, "M": 1024, "G": 1024**2, "T": 1024**3}


def memory_field(p: Problems, tbl: dict[str, Any], default: int) -> int:
    """``resources.memory`` in MiB (what every scheduler takes); ``default`` when absent or bad."""
    if "memory" not in tbl:
        return default
    value, name = tbl["memory"], "resources.memory"
    if type(value) is int:  # a bare number means MiB, as in Slurm's --mem
        number, unit, shown = value, "M", str(value)
    elif isinstance(value, str):
        match = _MEMORY_RE.fullmatch(value)
        if match is None:
            p.add(name, 'must be a size like "512M", "32G" or "1T" (unit K, M, G or T; '
                        f"a bare number means MiB), got {quote(value)}")
            return default
        number, unit, shown = int(match[1]), (match[2] or "M").upper(), quote(value)
    else:
        p.add(name, f'must be a size string like "32G", got {describe(value)}')
        return default
    kib = number * _KIB[unit]
    if kib <= 0:
        p.add(name, f"must be greater than 0, got {shown}")
    elif kib > MAX_MEMORY_MB * 1024:
        p.add(name, f"must be at most 64T, got {shown}")
    else:
        return -(-kib // 1024)
    return default


_TIME_RE = re.compile(r"(?:([0-9]{1,9})-)?([0-9]{1,9})(?::([0-9]{1,9}))?(?::([0-9]{1,9}))?")
_TIME_FORMS = ('must be a time like "30", "4:00:00" or "2-12:00:00" '
               "(MM, MM:SS, H:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)")


def slurm_seconds(text: str) -> int | str:
    """Seconds for a Slurm ``--time`` value, or the reason it is not one.

    Only the leading field is unbounded ("90" or "90:00" minutes, "36:00:00" hours), as in
    Slurm; later fields must stay below their wrap-around so a typo is not silently rescaled.
    """
    match = _TIME_RE.fullmatch(text)
    if match is None:
        return _TIME_FORMS
    days, *rest = match.groups()
    nums = [int(x) for x in rest if x is not None]
    if days is not None:
        hours, minutes, seconds = (nums + [0, 0])[:3]
        if hours >= 24:
            return "hours must be below 24 after a day part"
        lead = int(days) * 86400 + hours * 3600
    elif len(nums) == 3:
        lead, minutes, seconds = nums[0] * 3600, nums[1], nums[2]
    else:
        lead, minutes, seconds = nums[0] * 60, 0, (nums + [0])[1]
    if minutes >= 60:
        return "minutes must be below 60 when not the first field"
    if seconds >= 60:
        return "seconds must be below 60"
    return lead + minutes * 60 + seconds


def time_limit_field(p: Problems, tbl: dict[str, Any], default: int) -> int:
    """``resources.time_limit`` in seconds, the one form every later step uses (Slurm's text
    is made from it where ``sbatch`` needs it); ``default`` when absent or bad."""
    if "time_limit" not in tbl:
        return default
    value, name = tbl["time_limit"], "resources.time_limit"
    if type(value) is int:  # whole minutes, as Slurm reads a bare number
        seconds, shown = value * 60, str(value)
    elif isinstance(value, str):
        shown = quote(value)
        got = slurm_seconds(value)
        if isinstance(got, str):
            p.add(name, f"{got}, got {shown}")
            return default
        seconds = got
    else:
        p.add(name, f'{_TIME_FORMS}, got {describe(value)}')
        return default
    if seconds <= 0:
        p.add(name, f"must be greater than 0, got {shown}")
    elif seconds > MAX_TIME_S:
        p.add(name, f"must be at most 365 days, got {shown}")
    else:
        return seconds
    return default


# --------------------------------------------------------------------------- lists, paths


def array(p: Problems, name: str, value: Any, limit: int = MAX_LIST) -> list[Any]:
    if not isinstance(value, list):
        hint = f' (write {name.split(".")[-1]} = ["..."])' if isinstance(value, str) else ""
        p.add(name, f"must be an array, got {describe(value)}{hint}")
        return []
    if len(value) > limit:
        p.add(name, f"has {len(value)} entries; at most {limit} are allowed")
        return []
    return value


def rel_path(p: Problems, name: str, value: Any) -> str | None:
    """Syntax only: a relative path that cannot climb out.  Returns the normalised form."""
    if not isinstance(value, str):
        p.add(name, f"must be a relative path (a string), got {describe(value)}")
        return None
    problem = None
    if not value:
        problem = "must not be empty"
    elif len(value) > MAX_STRING:
        problem = f"is longer than {MAX_STRING} characters"
    elif "\0" in value:
        problem = "must not contain NUL characters"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        problem = f"must not contain control characters, got {quote(value)}"
    elif value.startswith("/"):
        problem = f"must be a relative path, got absolute path {quote(value)}"
    parts = [part for part in value.split("/") if part not in ("", ".")]
    if problem is None and ".." in parts:
        problem = f"must not contain '..', got {quote(value)}"
    if problem is not None:
        p.add(name, problem)
        return None
    return "/".join(parts) or "."

