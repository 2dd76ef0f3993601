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
directory handles that never follow a symlink (``_entries`` below a ``SafeDir``).
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ailabber import ids
from ailabber.safedir import SafeDir
from ailabber.upload_limits import UploadLimits

log = logging.getLogger(__name__)

REMEASURE_EVERY = 300.0   # seconds a user's measured figure is trusted (plus what uploads added)
REMEASURE_AT_MOST = 5.0   # seconds between walks of one user forced by a refusal
KEPT = ("tasks", "outbox")


@dataclass
class _Figure:
    bytes: int            # last walk plus the uploads accepted since
    measured_at: float    # time.monotonic() of the walk


def disk_bytes(top: SafeDir, only_new: bool = False) -> int:
    """Allocated bytes of everything under ``top`` (itself excluded), each inode once.

    ``only_new``: count only inodes all of whose links are inside ``top``; a file that an
    upload hard-linked to an earlier task costs nothing new."""
    seen: dict[tuple[int, int], list[int]] = {}   # (dev, ino) -> [bytes, links, links seen]
    total = 0
    for st in _entries(top.fd):
        used = st.st_blocks * 512
        if st.st_nlink <= 1 or stat.S_ISDIR(st.st_mode):
            total += used
            continue
        entry = seen.setdefault((st.st_dev, st.st_ino), [used, st.st_nlink, 0])
        entry[2] += 1
    for used, links, links_seen in seen.values():
        if not only_new or links_seen >= links:
            total += used
    return total


def _entries(top_fd: int) -> Iterator[os.stat_result]:
    """lstat of every entry below ``top_fd``, depth first, without recursion (a job can
    nest directories far deeper than Python's stack) and with one directory open at a
    time: each is reopened from ``top_fd`` one component at a time, never through a
    symlink, so a tree swapped while it is walked cannot lead the walk outside."""
    pending: list[tuple[str, ...]] = [()]
    while pending:
        parts = pending.pop()
        fd = _open_below(top_fd, parts)
        if fd is None:
            continue           # gone or replaced meanwhile: it no longer uses the disk
        try:
            with os.scandir(fd) as it:
                for entry in it:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    yield st
                    if stat.S_ISDIR(st.st_mode):
                        pending.append((*parts, entry.name))
        except OSError:
            continue
        finally:
            os.close(fd)


def _open_below(top_fd: int, parts: tuple[str, ...]) -> int | None:
    fd = os.dup(top_fd)
    for name in parts:
        try:
            nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError:
            os.close(fd)
            return None
        os.close(fd)
        fd = nxt
    return fd


class DiskUsage:
    """Bytes each user keeps in ``tasks/`` and ``outbox/``, kept cheap to ask for."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._figures: dict[str, _Figure] = {}

    def measure(self, user: str) -> int:
        """Walk the user's area now."""
        total = 0
        with SafeDir.open(self.root / "users") as users, users.sub(user) as area:
            for name in KEPT:
                try:
                    d = area.sub(name)
                except OSError:
                    continue   # missing, or something planted in its place: intake replaces it
                with d:
                    total += disk_bytes(d)
        self._figures[user] = _Figure(total, time.monotonic())
        log.debug("%s: keeps %d bytes on the cluster", user, total)
        return total

    def used(self, user: str) -> int:
        """The user's figure, measured again when missing or older than REMEASURE_EVERY."""
        fig = self._figures.get(user)
        if fig is None or time.monotonic() - fig.measured_at > REMEASURE_EVERY:
            return self.measure(user)
        return fig.bytes

    def published(self, user: str, limits: UploadLimits) -> UploadLimits:
        """``limits`` with the user's usage, as limits.json tells the client (no walk at all
        when there is no quota)."""
        if limits.max_disk_bytes is None:
            return limits
        return limits._replace(disk_used_bytes=self.used(user))

    def admit(self, user: str, upload: SafeDir, limits: UploadLimits) -> str | None:
        """Why the upload in ``upload`` would take the user over ``limits.max_disk_bytes``,
        or None, in which case its bytes are counted from now on.  An estimate that says
        no is checked by a fresh walk first (it may include files removed since)."""
        if limits.max_disk_bytes is None:
            return None
        adding = disk_bytes(upload, only_new=True)
        used = self.used(user)
        problem = limits.quota_problem(adding, used)
        fig = self._figures[user]
        if problem and time.monotonic() - fig.measured_at > REMEASURE_AT_MOST:
            used = self.measure(user)
            problem = limits.quota_problem(adding, used)
        if problem is None:
            self._figures[user].bytes += adding
        return problem


def surplus_in_flight(tmp: SafeDir, commit: SafeDir, limit: int | None) -> list[str]:
    """Uploads in ``incoming/tmp`` beyond ``limit`` that have no commit marker: the ones to
    remove.

    An upload without a marker is still in flight (or abandoned); spoold never has more
    than ``limit`` of them at once, since it reads the published limit and sends at most
    that many per batch.  So the surplus is a misbehaving client's: the oldest uploads go
    (task ids sort by time; anything that is not a task id goes first), because a live
    transfer is the newest."""
    if limit is None:
        return []
    committed = {n[: -len(".json")] for n in commit.listdir() if n.endswith(".json")}
    waiting = sorted((n for n in tmp.listdir() if n not in committed), key=lambda n: (ids.is_task_id(n), n))
    surplus: list[str] = []
    for name in waiting[: max(0, len(waiting) - limit)]:
        try:
            commit.lstat(f"{name}.json")   # committed just now: intake takes it next pass
        except FileNotFoundError:
            surplus.append(name)
    return surplus
