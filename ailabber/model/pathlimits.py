"""How deep and how long a path inside an upload may be.

rsync gives up on paths beyond its own limits (about 1,000 levels, or 4,096 bytes with the
cluster's prefix), and then fails the same way on every retry.  ``submit`` refuses such a
tree up front, naming the worst path; spoold checks again before sending, for tasks an
older client let through.

- ``MAX_PATH_DEPTH``: 64 components (63 directories above a file).  Far beyond any real
  project, far below where rsync breaks.
- ``MAX_PATH_BYTES``: 2,048 bytes, half of Linux's ``PATH_MAX``: the other half is left for
  the cluster's root, the task's directory and rsync's partial-transfer directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MAX_PATH_DEPTH = 64
MAX_PATH_BYTES = 2048
_SHOWN_PARTS = 2          # components shown at each end of a shortened path
_SHOWN_CHARS = 24         # characters shown of a long component


def depth(rel: str) -> int:
    return rel.count("/") + 1


def length(rel: str) -> int:
    return len(os.fsencode(rel))


def over(rel: str) -> bool:
    """Whether ``rel`` (relative to the upload root, ``/``-separated) breaks a limit."""
    return depth(rel) > MAX_PATH_DEPTH or length(rel) > MAX_PATH_BYTES


def shorten(rel: str) -> str:
    """``rel`` quoted for a one-line message, at most a few components and characters:
    ``'a/a/…(1947 more)…/a/f'``."""
    parts = [p if len(p) <= _SHOWN_CHARS else p[:_SHOWN_CHARS - 1] + "…" for p in rel.split("/")]
    hidden = len(parts) - 2 * _SHOWN_PARTS
    if hidden > 1:
        parts = [*parts[:_SHOWN_PARTS], f"…({hidden} more)…", *parts[-_SHOWN_PARTS:]]
    text = "/".join(parts)
    if text.isprintable() and "'" not in text and "\\" not in text:
        return f"'{text}'"
    return json.dumps(text)


class Extremes:
    """The deepest and the longest path seen, to name them if they break the limits."""

    def __init__(self) -> None:
        self.deepest = ""
        self.longest = ""       # among the paths within the depth limit

    def note(self, rel: str) -> None:
        if depth(rel) > depth(self.deepest):
            self.deepest = rel
        if depth(rel) <= MAX_PATH_DEPTH and length(rel) > length(self.longest):
            self.longest = rel

    def problems(self) -> list[str]:
        """One line per broken limit, naming the worst path; empty when all is well."""
        out = []
        if self.deepest and depth(self.deepest) > MAX_PATH_DEPTH:
            out.append(f"{shorten(self.deepest)} is {depth(self.deepest)} levels deep; the limit is "
                       f"{MAX_PATH_DEPTH}; move it up or add it to files.ignore")
        if self.longest and length(self.longest) > MAX_PATH_BYTES:
            out.append(f"{shorten(self.longest)} is {length(self.longest)} bytes long; the limit is "
                       f"{MAX_PATH_BYTES}; shorten its names or add it to files.ignore")
        return out


def tree_problems(root: Path) -> list[str]:
    """Walk a copied upload (``files/`` of a spooled task) until the first path over a
    limit: what ``submit`` would have refused.  Unreadable parts are left to rsync, which
    reports them itself."""
    extremes = Extremes()
    stack = [(str(root), "")]
    while stack:
        path, prefix = stack.pop()
        try:
            with os.scandir(path) as it:
                entries = list(it)
        except OSError:
            continue
        for entry in entries:
            rel = prefix + entry.name
            extremes.note(rel)
            if over(rel):
                return extremes.problems()
            if entry.is_dir(follow_symlinks=False):
                stack.append((entry.path, rel + "/"))
    return []
