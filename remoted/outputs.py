"""What a finished task's ``run.logs`` and ``run.results`` match, listed where the files are.

When a task reaches its final state, remoted walks the task's workdir and publishes, for
every entry, the paths it matches as ``outbox/<id>/outputs.json``, together with the final
status and written before it (``records.Outbox``: owed like the status while the outbox
cannot be written), so that spoold, which acts on that status, finds the listing there.  spoold then
brings back exactly those paths and says which entries matched nothing.

The workdir is the student's and remoted may be root, so the walk goes through directory
handles opened from the admin's root, follows no symlink at any component (a symlink
matches as itself and is never entered), and only reads names, never a file.  The names
are the job's: anything a file name can be, which ``ailabber.model.outputs`` checks again
wherever the listing is read.  The walk is bounded (entries seen, depth, paths listed), so
a task with millions of files costs remoted one bounded pass; past a bound the listing says
it is incomplete and spoold brings the entries back by their patterns.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from ailabber.model.globs import GlobSet, compile_glob
from ailabber.model.outputs import MAX_NAME_BYTES, MAX_PATHS, OUTPUTS_FILE, Outputs, entries, listing
from ailabber.storage.safedir import DIR_FLAGS, open_beneath
from remoted.jobspec import JobSpec
from remoted.records import TaskRecord

if TYPE_CHECKING:
    from ailabber.model.globs import State

log = logging.getLogger("remoted")

#: Directory entries one listing looks at, and how deep it goes.
MAX_SEEN = 200_000
MAX_DEPTH = 128


class Incomplete(Exception):
    """The walk stopped at a bound; the message says which."""


class _Walk:
    """One walk of a workdir: what each pattern matched, within the bounds."""

    def __init__(self, globs: GlobSet, count: int):
        self.globs = globs
        self.matches: list[list[str]] = [[] for _ in range(count)]
        self.seen = 0
        self.paths = 0
        self.name_bytes = 0

    def record(self, g: int, path: str) -> None:
        self.paths += 1
        self.name_bytes += len(path.encode("utf-8", "surrogateescape")) + 4
        if self.paths > MAX_PATHS or self.name_bytes > MAX_NAME_BYTES:
            raise Incomplete(f"more than {MAX_PATHS} paths or {MAX_NAME_BYTES >> 20} MiB of names matched")
        self.matches[g].append(path)

    def children(self, fd: int, prefix: str, states: frozenset[State]) -> list[tuple[str, frozenset[State]]]:
        """Match the entries of the directory ``fd`` (at ``prefix``); return its
        subdirectories that something below them may match."""
        names = self.globs.literal_names(states)
        found: list[tuple[str, bool]] = []
        if names is None:
            with os.scandir(fd) as it:
                found = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in it)
        else:
            for name in names:
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                found.append((name, stat.S_ISDIR(st.st_mode)))
        below: list[tuple[str, frozenset[State]]] = []
        for name, is_dir in found:
            self.seen += 1
            if self.seen > MAX_SEEN:
                raise Incomplete(f"the workdir holds more than {MAX_SEEN} entries")
            matched, inside = self.globs.step(states, name, is_dir)
            for g in matched:
                self.record(g, prefix + name)
            if inside and is_dir:
                below.append((name, inside))
        return below

    def run(self, top: int) -> None:
        """Depth first, one open handle per level (never more than ``MAX_DEPTH``)."""
        for g in self.globs.whole():
            self.record(g, ".")
        start = self.globs.start()
        if not start:
            return
        stack: list[tuple[int, str, list[tuple[str, frozenset[State]]]]] = [
            (top, "", list(reversed(self.children(top, "", start))))]
        try:
            while stack:
                fd, prefix, todo = stack[-1]
                if not todo:
                    stack.pop()
                    if fd != top:
                        os.close(fd)
                    continue
                name, states = todo.pop()
                if len(stack) >= MAX_DEPTH:
                    raise Incomplete(f"the workdir is more than {MAX_DEPTH} directories deep")
                try:
                    sub = os.open(name, DIR_FLAGS, dir_fd=fd)   # no symlink, even if swapped in since
                except OSError:
                    continue                                     # gone or replaced meanwhile
                try:
                    kids = self.children(sub, f"{prefix}{name}/", states)
                except BaseException:
                    os.close(sub)
                    raise
                stack.append((sub, f"{prefix}{name}/", list(reversed(kids))))
        finally:
            for fd, _prefix, _todo in stack:
                if fd != top:
                    os.close(fd)


def list_outputs(root: Path, spec: JobSpec) -> Outputs:
    """What each of the task's entries matches in its workdir under ``root``, now."""
    wanted = entries(spec.logs, spec.results)
    walk: _Walk | None = None
    try:
        globs = GlobSet([compile_glob(pattern) for _f, _i, pattern in wanted])
        walk = _Walk(globs, len(wanted))
        parts = Path(spec.workdir).relative_to(root).parts
        if ".." in parts:
            raise ValueError("the workdir is not below the remote root")
        with open_beneath(root, parts) as top:
            walk.run(top.fd)
    except Incomplete as exc:
        assert walk is not None
        return listing(spec.logs, spec.results, walk.matches, complete=False, note=f"listing stopped: {exc}")
    except (OSError, ValueError) as exc:
        return listing(spec.logs, spec.results, [[] for _ in wanted], complete=False,
                       note=f"the workdir could not be listed: {exc}")
    return listing(spec.logs, spec.results, walk.matches)


def final_files(root: Path, rec: TaskRecord) -> dict[str, bytes]:
    """The outbox files a task's final state is published with: the listing of its
    outputs, made now (none for a task without entries, or without a spec)."""
    spec = rec.spec
    if spec is None or not (spec.logs or spec.results):
        return {}
    out = list_outputs(root, spec)
    if not out.complete:
        log.info("%s/%s: outputs not fully listed: %s", rec.user, rec.id, out.note)
    return {OUTPUTS_FILE: json.dumps(out.to_dict(), sort_keys=True, separators=(",", ":")).encode() + b"\n"}
