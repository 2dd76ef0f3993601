"""What remoted tells each student about the queue: where their waiting tasks stand
(``outbox/queue.json``) and the job limits with their current use (in ``limits.json``).

Both are views derived from the records at the end of a pass, never states: nothing is
recorded for them, they change without an event, and they are written only when they say
something new, so that a pass in which nothing moved writes nothing.  The start bounds of
remoted's own queue (``remoted.estimate``) are replayed only when the queue or the jobs
holding GPUs changed, and for the first ``MAX_ESTIMATED`` tasks of the queue.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Hashable
from pathlib import Path

from ailabber.daemonkit.remoted_settings import UserLimits
from ailabber.model.joblimits import JobLimits
from ailabber.model.queueinfo import SCHEDULER, UPPER_BOUND, QueueEntry, queue_document
from ailabber.model.remote_layout import OUTBOX, QUEUE_FILE, USERS
from ailabber.model.task import PENDING, RUNNING, parse_iso
from ailabber.storage.safedir import SafeDir
from remoted.estimate import Holding, Waiting, start_bounds
from remoted.holds import HoldEntry
from remoted.outage import WriteTrouble, passing
from remoted.publish import ActiveTasks
from remoted.records import LAUNCHED, LAUNCHING, QUEUED, TaskRecord
from remoted.schedulers.base import JobState

log = logging.getLogger("remoted")

#: Tasks at the head of remoted's queue whose start is bounded; the rest show their place only.
MAX_ESTIMATED = 200

Key = tuple[str, str]     # (user, task id)


class QueueView:
    """Publishes ``outbox/queue.json`` for every student with waiting tasks."""

    def __init__(self, root: Path, trouble: WriteTrouble):
        self.root = root
        self.trouble = trouble
        self._written: dict[str, bytes] = {}            # user -> what their queue.json says
        self._expected: dict[Key, float] = {}           # the scheduler's estimates, from the last poll
        self._signature: tuple[object, ...] | None = None
        self._bounds: dict[Hashable, float] = {}

    def heard(self, reports: dict[Key, JobState]) -> None:
        """Keep what the scheduler expects of its pending jobs (Slurm's start times)."""
        for key, js in reports.items():
            if js.state == PENDING and js.expected_start is not None:
                self._expected[key] = js.expected_start
            else:
                self._expected.pop(key, None)

    def entries(self, tasks: ActiveTasks, order: list[TaskRecord], slots: int | None,
                limits: Callable[[str], UserLimits], kill_grace: float, now: float,
                held: Callable[[str], HoldEntry | None]) -> dict[Key, QueueEntry]:
        """Every waiting task's entry: remoted's queue in ``order``, with the start bounds
        where remoted hands out the GPUs (``slots``); the scheduler's pending jobs with the
        start it expects; the tasks the staff hold (``held``), with their message."""
        self._expected = {k: t for k, t in self._expected.items()
                          if (rec := tasks.active.get(k)) is not None and rec.phase == LAUNCHED}
        bounds = self._start_bounds(tasks, order, slots, limits, kill_grace, now) if slots is not None else {}
        out: dict[Key, QueueEntry] = {}
        for i, rec in enumerate(order):
            key = (rec.user, rec.id)
            start = bounds.get(key)
            out[key] = QueueEntry(i + 1, i, len(order), start, UPPER_BOUND if start is not None else None)
        for key, start in self._expected.items():
            out[key] = QueueEntry(start_by=start, start_kind=SCHEDULER)
        for rec in tasks.in_phase(QUEUED):
            hold = held(rec.user)
            if hold is not None:
                out[(rec.user, rec.id)] = QueueEntry(held=True, hold_message=hold.message)
        return out

    def _start_bounds(self, tasks: ActiveTasks, order: list[TaskRecord], slots: int,
                      limits: Callable[[str], UserLimits], kill_grace: float, now: float) -> dict[Hashable, float]:
        holding_recs = [r for r in tasks.in_phase(LAUNCHING, LAUNCHED) if r.spec is not None]
        head = order[:MAX_ESTIMATED]
        users = sorted({r.user for r in holding_recs + head})
        caps = {u: (limits(u).max_running, limits(u).max_gpus) for u in users}
        signature = (slots, tuple(caps.items()), kill_grace,
                     tuple((r.user, r.id, r.status.started_at) for r in holding_recs),
                     tuple((r.user, r.id) for r in head))
        if signature == self._signature:
            return self._bounds
        holding = []
        for r in holding_recs:
            assert r.spec is not None
            began = parse_iso(r.status.started_at) if r.status.state == RUNNING else None
            holding.append(Holding(r.user, r.spec.gpus, (began or now) + r.spec.time_limit_s + kill_grace))
        waiting = [Waiting((r.user, r.id), r.user, r.spec.gpus, r.spec.time_limit_s + kill_grace)
                   for r in head if r.spec is not None]
        self._bounds = start_bounds(waiting, holding, slots, now, caps=caps)
        self._signature = signature
        return self._bounds

    def publish(self, entries: dict[Key, QueueEntry]) -> None:
        """queue.json for each student whose view changed (emptied too: a student whose
        last task left the queue is told so once)."""
        by_user: dict[str, dict[str, QueueEntry]] = {}
        for (user, task_id), entry in entries.items():
            by_user.setdefault(user, {})[task_id] = entry
        for user in sorted(set(by_user) | set(self._written)):
            body = (json.dumps(queue_document(by_user.get(user, {})), sort_keys=True) + "\n").encode()
            if self._written.get(user) == body:
                continue
            try:
                self._write(user, body)
            except OSError as exc:
                if passing(exc):
                    self.trouble.failed("queue.json", exc)     # written on a later pass
                else:      # the student's own doing: costs them the view, nobody else anything
                    log.debug("%s: cannot write queue.json: %s", user, exc)
                continue
            self.trouble.ok("queue.json")
            if user in by_user:
                self._written[user] = body
            else:
                self._written.pop(user, None)

    def _write(self, user: str, body: bytes) -> None:
        root_uid = 0 if os.geteuid() == 0 else None
        with SafeDir.open(self.root / USERS) as users, users.sub(user) as area, \
                area.sub(OUTBOX, create=True, owner=root_uid, replace_bad=True) as outbox:
            outbox.write_atomic(QUEUE_FILE, body)


class JobUse:
    """The job limits and each student's current use, as limits.json publishes them;
    counted once per change of the records, not once per student."""

    def __init__(self, tasks: ActiveTasks):
        self.tasks = tasks
        self._at: tuple[int, int] | None = None
        self._use: dict[str, JobLimits] = {}

    def of(self, user: str, limits: UserLimits, slots: int | None) -> JobLimits:
        at = (self.tasks.store.writes, len(self.tasks.active))
        if at != self._at:
            self._use = self._count()
            self._at = at
        caps = [c for c in (slots, limits.max_gpus) if c is not None]
        use = self._use.get(user, JobLimits(running=0, pending=0, launched=0, queued=0, gpus_in_use=0))
        return use._replace(max_gpus_per_task=min(caps) if caps else None,
                            max_time_limit_s=limits.max_time_limit, max_memory_mb=limits.max_memory,
                            max_running=limits.max_running, max_gpus=limits.max_gpus,
                            max_queued=limits.max_queued)

    def _count(self) -> dict[str, JobLimits]:
        counts: dict[str, list[int]] = {}      # user -> running, pending, launched, queued, GPUs in use
        for rec in self.tasks.active.values():
            c = counts.setdefault(rec.user, [0, 0, 0, 0, 0])
            c[0] += rec.status.state == RUNNING
            c[1] += rec.status.state == PENDING
            if rec.phase in (LAUNCHING, LAUNCHED):
                c[2] += 1
                c[4] += rec.spec.gpus if rec.spec else 0
            c[3] += rec.phase == QUEUED
        return {u: JobLimits(running=c[0], pending=c[1], launched=c[2], queued=c[3], gpus_in_use=c[4])
                for u, c in counts.items()}
