"""The glob patterns of ``run.logs`` and ``run.results``: their syntax and their matching.

An entry is a path relative to the workdir in which a component may hold ``*`` (any
characters but ``/``), ``?`` (one character but ``/``) and ``[...]`` (one of a set, ``[!...]``
or ``[^...]`` none of it, ``a-z`` a range), and a whole component may be ``**`` (any number
of directories, including none), as in gitignore and pathlib; ``\\`` takes the next character
literally.  ``*`` also matches names that start with a dot.  An entry without any of these
is a plain path and matches only itself.

Pure: the syntax is checked at ``submit`` and again in remoted from the same text, and the
matching is a state machine the caller feeds one directory entry at a time, so that
whoever walks a tree (remoted, through handles that follow no symlink) decides what is
read and the rules stay testable without a disk.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple, Union

from ailabber.model.config_fields import quote

if TYPE_CHECKING:       # annotations only: building the Union at import costs every command
    #: A component: a name taken literally, ``ANY_DEPTH``, or a compiled name pattern.
    Part = Union[str, re.Pattern[str]]
    #: Where matching stands inside a directory: (pattern index, component index).
    State = tuple[int, int]

#: A whole ``**`` component.
ANY_DEPTH = "**"
#: ``**`` components one pattern may hold (each doubles what rsync is given for it while
#: a task still runs: see ``variants``).
MAX_ANY_DEPTH = 4
_MAGIC = frozenset("*?[\\")



class Glob(NamedTuple):
    text: str                   # as written (normalised: no "." or empty components)
    comps: tuple[str, ...]      # its components as written (a run of "**" as one)
    parts: tuple[Part, ...]     # each compiled; () for "." (the workdir itself)

    @property
    def is_plain(self) -> bool:
        """No magic at all: the entry names one path."""
        return all(isinstance(p, str) and p != ANY_DEPTH for p in self.parts)


def has_magic(pattern: str) -> bool:
    return any(ch in _MAGIC for ch in pattern)


def fixed_prefix(pattern: str) -> str:
    """The leading components of ``pattern`` without magic (``.``: none): where every
    match of it lies."""
    fixed: list[str] = []
    for comp in pattern.split("/"):
        if has_magic(comp):
            break
        fixed.append(comp)
    return "/".join(fixed) or "."


def glob_problem(pattern: str) -> str | None:
    """What is wrong with the syntax of a normalised entry, in words, or None."""
    try:
        compile_glob(pattern)
    except ValueError as exc:
        return str(exc)
    return None


def compile_glob(pattern: str) -> Glob:
    """The ``Glob`` of a normalised entry; ``ValueError`` says what is wrong with it."""
    if pattern == ".":
        return Glob(pattern, (), ())
    comps: list[str] = []
    parts: list[Part] = []
    for comp in pattern.split("/"):
        if comp == ANY_DEPTH and comps and comps[-1] == ANY_DEPTH:
            continue                                    # "**/**" is one "**"
        comps.append(comp)
        parts.append(ANY_DEPTH if comp == ANY_DEPTH else _component(comp))
    if comps.count(ANY_DEPTH) > MAX_ANY_DEPTH:
        raise ValueError(f"may hold at most {MAX_ANY_DEPTH} '**' components")
    return Glob(pattern, tuple(comps), tuple(parts))


def _component(comp: str) -> Part:
    """A literal name, or the compiled pattern of one component."""
    out: list[str] = []
    literal: list[str] = []
    magic = False
    i = 0
    while i < len(comp):
        ch = comp[i]
        if ch == "\\":
            if i + 1 == len(comp):
                raise ValueError("ends with a lone '\\' (write '\\\\' for a backslash)")
            literal.append(comp[i + 1])
            out.append(re.escape(comp[i + 1]))
            i += 2
            continue
        if ch == "*":
            if comp[i + 1:i + 2] == "*":
                raise ValueError(f"'**' must be a whole path component (like 'a/**/b.txt'), got {quote(comp)}")
            magic = True
            out.append("[^/]*")
        elif ch == "?":
            magic = True
            out.append("[^/]")
        elif ch == "[":
            magic = True
            cls, i = _char_class(comp, i)
            out.append(cls)
            continue
        else:
            literal.append(ch)
            out.append(re.escape(ch))
        i += 1
    if not magic:
        return "".join(literal)
    return re.compile("".join(out), re.DOTALL)


def _char_class(comp: str, start: int) -> tuple[str, int]:
    """The regular expression of the ``[...]`` at ``start`` and the index after it."""
    i = start + 1
    negate = i < len(comp) and comp[i] in "!^"
    i += negate
    items: list[str] = []
    first = True
    while True:
        if i >= len(comp):
            raise ValueError(f"the '[' in {quote(comp)} is not closed by ']'")
        ch = comp[i]
        if ch == "]" and not first:
            break
        if ch == "[" and comp[i + 1:i + 2] in (":", "=", "."):
            raise ValueError("classes such as [:digit:] are not supported; write the characters, like [0-9]")
        if ch == "\\":
            if i + 1 == len(comp):
                raise ValueError("ends with a lone '\\' (write '\\\\' for a backslash)")
            ch = comp[i + 1]
            i += 1
        i += 1
        first = False
        if comp[i:i + 1] == "-" and i + 1 < len(comp) and comp[i + 1] != "]":
            hi = comp[i + 1]
            if hi == "\\" and i + 2 < len(comp):
                hi, i = comp[i + 2], i + 1
            if hi < ch:
                raise ValueError(f"the range {quote(ch + '-' + hi)} in {quote(comp)} is out of order")
            items.append(f"{re.escape(ch)}-{re.escape(hi)}")
            i += 2
            continue
        items.append(re.escape(ch))
    body = "".join(items)
    return (f"[^{body}]" if negate else f"[{body}]"), i + 1


def _name_matches(part: Part, name: str) -> bool:
    return part == name if isinstance(part, str) else part.fullmatch(name) is not None


class GlobSet:
    """Matching several patterns over one tree, one directory entry at a time.

    ``start()`` is where matching stands in the workdir; ``step(states, name, is_dir)``
    says which patterns the entry ``name`` of a directory at ``states`` matches, and where
    matching stands inside it (empty: nothing below it can match, so it need not be
    opened).  A pattern that matched a directory is not followed into it: the directory
    is brought back whole."""

    def __init__(self, globs: Sequence[Glob]):
        self.globs = tuple(globs)

    def start(self) -> frozenset[State]:
        return self._closure((g, 0) for g, glob in enumerate(self.globs) if glob.parts)

    def whole(self) -> list[int]:
        """The patterns that name the workdir itself (``.``)."""
        return [g for g, glob in enumerate(self.globs) if not glob.parts]

    def _closure(self, states: Iterable[State]) -> frozenset[State]:
        """``**`` may stand for no directory at all: also stand past it."""
        out: set[State] = set()
        for g, i in states:
            parts = self.globs[g].parts
            out.add((g, i))
            while parts[i] == ANY_DEPTH and i + 1 < len(parts):
                i += 1
                out.add((g, i))
        return frozenset(out)

    def literal_names(self, states: frozenset[State]) -> list[str] | None:
        """The only names that can match here, when every pattern names its next component
        literally (no need to list the directory), else None."""
        names: set[str] = set()
        for g, i in states:
            part = self.globs[g].parts[i]
            if not isinstance(part, str) or part == ANY_DEPTH:
                return None
            names.add(part)
        return sorted(names)

    def step(self, states: frozenset[State], name: str, is_dir: bool) -> tuple[list[int], frozenset[State]]:
        matched: set[int] = set()
        inside: list[State] = []
        for g, i in states:
            parts = self.globs[g].parts
            part, last = parts[i], i == len(parts) - 1
            if part == ANY_DEPTH:
                if last:
                    matched.add(g)
                elif is_dir:
                    inside.append((g, i))
            elif _name_matches(part, name):
                if last:
                    matched.add(g)
                elif is_dir:
                    inside.append((g, i + 1))
        below = self._closure(s for s in inside if s[0] not in matched)
        return sorted(matched), below


def path_matches(glob: Glob, path: str) -> bool:
    """Whether the relative ``path`` is one that ``glob`` matches (every component but the
    last taken as a directory)."""
    if not glob.parts:
        return path == "."
    one = GlobSet([glob])
    states = one.start()
    names = path.split("/")
    for k, name in enumerate(names):
        matched, states = one.step(states, name, k < len(names) - 1)
        if matched:
            return k == len(names) - 1
        if not states:
            return False
    return False


def variants(glob: Glob) -> list[tuple[int, ...]]:
    """The component indexes ``glob`` stands for with each inner ``**`` either dropped (no
    directory) or kept (one or more): rsync's ``**`` always spans at least one."""
    out: list[tuple[int, ...]] = [()]
    for k, part in enumerate(glob.parts):
        if part == ANY_DEPTH and k < len(glob.parts) - 1:
            out = [v + extra for v in out for extra in ((), (k,))]
        else:
            out = [v + (k,) for v in out]
    return out
