"""Per-user caps on the cluster side: the bytes a student keeps there, and the uploads a
student has in flight.  Without them one student could fill the shared root for everyone.

Disk use is what the root's filesystem really spends: allocated blocks (a sparse file costs
its data, not its length), each inode once (``--link-dest`` hard-links unchanged files to
an earlier task, and those cost nothing again).  Measuring means walking the user's
``tasks/`` and ``outbox/``, which is too slow for every pass, so ``DiskUsage`` walks one
user's area only when it has no figure yet, when the figure is older than
``REMEASURE_EVERY`` (logs and results grow), and before it would refuse an upload on an
estimate.  In between, each accepted upload adds what it brought.

Everything under ``users/<u>/`` belongs to the student, so all of it is read through
directory handles that never follow a symlink (``_Walk`` below a ``SafeDir``).

The walk is bounded, because a student's job can build any tree in ``run/`` and the walk
runs in remoted's main pass: it holds one descriptor per level of the current path (each
directory is opened once, from its parent's handle), and it stops after
``MAX_WALK_ENTRIES`` entries and opens no directory deeper than ``MAX_WALK_DEPTH`` levels.
A walk that hits a bound (or cannot open a directory it found for any reason but its
being gone: no descriptor left, say) cannot vouch for the figure (whatever it did not
count could be anything), so the area counts as **over its quota** until the student has removed enough
for a complete walk: limits.json publishes nothing left, every upload is refused with a
message that says why, and remoted logs a warning once per user (again only after a
complete walk in between).  Reporting the partial figure instead would let a student hide
any number of bytes beyond the bound; refusing new uploads of someone whose area holds a
million files, or directories nested hundreds deep, costs nobody anything they need.  An
upload whose own walk hits a bound is refused the same way.

Each user's figure is also kept in ``state/disk/<user>.json`` (``DiskFigure``, written
when it changed, once per pass at most), for the course staff's ``admin usage``, which must
not walk students' areas itself (staff who are not root cannot, and root's walks belong to
remoted).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ailabber.model import ids
from ailabber.model.remote_layout import DISK, OUTBOX, STATE, TASKS, USERS
from ailabber.storage import fsutil
from ailabber.storage.safedir import SafeDir
from ailabber.storage.upload_limits import UploadLimits

log = logging.getLogger(__name__)

REMEASURE_EVERY = 300.0   # seconds a user's measured figure is trusted (plus what uploads added)
REMEASURE_AT_MOST = 5.0   # seconds between walks of one user forced by a refusal
KEPT = (TASKS, OUTBOX)
#: Entries (files, directories, links ...) one walk reads before it gives up: a few
#: seconds of remoted's pass at most.
MAX_WALK_ENTRIES = 1_000_000
#: Directory levels below the walked directory that one walk opens: one descriptor per
#: level is held, well inside remoted's descriptor limit.
MAX_WALK_DEPTH = 256

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
#: What a name that was removed or swapped for something else meanwhile fails with
#: (ELOOP: a symlink): it no longer uses the disk there.  Any other error (no descriptor
#: left, say) leaves the walk incomplete.
_GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)


@dataclass
class _Figure:
    bytes: int            # last walk plus the uploads accepted since
    measured_at: float    # time.monotonic() of the walk
    complete: bool = True  # False: the walk hit a bound, and the area counts as over its quota
    why: str = ""          # which bound, in words for the student


class DiskFigure(NamedTuple):
    """A student's area as remoted last measured it (its last walk, plus the uploads it
    accepted since): ``state/disk/<user>.json``."""

    bytes: int
    complete: bool         # False: the walk hit a bound; ``bytes`` is a lower bound
    measured_at: float     # epoch seconds: when remoted last held this figure

    def to_dict(self) -> dict[str, Any]:
        return {"bytes": self.bytes, "complete": self.complete, "measured_at": self.measured_at}

    @classmethod
    def from_dict(cls, d: Any) -> DiskFigure | None:
        """The figure in ``d``, or None if it is not one."""
        if not isinstance(d, dict):
            return None
        n, complete, at = d.get("bytes"), d.get("complete"), d.get("measured_at")
        if not isinstance(n, int) or not isinstance(complete, bool) or not isinstance(at, (int, float)):
            return None
        return cls(n, complete, float(at))


class _Walk:
    """Allocated bytes below one or more directory handles, each inode once, within one
    budget of ``max_entries`` entries and ``max_depth`` levels.

    Depth first, without recursion (a job can nest directories far deeper than Python's
    stack): a stack of ``(handle, subdirectories still to enter)`` along the current path,
    each directory opened once with ``openat(parent, name, O_NOFOLLOW | O_DIRECTORY)``
    and read to the end before its subdirectories are entered, so only one descriptor per
    level is open.  A tree swapped while it is walked cannot lead the walk outside: a name
    that is no longer a real directory fails to open and is skipped (it no longer uses the
    disk there)."""

    def __init__(self, max_entries: int | None = None, max_depth: int | None = None) -> None:
        self.max_entries = MAX_WALK_ENTRIES if max_entries is None else max_entries
        self.max_depth = MAX_WALK_DEPTH if max_depth is None else max_depth
        self.entries = 0                   # entries read so far
        self.stopped: str | None = None   # which bound the walk hit, if it hit one
        self._total = 0                    # entries with one link, and directories
        self._seen: dict[tuple[int, int], list[int]] = {}   # (dev, ino) -> [bytes, links, links seen]

    @property
    def complete(self) -> bool:
        return self.stopped is None

    def total(self, only_new: bool = False) -> int:
        """The bytes counted.  ``only_new``: count only inodes all of whose links were
        seen; a file that an upload hard-linked to an earlier task costs nothing new."""
        shared = sum(used for used, links, seen in self._seen.values() if not only_new or seen >= links)
        return self._total + shared

    def add(self, top_fd: int) -> None:
        """Count everything below ``top_fd`` (itself excluded)."""
        if self.stopped == "entries":
            return
        try:
            first = os.dup(top_fd)
        except OSError:
            self._stop("unreadable")
            return
        stack: list[tuple[int, list[str]]] = []
        try:
            stack.append((first, []))
            stack[-1][1].extend(self._read(first))
            while stack and self.stopped != "entries":
                fd, subdirs = stack[-1]
                if not subdirs:
                    os.close(stack.pop()[0])
                    continue
                name = subdirs.pop()
                if len(stack) > self.max_depth:
                    self._stop("depth")     # not entered; the rest of the tree still is
                    continue
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno not in _GONE:
                        self._stop("unreadable")   # out of descriptors, say: not "nothing there"
                    continue                # gone or replaced meanwhile
                stack.append((child, []))   # closed by the finally below, whatever happens
                stack[-1][1].extend(self._read(child))
        finally:
            while stack:
                os.close(stack.pop()[0])

    def _read(self, fd: int) -> list[str]:
        """Count the entries of the directory ``fd``; the names of its subdirectories."""
        subdirs: list[str] = []
        try:
            with os.scandir(fd) as it:
                for entry in it:
                    if self.entries >= self.max_entries:
                        self._stop("entries")
                        break
                    self.entries += 1
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    self._count(st)
                    if stat.S_ISDIR(st.st_mode):
                        subdirs.append(entry.name)
        except OSError as exc:
            if exc.errno not in _GONE:
                self._stop("unreadable")
        subdirs.reverse()                   # entered in the order read
        return subdirs

    def _count(self, st: os.stat_result) -> None:
        used = st.st_blocks * 512
        if st.st_nlink <= 1 or stat.S_ISDIR(st.st_mode):
            self._total += used
            return
        entry = self._seen.setdefault((st.st_dev, st.st_ino), [used, st.st_nlink, 0])
        entry[2] += 1

    def _stop(self, bound: str) -> None:
        if self.stopped is None or bound == "entries":
            self.stopped = bound

    def why(self) -> str:
        """The bound the walk hit, in words for the student."""
        if self.stopped == "entries":
            return f"more than {self.max_entries:,} files and directories"
        if self.stopped == "depth":
            return f"directories nested more than {self.max_depth} deep"
        return "directories that could not be read"


def disk_bytes(top: SafeDir, only_new: bool = False) -> int:
    """Allocated bytes of everything under ``top`` (itself excluded), each inode once,
    as far as one bounded walk gets (``_Walk``; ``walk`` says whether it got through).

    ``only_new``: count only inodes all of whose links are inside ``top``; a file that an
    upload hard-linked to an earlier task costs nothing new."""
    return walk(top).total(only_new)


def walk(*tops: SafeDir, max_entries: int | None = None, max_depth: int | None = None) -> _Walk:
    """One bounded walk below each of ``tops`` (one budget for all of them)."""
    w = _Walk(max_entries, max_depth)
    for top in tops:
        w.add(top.fd)
    return w


class DiskUsage:
    """Bytes each user keeps in ``tasks/`` and ``outbox/``, kept cheap to ask for."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._figures: dict[str, _Figure] = {}
        self._kept: dict[str, tuple[int, bool]] = {}     # what state/disk/ holds, as last written

    def measure(self, user: str) -> int:
        """Walk the user's area now (one bounded walk for ``tasks/`` and ``outbox/``)."""
        w = _Walk()
        with SafeDir.open(self.root / USERS) as users, users.sub(user) as area:
            for name in KEPT:
                try:
                    d = area.sub(name)
                except OSError:
                    continue   # missing, or something planted in its place: intake replaces it
                with d:
                    w.add(d.fd)
        total = w.total()
        before = self._figures.get(user)
        if not w.complete and (before is None or before.complete):
            log.warning("%s: the area holds %s; it counts as over its disk quota (no upload is "
                        "accepted) until the student removes some (%d bytes counted so far)",
                        user, w.why(), total)
        elif w.complete and before is not None and not before.complete:
            log.info("%s: the area can be measured again: %d bytes", user, total)
        self._figures[user] = _Figure(total, time.monotonic(), w.complete, w.why() if not w.complete else "")
        log.debug("%s: keeps %d bytes on the cluster", user, total)
        return total

    def keep(self, user: str) -> None:
        """The user's figure for the staff's reports (``state/disk/<user>.json``), when it
        changed since it was last kept: at most one write per user and pass however many
        uploads a pass accepts.  One that cannot be written (a full disk) is written on a
        later pass: a report may lag, a pass never fails for it."""
        fig = self._figures.get(user)
        if fig is None or self._kept.get(user) == (fig.bytes, fig.complete):
            return
        try:
            fsutil.atomic_write_bytes(self.root / STATE / DISK / f"{user}.json", (json.dumps(
                DiskFigure(fig.bytes, fig.complete, time.time()).to_dict(), sort_keys=True) + "\n").encode())
        except OSError as exc:
            log.debug("%s: cannot keep the disk figure: %s", user, exc)
            return
        self._kept[user] = (fig.bytes, fig.complete)

    def used(self, user: str) -> int:
        """The user's figure, measured again when missing or older than REMEASURE_EVERY
        (as far as the walk got: ``complete`` says whether it got through)."""
        fig = self._figures.get(user)
        if fig is None or time.monotonic() - fig.measured_at > REMEASURE_EVERY:
            return self.measure(user)
        return fig.bytes

    def complete(self, user: str) -> bool:
        """Whether the user's last walk got through (see the module's docstring)."""
        fig = self._figures.get(user)
        return fig is None or fig.complete

    def published(self, user: str, limits: UploadLimits) -> UploadLimits:
        """``limits`` with the user's usage, as limits.json tells the client (no walk at all
        when there is no quota); an area that could not be walked through has nothing left."""
        if limits.max_disk_bytes is None:
            return limits
        used = self.used(user)
        self.keep(user)
        if not self.complete(user):
            used = max(used, limits.max_disk_bytes)
        return limits._replace(disk_used_bytes=used)

    def admit(self, user: str, upload: SafeDir, limits: UploadLimits) -> str | None:
        """Why the upload in ``upload`` would take the user over ``limits.max_disk_bytes``,
        or None, in which case its bytes are counted from now on.  An estimate that says
        no is checked by a fresh walk first (it may include files removed since).  An
        upload, or an area, that a walk could not get through is refused."""
        if limits.max_disk_bytes is None:
            return None
        up = walk(upload)
        if not up.complete:
            return f"this upload holds {up.why()}, more than the cluster counts; it was not accepted"
        adding = up.total(only_new=True)
        used = self.used(user)
        fig = self._figures[user]
        problem = self._problem(fig, limits, adding, used)
        if problem and time.monotonic() - fig.measured_at > REMEASURE_AT_MOST:
            used = self.measure(user)
            fig = self._figures[user]
            problem = self._problem(fig, limits, adding, used)
        if problem is None:
            fig.bytes += adding
        return problem

    @staticmethod
    def _problem(fig: _Figure, limits: UploadLimits, adding: int, used: int) -> str | None:
        if not fig.complete:
            return (f"your area on the cluster holds {fig.why}, more than the cluster counts, so it "
                    f"counts as over your disk quota; remove old tasks (or the trees your jobs left "
                    f"in their run/ directories), or ask the course admin to")
        return limits.quota_problem(adding, used)


#: An upload whose directory has not changed for this long is no longer being sent.
IN_FLIGHT_GRACE = 600.0
#: However fresh, never more than this many times the limit are kept in flight.
IN_FLIGHT_HARD_FACTOR = 5


def surplus_in_flight(tmp: SafeDir, commit: SafeDir, limit: int | None, now: float | None = None) -> list[str]:
    """Uploads in ``incoming/tmp`` without a commit marker beyond ``limit``: the ones to
    remove.

    An upload without a marker is in flight or abandoned.  spoold sends at most ``limit``
    per batch once it has read the published limit, but its first batch may be bigger,
    and a batch's markers follow its files: so only uploads that have not changed for
    ``IN_FLIGHT_GRACE`` seconds (their directory's ctime, which no user can set back)
    count as surplus, oldest first, and fresh ones only beyond ``IN_FLIGHT_HARD_FACTOR``
    times the limit (a client that keeps touching junk to keep it fresh)."""
    if limit is None:
        return []
    now = time.time() if now is None else now
    committed = {n[: -len(".json")] for n in commit.listdir() if n.endswith(".json")}
    waiting: list[tuple[float, str]] = []
    for name in tmp.listdir():
        if name in committed:
            continue
        try:
            waiting.append((tmp.lstat(name).st_ctime, name))
        except FileNotFoundError:
            continue
    waiting.sort()
    excess = len(waiting) - limit
    if excess <= 0:
        return []
    hard = max(0, len(waiting) - IN_FLIGHT_HARD_FACTOR * limit)
    chosen = [name for i, (ctime, name) in enumerate(waiting)
              if i < excess and (i < hard or now - ctime >= IN_FLIGHT_GRACE)]
    surplus: list[str] = []
    for name in chosen:
        try:
            commit.lstat(f"{name}.json")   # committed just now: intake takes it next pass
        except FileNotFoundError:
            surplus.append(name)
    return surplus
