"""One source of gitignore rules, compiled: its lines as ``Rule`` values (the pattern as a
regex, negation, directory-only, anchoring, and the file and line it came from), and a
``RuleSet`` saying which paths they judge.  Shared by ``ignore.py`` (which decides) and
``gitignore.py`` (which finds the project's files)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from ailabber.workstation.wildmatch import compile_glob

BUILTIN = "built-in"          # the source of the rules ailabber always applies
CONFIG = "files.ignore"       # the source of task_config.toml's own rules


class Rule(NamedTuple):
    regex: re.Pattern[str] | None   # None: a line git accepts that can match nothing
    negated: bool
    dir_only: bool
    anchored: bool      # match the path relative to the rule's directory, not just the last component
    text: str           # the line as written (trailing spaces removed)
    source: str         # BUILTIN, CONFIG, or the file, relative to the upload directory
    line: int           # line number in that file; the index in files.ignore

    def where(self) -> str:
        """Where a student finds this rule: ``.gitignore:3``, ``files.ignore[0]``, ``built-in``."""
        if self.source == BUILTIN:
            return BUILTIN
        if self.source == CONFIG:
            return f"{CONFIG}[{self.line}]"
        return f"{self.source}:{self.line}"


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


def compile_line(line: str, source: str, number: int, dot_slash: bool = False) -> Rule | None:
    """One line of a gitignore file as a ``Rule``; None for blanks and comments."""
    line = _trim_trailing_spaces(line.rstrip("\r"))
    if not line or line.startswith("#"):
        return None
    text = line
    negated = line.startswith("!")
    if negated:
        line = line[1:]
    dir_only = line.endswith("/") and not line.endswith("\\/")
    if dir_only:
        line = line[:-1]          # only one: git never matches "data//"
    if dot_slash and line.startswith("./"):
        line = line[1:]
    anchored = "/" in line
    if line.startswith("/"):
        line = line[1:]
    if not line:
        return None
    return Rule(compile_glob(line), negated, dir_only, anchored, text, source, number)


def compile_lines(lines: Iterable[str], source: str, first: int = 1, dot_slash: bool = False) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    for number, line in enumerate(lines, first):
        for part in line.split("\n"):
            rule = compile_line(part, source, number, dot_slash)
            if rule is not None:
                rules.append(rule)
    return tuple(rules)


class RuleSet(NamedTuple):
    """The rules of one source and the paths they judge (git reads a ``.gitignore``
    relative to its own directory)."""

    rules: tuple[Rule, ...]
    scope: str = ""     # the directory below the upload root whose contents it judges ("": all)
    lead: str = ""      # a .gitignore above the upload root: the root as seen from the file's directory
