"""What remoted publishes into a student's area, and the rule that comes before it.

A task's state changes in one way only (``ActiveTasks.change``/``commit``): written to the
task's trusted record first, taken in memory second, published to the student's
``outbox/<id>/`` third.  The public status is an output, never read back as input, so a
write that fails (a full disk) changes nothing at all, and the next pass derives the
change again from what is still there to see.  Publishing itself is retried by the
store's ``Outbox``.

``PublishedLimits`` writes ``users/<u>/limits.json``, so that the student's client checks
sizes, the disk left and what a task may ask for before it sends anything.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

from ailabber.model.joblimits import JobLimits
from ailabber.model.task import TaskStatus, transition
from ailabber.storage.safedir import SafeDir
from ailabber.storage.upload_limits import LIMITS_FILE, UploadLimits
from remoted.outage import WriteTrouble, passing
from remoted.outputs import final_files
from remoted.quota import DiskUsage
from remoted.records import LAUNCHED, LAUNCHING, QUEUED, RecordStore, TaskRecord
from remoted.schedulers.base import JobHandle

log = logging.getLogger("remoted")


class ActiveTasks:
    """The unfinished tasks remoted holds in memory, and the one way their state changes."""

    def __init__(self, store: RecordStore):
        self.store = store
        #: (user, id) -> record: ids are unique per user.
        self.active: dict[tuple[str, str], TaskRecord] = {}
        #: Accepted this pass, queued in memory; on disk still the accept intent.
        self._unsaved: set[tuple[str, str]] = set()

    def in_phase(self, *phases: str) -> list[TaskRecord]:
        return [r for r in self.active.values() if r.phase in phases]

    def launched_per_user(self) -> tuple[dict[str, int], dict[str, int]]:
        """Per user: the tasks handed to the scheduler (launching or launched), and their
        GPUs together: what the per-user limits count."""
        tasks: dict[str, int] = {}
        gpus: dict[str, int] = {}
        for r in self.in_phase(LAUNCHING, LAUNCHED):
            tasks[r.user] = tasks.get(r.user, 0) + 1
            gpus[r.user] = gpus.get(r.user, 0) + (r.spec.gpus if r.spec else 0)
        return tasks, gpus

    def launched_handles(self) -> list[JobHandle]:
        """The jobs the scheduler runs for remoted now (what ``check`` and ``submit`` weigh)."""
        return [r.handle for r in self.active.values() if r.phase == LAUNCHED and r.handle]

    def accepted(self, rec: TaskRecord) -> None:
        """Hold a task intake accepted in this pass.  Its queued record is written at the
        end of the pass (``save_unlaunched``) unless a launch intent replaces it first."""
        key = (rec.user, rec.id)
        self.active[key] = rec
        self._unsaved.add(key)

    def save_unlaunched(self) -> None:
        """Save the queued records of tasks accepted this pass and not launched in it.  A
        burst's tasks are launched in the pass that accepts them, and their launch intent
        is then the only record written after the accept's: one write per task less.  A
        record that cannot be written yet is tried again next pass; meanwhile its accept
        intent on disk stands for it."""
        left: set[tuple[str, str]] = set()
        for key in self._unsaved:
            rec = self.active.get(key)
            if rec is None or rec.phase != QUEUED or rec.status.terminal:
                continue
            try:
                self.store.save(rec)
            except OSError:
                left.add(key)
        self._unsaved = left

    def change(self, rec: TaskRecord, state: str, reason: str | None, *,
               also: dict[str, object] | None = None, **fields: object) -> bool:
        """Record a state change, together with the record fields in ``also``, as one
        write; then publish it.  False if it could not be written: then nothing changed,
        in memory either, and the caller's next pass derives the change again."""
        changes: dict[str, object] = dict(also or {})
        event = None
        if not (rec.status.state == state and rec.status.reason == reason
                and fields.get("message") == rec.status.message and "job_id" not in fields):
            changes["status"], event = transition(rec.status, state, reason, **fields)  # type: ignore[arg-type]
        if not changes:
            return True
        status = changes.get("status")
        final = isinstance(status, TaskStatus) and status.terminal
        if not self.commit(rec, event, files=final_files(self.store.root, rec) if final else None, **changes):
            return False
        if rec.status.terminal:
            self.active.pop((rec.user, rec.id), None)
        if event is not None:
            log.info("%s/%s: %s%s", rec.user, rec.id, state, f" ({reason})" if reason else "")
        return True

    def commit(self, rec: TaskRecord, event: dict[str, object] | None, *, files: dict[str, bytes] | None = None,
               **changes: object) -> bool:
        """The one way a kept record changes: written first, then taken in memory, then
        published (``event`` and the outbox ``files`` with it).  ``event`` joins the
        record's history in the same write.  False, with ``rec`` untouched, if the write
        failed (the store logs that once per outage)."""
        if event is not None:
            changes["history"] = rec.with_event(event)
        try:
            self.store.save(rec, **changes)
        except OSError:
            return False
        if event is not None or files:
            self.store.publish(rec, event, files)
        return True


class PublishedLimits:
    """``limits.json`` in each student's area: the upload limits and the disk the student
    has left, rewritten only when it says something new."""

    def __init__(self, usage: DiskUsage, limits: Callable[[str], UploadLimits], trouble: WriteTrouble,
                 jobs: Callable[[str], JobLimits] | None = None):
        """``limits``: each user's upload limits; ``jobs``: the job limits and the user's
        current use (``remoted.queueview.JobUse``)."""
        self.usage = usage
        self.limits = limits
        self.trouble = trouble
        self.jobs = jobs
        self._written: dict[Path, bytes] = {}

    def publish(self, adir: SafeDir) -> None:
        """``limits.json`` in the user's area, so the client checks sizes before sending."""
        user = adir.path.name
        doc = self.usage.published(user, self.limits(user)).to_dict()
        if self.jobs is not None:
            doc.update(self.jobs(user).to_dict())
        body = (json.dumps(doc, sort_keys=True) + "\n").encode()
        if self._written.get(adir.path) == body:
            return
        try:
            fd = adir.open_file(LIMITS_FILE, os.O_RDONLY | os.O_NONBLOCK)
            try:
                st = os.fstat(fd)
                same = stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and os.read(fd, 4096) == body
            finally:
                os.close(fd)
        except OSError:
            same = False
        if not same:
            try:
                adir.write_atomic(LIMITS_FILE, body)
            except OSError as exc:
                if not passing(exc):
                    raise
                self.trouble.failed("limits.json", exc)    # written on a later pass
                return
            self.trouble.ok("limits.json")
        self._written[adir.path] = body
