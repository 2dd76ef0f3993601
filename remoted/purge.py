"""Removing finished tasks' files from the cluster side: ``ailabber admin purge
--older-than AGE`` and remoted.yaml's ``retention`` (applied when remoted starts, on
SIGHUP and about once an hour).

What goes: a finished task's ``users/<u>/tasks/<id>/`` (its files, the job's run
directory and whatever the job wrote in the workdir) and ``users/<u>/outbox/<id>/``
(status copy, logs).  What stays: remoted's record in ``state/done/`` (which notes
``purged_at`` and the bytes freed) and so every figure of the usage.  Only a task whose
record is in ``state/done`` and that remoted does not hold as unfinished is touched.

A task whose results the student's spoold has not pulled yet is kept (unless staff say
``unpulled``).  remoted tells a pull by the access time of the task's ``outputs.json``
(``status.json`` for a task without one): spoold reads it, after the final status, to
fetch the results, and nothing else reads it; a read after the last write leaves the
access time later than the modification time (Linux's default ``relatime`` records the
first read after a write).  On a filesystem mounted ``noatime`` no task counts as
pulled: the retention policy then removes nothing, and staff purge with ``--unpulled``.

Everything below ``users/<u>/`` is the student's, so every step goes through directory
handles that follow no symlink (``SafeDir``): the removal never leaves the task's own
directory, whatever the student planted in it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from ailabber.model import ids
from ailabber.model.outputs import OUTPUTS_FILE
from ailabber.model.remote_layout import OUTBOX, TASKS, USERS, valid_user
from ailabber.model.render import size
from ailabber.model.task import now_iso, parse_iso
from ailabber.storage import statusfile
from ailabber.storage.safedir import SafeDir
from remoted.publish import ActiveTasks
from remoted.quota import walk
from remoted.records import TaskRecord

log = logging.getLogger("remoted")

#: Seconds between two applications of remoted.yaml's ``retention``.
RETENTION_EVERY = 3600.0
#: The record's note that the task's cluster-side files are gone.
PURGED_AT, PURGED_BYTES = "purged_at", "purged_bytes"


class Removed(NamedTuple):
    user: str
    id: str
    bytes: int


class Report(NamedTuple):
    """What one purge did."""
    removed: list[Removed]
    unpulled: list[tuple[str, str]]          # kept: results not pulled yet
    failed: list[tuple[str, str, str]]       # (user, id, why)

    @property
    def freed(self) -> int:
        return sum(r.bytes for r in self.removed)

    def message(self) -> str:
        users = {r.user for r in self.removed}
        text = f"freed {size(self.freed)} from {len(self.removed)} task(s) of {len(users)} student(s)"
        if self.unpulled:
            text += (f"; kept {len(self.unpulled)} whose results were never pulled (--unpulled removes "
                     f"them too)")
        return text

    def lines(self) -> list[str]:
        per_user: dict[str, list[Removed]] = {}
        for r in self.removed:
            per_user.setdefault(r.user, []).append(r)
        out = [f"{u}: {len(rs)} task(s), {size(sum(r.bytes for r in rs))}" for u, rs in sorted(per_user.items())]
        return out + [f"{u}/{t}: not removed: {why}" for u, t, why in self.failed]


#: How far the workstation's clock, which dates a task's id, may be from remoted's: a task
#: whose id is this much newer than the cutoff is not read to see whether it is old enough.
ID_CLOCK_SLACK = 86400.0


class Purger:
    """Removes finished tasks' files; ``remeasure`` tells the disk quota a user's area
    shrank (``DiskUsage.measure``)."""

    def __init__(self, root: Path, tasks: ActiveTasks, remeasure: Callable[[str], object]):
        self.root = root
        self.tasks = tasks
        self.remeasure = remeasure
        self._applied = 0.0

    def due_now(self) -> None:
        """Apply the retention policy at the next pass (remoted.yaml was reloaded)."""
        self._applied = 0.0

    def maybe_apply(self, max_age: float | None, now: float) -> None:
        """remoted.yaml's ``retention`` (``max_age``; None: off), when it is due: at the
        first pass, after a reload, then about once an hour.  Tasks not pulled yet are kept."""
        if max_age is None or now - self._applied < RETENTION_EVERY:
            return
        self._applied = now
        report = self.purge(max_age, unpulled=False, now=now)
        if report.removed or report.failed:
            log.info("retention: %s", report.message())

    def purge(self, older_than: float, *, unpulled: bool, now: float) -> Report:
        """Remove the files of every task that finished ``older_than`` seconds before
        ``now`` or earlier and was not purged yet."""
        report = Report([], [], [])
        for rec in self._finished(now - older_than):
            try:
                with SafeDir.open(self.root / USERS) as users, users.sub(rec.user) as area:
                    if not unpulled and not _pulled(area, rec.id):
                        report.unpulled.append((rec.user, rec.id))
                        continue
                    freed = _remove(area, rec.id)
            except OSError as exc:
                report.failed.append((rec.user, rec.id, exc.strerror or str(exc)))
                continue
            report.removed.append(Removed(rec.user, rec.id, freed))
            try:
                self.tasks.store.save(rec, extra={**rec.extra, PURGED_AT: now_iso(now), PURGED_BYTES: freed})
            except OSError:
                pass          # the files are gone; the next purge finds nothing and notes it then
        for user in sorted({r.user for r in report.removed}):
            try:
                self.remeasure(user)
            except OSError as exc:
                log.debug("%s: cannot measure the area again: %s", user, exc)
        for r in report.removed:
            log.info("%s/%s: removed its files from the cluster (%s)", r.user, r.id, size(r.bytes))
        return report

    def _finished(self, cutoff: float) -> Iterator[TaskRecord]:
        """Finished records not purged yet whose task ended at ``cutoff`` or before."""
        done = self.tasks.store.done_dir
        for user in _names(done):
            if not valid_user(user):
                continue
            for name in _names(done / user):
                task_id = name.removesuffix(".json")
                if not name.endswith(".json") or (user, task_id) in self.tasks.active:
                    continue
                made = ids.submitted_at(task_id)
                if made is not None and made > cutoff + ID_CLOCK_SLACK:
                    continue      # submitted after the cutoff, so it ended after it: not read at all
                rec = self.tasks.store.get(user, task_id)
                if rec is None or not rec.status.terminal or PURGED_AT in rec.extra:
                    continue
                ended = parse_iso(rec.status.finished_at) or parse_iso(rec.status.updated_at)
                if ended is not None and ended <= cutoff:
                    yield rec


def _pulled(area: SafeDir, task_id: str) -> bool:
    """Whether spoold read the task's final outputs (see the module's docstring).  A task
    without an outbox has nothing to pull."""
    try:
        outbox = area.sub(OUTBOX)
    except FileNotFoundError:
        return True
    with outbox:
        try:
            d = outbox.sub(task_id)
        except FileNotFoundError:
            return True
        with d:
            for name in (OUTPUTS_FILE, statusfile.STATUS):
                try:
                    st = d.lstat(name)
                except FileNotFoundError:
                    continue
                return st.st_atime_ns > st.st_mtime_ns
    return True


def _remove(area: SafeDir, task_id: str) -> int:
    """Remove ``tasks/<id>`` and ``outbox/<id>`` below the student's area; the bytes that
    freed (files shared by hard links with other tasks are not counted)."""
    tops: list[tuple[SafeDir, SafeDir]] = []
    try:
        for name in (TASKS, OUTBOX):
            try:
                parent = area.sub(name)
            except FileNotFoundError:
                continue
            try:
                tops.append((parent, parent.sub(task_id)))
            except FileNotFoundError:
                parent.close()
        freed = walk(*(d for _p, d in tops)).total(only_new=True)
        for parent, d in tops:
            d.close()
            parent.remove(task_id)
        return freed
    finally:
        for parent, d in tops:
            d.close()
            parent.close()


def _names(d: Path) -> list[str]:
    try:
        return sorted(os.listdir(d))
    except (FileNotFoundError, NotADirectoryError):
        return []
