"""What a submit uploads: plan the tree once, then copy exactly that plan.

Planning and copying are split so the CLI can show the size (and the biggest files) before
anything is written, and so every refusal (a symlink leading out, an unreadable file) is
found before the spool sees a half-written task.  The copy re-checks each file against the
plan, because a training run still writing into the tree would otherwise upload a torn file
that nobody notices until the job fails on the cluster.
"""

from __future__ import annotations

import errno
import heapq
import json
import os
import stat
import time
from pathlib import Path
from typing import NamedTuple

from ailabber.model.config import ConfigError, TaskConfig
from ailabber.model.pathlimits import Extremes, over
from ailabber.storage.filecopy import copy_fd, link_or_copy, spool_mode
from ailabber.storage.fsutil import fsync_dir, fsync_fd
from ailabber.storage.sources import Previous, Sources
from ailabber.workstation.ignore import IgnoreRules, Rule

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"


class Entry(NamedTuple):
    rel: str            # POSIX path relative to the upload root
    kind: str           # "file" | "dir" | "symlink"
    size: int           # bytes for files, 0 otherwise
    mode: int           # permission bits (0o777 mask)
    target: str | None = None  # symlinks only: the link text as written


class Excluded(NamedTuple):
    """A path the walk left out, and the rule that did (nothing below it was looked at)."""
    rel: str
    is_dir: bool
    rule: Rule


class SnapshotPlan(NamedTuple):
    root: Path
    entries: list[Entry]
    total_bytes: int
    file_count: int
    source_name: str = "task_config.toml"  # prefixes error lines raised while copying
    disk_bytes: int = 0     # blocks the files use (holes cost nothing): what the cluster's quota counts
    excluded: tuple[Excluded, ...] = ()     # what the ignore rules left out, for ``submit --dry-run``

    def largest(self, n: int = 10) -> list[Entry]:
        """The ``n`` biggest files, to tell a student why an upload is large."""
        files = (e for e in self.entries if e.kind == FILE)
        return heapq.nlargest(n, files, key=lambda e: e.size)

    def listing(self, prefix: str) -> tuple[dict[str, int], dict[str, str]]:
        """Regular files (path -> size) and symlinks (path -> target) under ``prefix/``:
        what a copy made by ``copy_snapshot`` holds, since the copy checks every size and
        link target against the plan (no second walk of the copy to build its manifest)."""
        files = {f"{prefix}/{e.rel}": e.size for e in self.entries if e.kind == FILE}
        links = {f"{prefix}/{e.rel}": e.target or "" for e in self.entries if e.kind == SYMLINK}
        return files, links


def _q(rel: str) -> str:
    """Quote a path for a one-line message, whatever characters the file name holds."""
    if rel.isprintable() and "'" not in rel and "\\" not in rel:
        return f"'{rel}'"
    return json.dumps(rel)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class _Planner:
    def __init__(self, cfg: TaskConfig) -> None:
        self.root = os.path.realpath(cfg.upload_root)
        self.rules = IgnoreRules.from_upload_root(Path(self.root), cfg.files.ignore)
        self.prefix = f"{cfg.source.name}: files.upload:"
        self.problems: list[str] = []
        self.entries: list[Entry] = []
        self.excluded: list[Excluded] = []
        self.disk_bytes = 0

    def problem(self, message: str) -> None:
        self.problems.append(f"{self.prefix} {message}")

    def left_out(self, rel: str, is_dir: bool) -> bool:
        """Whether the rules leave ``rel`` out; remembers by which rule."""
        rule = self.rules.decide(rel, is_dir)
        if rule is None or rule.negated:
            return False
        self.excluded.append(Excluded(rel, is_dir, rule))
        return True

    def scan(self, path: str, rel: str) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(path) as it:
                return sorted(it, key=lambda d: d.name)
        except OSError as exc:
            if not over(rel):   # too deep or too long: the limit's own line says so
                self.problem(f"cannot read directory {_q(rel or '.')}: {exc.strerror}")
            return []

    def walk(self) -> None:
        """Depth-first, sorted, directories before their contents; no recursion limit."""
        stack = [(iter(self.scan(self.root, "")), "")]
        while stack:
            it, prefix = stack[-1]
            for de in it:
                rel = prefix + de.name
                if self.visit(de, rel):
                    stack.append((iter(self.scan(de.path, rel)), rel + "/"))
                    break
            else:
                stack.pop()

    def visit(self, de: os.DirEntry[str], rel: str) -> bool:
        """Record one entry; True when it is a directory to descend into."""
        try:
            if de.is_symlink():
                self.symlink(de, rel)
            elif de.is_dir(follow_symlinks=False):
                if not self.left_out(rel, True):
                    st = de.stat(follow_symlinks=False)
                    self.entries.append(Entry(rel, DIR, 0, stat.S_IMODE(st.st_mode) & 0o777))
                    return True
            elif de.is_file(follow_symlinks=False):
                if not self.left_out(rel, False):
                    st = de.stat(follow_symlinks=False)
                    if not os.access(de.path, os.R_OK):
                        self.problem(f"cannot read file {_q(rel)}: Permission denied")
                    self.entries.append(Entry(rel, FILE, st.st_size,
                                              stat.S_IMODE(st.st_mode) & 0o777))
                    self.disk_bytes += st.st_blocks * 512
            # fifos, sockets and devices cannot be uploaded; leaving them out is harmless
        except FileNotFoundError:
            pass  # deleted while we looked: it is simply not part of the upload
        except OSError as exc:
            if not over(rel):
                self.problem(f"cannot read {_q(rel)}: {exc.strerror}")
        return False

    def symlink(self, de: os.DirEntry[str], rel: str) -> None:
        real = os.path.realpath(de.path)
        target_is_dir = os.path.isdir(real)
        # git treats a link as a file; also honour "dir/" patterns for links to directories,
        # since that is what a student means by ignoring it
        if self.left_out(rel, False) or (target_is_dir and self.left_out(rel, True)):
            return
        target = os.readlink(de.path)
        if not _inside(real, self.root):
            self.problem(f"symlink {_q(rel)} points outside the upload directory; "
                         "add it to files.ignore")
            return
        if not os.path.exists(de.path):
            self.problem(f"symlink {_q(rel)} is dangling (its target does not exist); "
                         "add it to files.ignore")
            return
        real_rel = os.path.relpath(real, self.root)
        if real_rel != "." and self.rules.is_ignored(real_rel, target_is_dir):
            self.problem(f"symlink {_q(rel)} points to {_q(real_rel)}, which is not uploaded "
                         "(ignored); add the link to files.ignore")
            return
        self.entries.append(Entry(rel, SYMLINK, 0, 0o777, target))


def plan_snapshot(cfg: TaskConfig) -> SnapshotPlan:
    """Walk ``cfg.upload_root`` and decide what goes up; ``ConfigError`` lists every refusal."""
    planner = _Planner(cfg)
    planner.walk()
    extremes = Extremes()
    for e in planner.entries:
        extremes.note(e.rel)
    for line in (*planner.rules.problems, *extremes.problems()):
        planner.problem(line)
    if planner.problems:
        raise ConfigError(planner.problems)
    files = [e for e in planner.entries if e.kind == FILE]
    return SnapshotPlan(
        root=Path(planner.root),
        entries=planner.entries,
        total_bytes=sum(e.size for e in files),
        file_count=len(files),
        source_name=cfg.source.name,
        disk_bytes=planner.disk_bytes,
        excluded=tuple(planner.excluded),
    )


# --------------------------------------------------------------------------- copy


class _Copier:
    def __init__(self, plan: SnapshotPlan, dest: Path, previous: Previous | None, sources: Sources) -> None:
        self.plan = plan
        self.durable = True
        self.src = str(plan.root)
        self.dst = str(dest)
        self.previous = previous
        self.sources = sources

    def changed(self, rel: str, what: str) -> ConfigError:
        return ConfigError([f"{self.plan.source_name}: files.upload: {_q(rel)} {what} while it "
                            "was being copied; submit again once nothing writes to it"])

    def file(self, e: Entry) -> None:
        try:
            # O_NONBLOCK: a file swapped for a FIFO after planning must not hang submit.
            src = os.open(os.path.join(self.src, e.rel),
                          os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            raise self.changed(e.rel, "disappeared") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # replaced by a symlink: never follow it
                raise self.changed(e.rel, "was replaced") from None
            raise
        try:
            before = os.fstat(src)
            if not stat.S_ISREG(before.st_mode) or before.st_size != e.size:
                raise self.changed(e.rel, "changed size")
            out = os.path.join(self.dst, e.rel)
            if self.share(e.rel, before, out):
                return
            dst = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                copied = copy_fd(src, dst)
                after = os.fstat(src)
                if copied != e.size or after.st_size != e.size:
                    raise self.changed(e.rel, "changed size")
                if after.st_mtime_ns != before.st_mtime_ns:
                    raise self.changed(e.rel, "was modified")
                os.fchmod(dst, spool_mode(before.st_mode))
                os.utime(dst, ns=(before.st_atime_ns, before.st_mtime_ns))
                if self.durable:
                    fsync_fd(dst)
            finally:
                os.close(dst)
            self.sources.note(e.rel, before, after)
        finally:
            os.close(src)

    def share(self, rel: str, st: os.stat_result, out: str) -> bool:
        """Link the previous task's copy of ``rel`` when the project file is unchanged since
        it was made (``Previous.copy_of``); False: copy it from the project instead."""
        shared = self.previous.copy_of(rel, st) if self.previous else None
        if shared is None:
            return False
        try:
            link_or_copy(shared, out)
        except (OSError, ValueError):
            return False   # that task was cleaned meanwhile, or its copy is not a file
        self.sources.note(rel, st, st)
        return True

    def symlink(self, e: Entry) -> None:
        path = os.path.join(self.src, e.rel)
        try:
            target = os.readlink(path)
            st = os.lstat(path)
        except FileNotFoundError:
            raise self.changed(e.rel, "disappeared") from None
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # no longer a symlink
                raise self.changed(e.rel, "was replaced") from None
            raise
        if target != e.target:
            raise self.changed(e.rel, "was re-pointed")
        out = os.path.join(self.dst, e.rel)
        os.symlink(target, out)
        os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    def finish_dir(self, e: Entry) -> None:
        """Mode and mtime last: writing the contents would bump the mtime again."""
        try:
            st = os.lstat(os.path.join(self.src, e.rel))
        except FileNotFoundError:
            raise self.changed(e.rel, "disappeared") from None
        out = os.path.join(self.dst, e.rel)
        # keep the owner able to write, or the spool could never delete the copy again
        os.chmod(out, (stat.S_IMODE(st.st_mode) & 0o777) | 0o700)
        os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))


def copy_snapshot(plan: SnapshotPlan, dest: Path, durable: bool = True, previous: Previous | None = None) -> Sources:
    """Materialise ``plan`` into the existing, empty directory ``dest``; returns where each
    file came from (``storage/sources.py``), for the next snapshot of the same project.

    Files are reopened without following symlinks and re-checked against the plan; a file
    that changed raises ``ConfigError`` and leaves ``dest`` partly filled for the caller to
    remove.  A file unchanged since ``previous`` (the project's last task) copied it is
    hard-linked to that copy.  Files lose their write bits (``spool_mode``); directory
    modes always keep ``u+rwx``.  ``durable=False`` leaves flushing to the caller (one
    ``syncfs`` for the whole task is far cheaper than a fsync per file).
    """
    dest = Path(dest)
    with os.scandir(dest) as it:
        if next(it, None) is not None:
            raise FileExistsError(f"{dest} is not empty")
    copier = _Copier(plan, dest, previous, Sources(str(plan.root), time.time_ns()))
    copier.durable = durable
    dirs: list[Entry] = []
    for e in plan.entries:
        if e.kind == DIR:
            os.mkdir(os.path.join(copier.dst, e.rel), 0o700)
            dirs.append(e)
        elif e.kind == FILE:
            copier.file(e)
        elif e.kind == SYMLINK:
            copier.symlink(e)
    for e in reversed(dirs):
        copier.finish_dir(e)
    if durable:
        for e in dirs:
            fsync_dir(os.path.join(copier.dst, e.rel))
        fsync_dir(dest)
    return copier.sources
