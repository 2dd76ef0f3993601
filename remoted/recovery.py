"""Recovery: finishing what a crash (or a failed write) left half done.

Every decision is written to a task's record before it is acted on, so after a restart
the record says what was under way, and these functions finish it on every pass (a write
that failed earlier leaves the same traces as a crash):

- ``phase: accepting``: the upload was checked and the intent recorded, and maybe renamed
  into ``tasks/`` already.  While its commit marker is there, intake's next scan finishes
  the accept; once the marker is gone, ``finish_orphaned_accepts`` does.
- ``phase: launching``: the scheduler may or may not have started the job; it is asked
  (``Scheduler.find``), and the job adopted if it exists, queued again if it does not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ailabber.model.task import CANCELED
from remoted.cancel import ended_by, send_cancel
from remoted.intake import Intake
from remoted.publish import ActiveTasks
from remoted.records import ACCEPTING, LAUNCHED, LAUNCHING, QUEUED
from remoted.schedulers.base import Scheduler, SchedulerUnavailable

log = logging.getLogger("remoted")


def finish_orphaned_accepts(tasks: ActiveTasks, intake: Intake) -> None:
    """A task renamed into tasks/ whose marker then vanished still gets its record."""
    for key, rec in list(tasks.active.items()):
        if rec.phase != ACCEPTING:
            continue
        try:
            new = intake.finish_orphan(rec)
        except OSError as exc:
            log.debug("%s/%s: finishing the accept failed; next pass retries: %s", rec.user, rec.id, exc)
            continue
        tasks.active.pop(key, None)
        if new is not None and not new.status.terminal:
            tasks.accepted(new)


def recover_launching(tasks: ActiveTasks, scheduler: Scheduler,
                      submitting: Callable[[tuple[str, str]], bool]) -> None:
    """A crash between "launching" and "launched": adopt the job if it exists.  Tasks
    whose submission is ``submitting`` in this very pass are not a crash's leftovers."""
    for key, rec in list(tasks.active.items()):
        if rec.phase != LAUNCHING or rec.spec is None or submitting(key):
            continue
        try:
            handle = scheduler.find(rec.spec)
        except SchedulerUnavailable as exc:
            log.warning("%s/%s: cannot check whether it was started yet: %s", rec.user, rec.id, exc)
            continue
        # A change that cannot be written leaves the task launching: the next pass asks again.
        if handle is None and rec.cancel_requested:
            reason, message = ended_by(rec)
            tasks.change(rec, CANCELED, reason, message=message)
        elif handle is None:
            if tasks.commit(rec, None, phase=QUEUED):
                log.info("%s/%s: was never started; queueing it again", rec.user, rec.id)
        elif tasks.commit(rec, None, phase=LAUNCHED, handle=handle):
            log.info("%s/%s: adopted job %s started before a restart", rec.user, rec.id, handle.job_id)
            if rec.cancel_requested:
                send_cancel(tasks, scheduler, rec)
