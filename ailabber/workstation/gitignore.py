"""The project's git ignore files, found and read the way git finds and reads them.

A student's ``.gitignore`` already says what is not part of the project (data,
checkpoints, outputs of local runs), so it is the base of what a submit leaves out.  As in
git: the ``.gitignore`` of every directory counts for the paths below it, deeper files
win; when the upload directory is inside a git work tree (the nearest directory above
with a ``.git``, not crossing a file system), the ``.gitignore`` files between the top of
that tree and the upload directory count too, and so does ``.git/info/exclude``.  Without
a work tree the ``.gitignore`` files inside the upload directory still count: a project
copied without its history means the same.

A ``.gitignore`` that is a symlink is skipped, as git (2.32 and later) skips it.  Files
are read as bytes and decoded the way Python decodes file names, so a pattern matches the
same names git's byte-wise match does.  The user's global excludes file
(``core.excludesFile``) is not read: it describes one person's editor, not the project.
"""

from __future__ import annotations

import errno
import os
import stat

from ailabber.workstation.ignore_rules import RuleSet, compile_lines

GITIGNORE = ".gitignore"
#: Nothing to read: no such file, or (ENAMETOOLONG) a directory too deep for any path to
#: name, which the upload's path limits refuse with their own line.
_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG)


def read_lines(path: str, follow: bool = False) -> list[str] | None:
    """The lines of a pattern file, or None when there is none to read (absent, not a
    regular file, or a symlink unless ``follow``).  Raises ``OSError`` when it exists but
    cannot be read."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno in _ABSENT or exc.errno == errno.ELOOP:
            return None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    text = b"".join(chunks).decode("utf-8", "surrogateescape")
    return text.removeprefix("\ufeff").split("\n")


def work_tree_top(root: str) -> str | None:
    """The top of the git work tree holding ``root``: the nearest directory at or above it
    with a ``.git`` entry, on the same file system."""
    try:
        dev = os.stat(root).st_dev
    except OSError:
        return None
    cur = root
    while True:
        if os.path.lexists(os.path.join(cur, ".git")):
            return cur
        parent = os.path.dirname(cur)
        try:
            if parent == cur or os.stat(parent).st_dev != dev:
                return None
        except OSError:
            return None
        cur = parent


def exclude_file(top: str) -> str:
    """``info/exclude`` of the repository whose work tree is ``top``: in ``.git/``, or for
    a linked work tree or a submodule (``.git`` is a ``gitdir:`` file) in the common dir."""
    dotgit = os.path.join(top, ".git")
    gitdir = dotgit
    if not os.path.isdir(dotgit):
        try:
            with open(dotgit, encoding="utf-8", errors="surrogateescape") as fh:
                first = fh.readline().strip()
        except OSError:
            first = ""
        if first.startswith("gitdir:"):
            gitdir = os.path.join(top, first[len("gitdir:"):].strip())
    try:
        with open(os.path.join(gitdir, "commondir"), encoding="utf-8", errors="surrogateescape") as fh:
            gitdir = os.path.join(gitdir, fh.readline().strip())
    except OSError:
        pass
    return os.path.join(gitdir, "info", "exclude")


class GitIgnores:
    """The git ignore files that judge each directory of an upload, read once each when a
    path in that directory is first asked about (the walk never asks about the inside of
    an excluded directory, so git's files in there are never read, as in git)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.problems: list[str] = []
        self._chains: dict[str, tuple[RuleSet, ...]] = {}
        self._chains[""] = self._above() + self._load("")

    def chain(self, directory: str) -> tuple[RuleSet, ...]:
        """The rule sets for the entries of ``directory`` (relative to the root, "" for
        the root), lowest precedence first."""
        got = self._chains.get(directory)
        if got is not None:
            return got
        missing = []
        cur = directory
        while cur not in self._chains:
            missing.append(cur)
            cur = cur.rpartition("/")[0]
        chain = self._chains[cur]
        for d in reversed(missing):
            chain = chain + self._load(d)
            self._chains[d] = chain
        return chain

    def _source(self, path: str) -> str:
        return os.path.relpath(path, self.root)

    def _read(self, path: str, follow: bool = False) -> list[str] | None:
        try:
            return read_lines(path, follow)
        except OSError as exc:
            self.problems.append(f"cannot read {_q(self._source(path))}: {exc.strerror}")
            return None

    def _load(self, directory: str) -> tuple[RuleSet, ...]:
        path = os.path.join(self.root, directory, GITIGNORE)
        lines = self._read(path)
        rules = compile_lines(lines, self._source(path)) if lines else ()
        return (RuleSet(rules, scope=directory),) if rules else ()

    def _above(self) -> tuple[RuleSet, ...]:
        """``info/exclude`` and the ``.gitignore`` files from the work tree's top down to
        (not including) the upload root."""
        top = work_tree_top(self.root)
        if top is None:
            return ()
        sets: list[RuleSet] = []
        excludes = exclude_file(top)
        lines = self._read(excludes, follow=True)
        if lines:
            sets.append(RuleSet(compile_lines(lines, self._source(excludes)), lead=_lead(self.root, top)))
        below = os.path.relpath(self.root, top)
        cur = top
        for part in ([] if below == "." else below.split(os.sep)):
            path = os.path.join(cur, GITIGNORE)
            lines = self._read(path)
            if lines:
                sets.append(RuleSet(compile_lines(lines, self._source(path)), lead=_lead(self.root, cur)))
            cur = os.path.join(cur, part)
        return tuple(s for s in sets if s.rules)


def _lead(root: str, directory: str) -> str:
    """``root`` relative to ``directory``, as a prefix: "" when they are the same."""
    rel = os.path.relpath(root, directory)
    return "" if rel == "." else rel.replace(os.sep, "/") + "/"


def _q(rel: str) -> str:
    from ailabber.model.config_fields import quote

    return quote(rel, 200)
