"""gitignore-syntax matching for what a submit leaves behind.

Students already know gitignore, so ``files.ignore`` and ``.ailabberignore`` speak exactly
that dialect instead of a new one.  A handful of built-in rules are always on and cannot be
re-included: uploading a ``.git`` history, a local ``.venv`` built for another machine or
the results of earlier tasks only makes every upload slower and is never what anyone meant.

Precedence follows git: later patterns win, so ``.ailabberignore`` (read after
``files.ignore``) can override the config, and a ``!pattern`` cannot bring back a path whose
parent directory is excluded, because git never looks inside an excluded directory either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

IGNORE_FILE = ".ailabberignore"

#: Always excluded, whatever the student writes.
BUILTIN_PATTERNS: tuple[str, ...] = (
    ".git/",
    ".venv/",
    "__pycache__/",
    "*.pyc",
    "ailabber-results/",
    ".ailabber/",
)


class _Rule(NamedTuple):
    regex: re.Pattern[str]
    negated: bool
    dir_only: bool
    anchored: bool  # match the whole relative path, not just the last component


def _trim_trailing_spaces(line: str) -> str:
    """Drop trailing spaces unless the last one is escaped with a backslash (as git does)."""
    end = len(line)
    while end > 0 and line[end - 1] == " ":
        backslashes = 0
        k = end - 2
        while k >= 0 and line[k] == "\\":
            backslashes += 1
            k -= 1
        if backslashes % 2 == 1:
            break
        end -= 1
    return line[:end]


def _bracket(body: str, i: int) -> tuple[str, int] | None:
    """Translate ``[...]`` starting at ``body[i]``; None when it is not closed (literal ``[``)."""
    j = i + 1
    negate = j < len(body) and body[j] in "!^"
    if negate:
        j += 1
    items: list[str] = []
    first = True
    while j < len(body):
        c = body[j]
        if c == "]" and not first:
            cls = "".join(items)
            if negate:
                return f"[^/{cls}]", j + 1
            return f"(?!/)[{cls}]", j + 1
        if c == "\\" and j + 1 < len(body):
            items.append(re.escape(body[j + 1]))
            j += 2
        else:
            items.append("-" if c == "-" else re.escape(c))
            j += 1
        first = False
    return None


def _translate(body: str) -> str:
    """gitignore glob -> regex source for ``fullmatch``; ``/`` is never matched by ``*``/``?``."""
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c == "*":
            j = i
            while j < n and body[j] == "*":
                j += 1
            whole_segment = (i == 0 or body[i - 1] == "/") and (j == n or body[j] == "/")
            if j - i >= 2 and whole_segment:
                if j == n:          # "**" alone or trailing "/**": everything below
                    out.append(".*")
                    i = j
                else:               # leading "**/" or middle "/**/": zero or more dirs
                    out.append("(?:.*/)?")
                    i = j + 1
                continue
            out.append("[^/]*")
            i = j
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            got = _bracket(body, i)
            if got is None:
                out.append(re.escape(c))
                i += 1
            else:
                out.append(got[0])
                i = got[1]
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(body[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _compile_line(line: str) -> _Rule | None:
    line = line.rstrip("\r")
    if not line or line.startswith("#"):
        return None
    line = _trim_trailing_spaces(line)
    negated = line.startswith("!")
    if negated:
        line = line[1:]
    dir_only = False
    while line.endswith("/") and not line.endswith("\\/"):
        dir_only = True
        line = line[:-1]
    if line.startswith("./"):
        line = "/" + line[2:]
    anchored = "/" in line
    line = line.lstrip("/")
    if not line:
        return None
    try:
        regex = re.compile(_translate(line), re.DOTALL)
    except re.error:
        # e.g. a reversed range "[z-a]": git simply never matches such a pattern
        return None
    return _Rule(regex, negated, dir_only, anchored)


def _compile_all(patterns: Iterable[str]) -> list[_Rule]:
    rules: list[_Rule] = []
    for pattern in patterns:
        for line in pattern.split("\n"):
            rule = _compile_line(line)
            if rule is not None:
                rules.append(rule)
    return rules


_BUILTIN_RULES = _compile_all(BUILTIN_PATTERNS)


def _matches(rule: _Rule, rel: str, base: str, is_dir: bool) -> bool:
    if rule.dir_only and not is_dir:
        return False
    return rule.regex.fullmatch(rel if rule.anchored else base) is not None


class IgnoreRules:
    """Decides whether a path (relative to the upload root, POSIX form) is left out."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self._rules = _compile_all(patterns)
        self._dir_cache: dict[str, bool] = {}

    @classmethod
    def from_upload_root(cls, root: Path, patterns: Sequence[str]) -> IgnoreRules:
        """Config patterns first, then ``<root>/.ailabberignore`` so the file has the last word.

        Raises ``OSError`` or ``UnicodeDecodeError`` when the ignore file exists but cannot
        be read: silently uploading what the student meant to exclude would be worse.
        """
        lines = list(patterns)
        path = Path(root) / IGNORE_FILE
        if path.is_file():
            lines.extend(path.read_bytes().decode("utf-8").splitlines())
        return cls(lines)

    def is_builtin(self, rel_posix_path: str, is_dir: bool) -> bool:
        """True when a built-in rule (not the student's own) excludes the path or a parent."""
        parts = _split(rel_posix_path)
        for k in range(1, len(parts) + 1):
            sub = "/".join(parts[:k])
            sub_is_dir = is_dir if k == len(parts) else True
            if any(_matches(r, sub, parts[k - 1], sub_is_dir) for r in _BUILTIN_RULES):
                return True
        return False

    def is_ignored(self, rel_posix_path: str, is_dir: bool) -> bool:
        parts = _split(rel_posix_path)
        if not parts:
            return False
        for k in range(1, len(parts)):
            if self._dir_ignored("/".join(parts[:k])):
                return True
        return self.ignores_entry("/".join(parts), is_dir)

    def ignores_entry(self, rel: str, is_dir: bool) -> bool:
        """Match ``rel`` itself only, trusting that no parent is ignored.

        A tree walk that never descends into ignored directories already knows that, and
        skipping the parent checks keeps planning a large upload cheap.
        """
        base = rel.rpartition("/")[2]
        for rule in _BUILTIN_RULES:
            if _matches(rule, rel, base, is_dir):
                return True
        for rule in reversed(self._rules):
            if _matches(rule, rel, base, is_dir):
                return not rule.negated
        return False

    def _dir_ignored(self, rel: str) -> bool:
        hit = self._dir_cache.get(rel)
        if hit is None:
            hit = self.ignores_entry(rel, True)
            self._dir_cache[rel] = hit
        return hit


def _split(rel: str) -> list[str]:
    return [p for p in rel.split("/") if p not in ("", ".")]
