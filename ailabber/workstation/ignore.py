"""What a submit leaves behind: gitignore rules from every source, in git's precedence.

Students already know gitignore, so the project's own ``.gitignore`` files are the base
(read as git reads them, ``workstation/gitignore.py``), and ``files.ignore`` and
``.ailabberignore`` speak the same dialect on top of them.  Precedence, highest first:

1. the built-in rules (cannot be re-included: uploading a ``.git`` history, a local
   ``.venv`` built for another machine or the results of earlier tasks only makes every
   upload slower and is never what anyone meant);
2. ``.ailabberignore``, then ``files.ignore`` (so ``!data/`` there brings back a directory
   the project's ``.gitignore`` leaves out);
3. the ``.gitignore`` files, the deepest first, then ``.git/info/exclude``.

Within one source the last matching line wins; the first source with a matching line
decides.  A ``!pattern`` cannot bring back a path whose parent directory is excluded,
because git never looks inside an excluded directory either.  ``files.ignore`` and
``.ailabberignore`` also take a leading ``./`` as "anchored here" (git's files never match
such a line), since that is how every other path in task_config.toml is written.

The matcher is our own (``wildmatch.py``) rather than the ``pathspec`` library: its
``GitIgnoreSpec`` (1.1.1) disagrees with ``git check-ignore`` on cases the tests pin down:
``abc/**`` matches the directory ``abc`` itself and so hides ``!abc/keep``; ``*``,
``!*/``, ``!*.py`` leaves ``src/a.py`` out; ``[z-a]`` or a lone ``!`` raise instead of
matching nothing; ``[[:digit:]]`` is unsupported; and it matches a pattern against every
parent directory, where git decides entry by entry while the walk stops at excluded
directories.  It would also cost every ``submit`` its import.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ailabber.workstation.ignore_rules import BUILTIN, CONFIG, Rule, RuleSet, compile_lines

if TYPE_CHECKING:
    from ailabber.workstation.gitignore import GitIgnores

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


#: Rules in the order they are tried: (regex, dir_only, anchored, lead, cut, rule), where
#: an anchored rule matches ``lead + rel[cut:]``, the path seen from its file's directory.
_Try = tuple[re.Pattern[str], bool, bool, str, int, Rule]
_Flat = tuple[_Try, ...]


def _flatten(sets: Iterable[RuleSet]) -> _Flat:
    """Rule sets, lowest precedence first, as one sequence to try in order.

    "The first source with a matching line decides, within it the last line" is the same
    as "the last matching line of all the sources in a row": so the rules are simply
    reversed, and the first one that matches decides.  Lines that can match nothing are
    dropped here, once.
    """
    out: list[_Try] = []
    for rules in sets:
        cut = len(rules.scope) + 1 if rules.scope else 0
        out.extend((r.regex, r.dir_only, r.anchored, rules.lead, cut, r) for r in rules.rules if r.regex is not None)
    out.reverse()
    return tuple(out)


class Exclusion(NamedTuple):
    rule: Rule
    path: str       # the path the rule matched: the one asked about, or an excluded parent
    is_dir: bool


def pattern_for(rel: str, is_dir: bool) -> str:
    """The files.ignore line that names exactly ``rel``: anchored, special characters
    escaped, a trailing ``/`` for a directory."""
    body = re.sub(r"([*?\\[\\\\])", r"\\\1", rel)
    if body.endswith(" "):
        body = body[:-1] + "\\ "
    return "/" + body + ("/" if is_dir else "")


_BUILTIN = RuleSet(compile_lines(BUILTIN_PATTERNS, BUILTIN))


class IgnoreRules:
    """Decides whether a path (relative to the upload root, POSIX form) is left out, and
    by which rule."""

    def __init__(self, patterns: Iterable[str] = (), *, own: Sequence[RuleSet] = (),
                 git: GitIgnores | None = None) -> None:
        """``patterns``: files.ignore; ``own``: sets above it (.ailabberignore);
        ``git``: the project's git ignore files below it."""
        self._own = (RuleSet(compile_lines(patterns, CONFIG, first=0, dot_slash=True)), *own)
        self._git = git
        self._dir_cache: dict[str, Rule | None] = {}
        self._flat: dict[str, _Flat] = {}           # per directory: the rules for its entries
        self._by_chain: dict[int, _Flat] = {}       # shared by the directories with the same git files

    @classmethod
    def from_upload_root(cls, root: Path, patterns: Sequence[str], use_git: bool = True) -> IgnoreRules:
        """Every source for the upload directory ``root`` (resolved).

        Raises ``OSError`` or ``UnicodeDecodeError`` when ``.ailabberignore`` exists but
        cannot be read: silently uploading what the student meant to exclude would be
        worse.  A ``.gitignore`` that cannot be read is in ``problems``.
        """
        own: list[RuleSet] = []
        path = Path(root) / IGNORE_FILE
        if path.is_file():
            text = path.read_bytes().decode("utf-8")
            own.append(RuleSet(compile_lines(text.split("\n"), IGNORE_FILE, dot_slash=True)))
        git = None
        if use_git:
            from ailabber.workstation.gitignore import GitIgnores

            git = GitIgnores(str(root))
        return cls(patterns, own=own, git=git)

    @property
    def problems(self) -> list[str]:
        """Ignore files that exist but could not be read (one line each)."""
        return self._git.problems if self._git is not None else []

    def _rules_for(self, directory: str) -> _Flat:
        flat = self._flat.get(directory)
        if flat is None:
            chain = self._git.chain(directory) if self._git is not None else ()
            flat = self._by_chain.get(id(chain))
            if flat is None:
                flat = self._by_chain[id(chain)] = _flatten((*chain, *self._own, _BUILTIN))
            self._flat[directory] = flat
        return flat

    def decide(self, rel: str, is_dir: bool) -> Rule | None:
        """The rule that decides ``rel`` itself (negated: kept), trusting that no parent
        is excluded; None when no rule matches."""
        directory, _, base = rel.rpartition("/")
        for regex, dir_only, anchored, lead, cut, rule in self._rules_for(directory):
            if dir_only and not is_dir:
                continue
            if anchored:
                path = rel[cut:] if cut else rel
                if regex.fullmatch(lead + path if lead else path):
                    return rule
            elif regex.fullmatch(base):
                return rule
        return None

    def ignores_entry(self, rel: str, is_dir: bool) -> bool:
        """Match ``rel`` itself only, trusting that no parent is ignored.

        A tree walk that never descends into ignored directories already knows that, and
        skipping the parent checks keeps planning a large upload cheap.
        """
        rule = self.decide(rel, is_dir)
        return rule is not None and not rule.negated

    def excluded_by(self, rel_posix_path: str, is_dir: bool) -> Exclusion | None:
        """What leaves the path out: its own rule, or the rule of its highest excluded
        parent directory; None when it is uploaded."""
        parts = _split(rel_posix_path)
        if not parts:
            return None
        for k in range(1, len(parts)):
            sub = "/".join(parts[:k])
            rule = self._dir_rule(sub)
            if rule is not None:
                return Exclusion(rule, sub, True)
        rel = "/".join(parts)
        rule = self.decide(rel, is_dir)
        return Exclusion(rule, rel, is_dir) if rule is not None and not rule.negated else None

    def is_ignored(self, rel_posix_path: str, is_dir: bool) -> bool:
        return self.excluded_by(rel_posix_path, is_dir) is not None

    def is_builtin(self, rel_posix_path: str, is_dir: bool) -> bool:
        """True when a built-in rule (not the student's own) leaves the path out."""
        why = self.excluded_by(rel_posix_path, is_dir)
        return why is not None and why.rule.source == BUILTIN

    def _dir_rule(self, rel: str) -> Rule | None:
        if rel not in self._dir_cache:
            rule = self.decide(rel, True)
            self._dir_cache[rel] = rule if rule is not None and not rule.negated else None
        return self._dir_cache[rel]


def _split(rel: str) -> list[str]:
    return [p for p in rel.split("/") if p not in ("", ".")]
