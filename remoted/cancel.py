"""Cancel requests: a file ``users/<u>/requests/<id>.cancel`` asks remoted to cancel the
task ``<id>`` of that same student, and of no one else.  Course staff cancel any task
through the same ``cancel`` (``remoted.admin_acts``), which records that they did, so that
the task ends with the reason ``canceled_by_staff`` and their message (``ended_by``).

The request file is removed only once the cancel is recorded (``cancel_requested`` in the
task's record), so a cancel that cannot be written yet (a full disk) is simply carried out
on a later pass.  Requests are handled before anything is launched in a pass: a task
cancelled while queued is never submitted.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from ailabber.model.remote_layout import REQUESTS, USERS, UserArea
from ailabber.model.task import CANCELED
from ailabber.storage.safedir import SafeDir
from remoted.intake import upload_pending
from remoted.publish import ActiveTasks
from remoted.records import QUEUED, TaskRecord
from remoted.schedulers.base import Scheduler, SchedulerUnavailable

log = logging.getLogger("remoted")

USER_CANCEL, STAFF_CANCEL = "canceled_by_user", "canceled_by_staff"


def handle_cancel_requests(root: Path, area: UserArea, tasks: ActiveTasks, scheduler: Scheduler) -> None:
    """Carry out one student's cancel requests.  A request for a task whose upload is
    still in the student's ``incoming/`` (its marker landed after this scan) is kept for
    the pass that accepts it; any other request for an unknown task is removed."""
    try:
        with SafeDir.open(root / USERS) as users, users.sub(area.user) as adir, adir.sub(REQUESTS) as req:
            for name in req.listdir():
                task_id, _, kind = name.rpartition(".")
                if name.startswith(".") or kind != "cancel":
                    continue
                rec = tasks.active.get((area.user, task_id))   # only your own tasks
                try:
                    st = req.lstat(name)
                    if rec is None and upload_pending(adir, task_id):
                        continue
                    if rec is not None and not cancel(tasks, scheduler, rec):
                        continue        # not recorded yet: the request stays for the next pass
                    if stat.S_ISDIR(st.st_mode):
                        os.rmdir(name, dir_fd=req.fd)
                    else:
                        os.unlink(name, dir_fd=req.fd)
                except OSError as exc:
                    log.debug("%s: cannot handle request %s: %s", area.user, name, exc)
    except FileNotFoundError:
        return
    except OSError as exc:
        log.debug("%s: requests unreadable: %s", area.user, exc)


def cancel(tasks: ActiveTasks, scheduler: Scheduler, rec: TaskRecord, *, by_staff: bool = False,
           message: str | None = None) -> bool:
    """Carry out a cancel request; False if it could not be recorded (yet).  A queued task
    ends at once.  Otherwise the record says so first (from then on the request is remoted's
    to keep), then the scheduler is told (``send_cancel``).  ``by_staff``: course staff
    asked, with ``message`` for the student; a student's own later request changes nothing."""
    staff: dict[str, object] = {"cancel_by_staff": True, "cancel_message": message} if by_staff else {}
    if rec.phase == QUEUED:
        reason, text = (STAFF_CANCEL, message) if by_staff else (USER_CANCEL, None)
        return tasks.change(rec, CANCELED, reason, message=text, also={"cancel_requested": True, **staff})
    recorded = rec.cancel_requested and (rec.cancel_by_staff or not by_staff)
    if not recorded and not tasks.commit(rec, None, cancel_requested=True, files=None, **staff):
        return False
    send_cancel(tasks, scheduler, rec)
    return True


def ended_by(rec: TaskRecord, message: str | None = None) -> tuple[str, str | None]:
    """The reason and message a cancelled task ends with: the staff's, if they asked for
    the cancel, else the student's (with the scheduler's ``message``, if any)."""
    if rec.cancel_by_staff:
        return STAFF_CANCEL, rec.cancel_message
    return USER_CANCEL, message


def send_cancel(tasks: ActiveTasks, scheduler: Scheduler, rec: TaskRecord) -> None:
    """Tell the scheduler to end a job whose cancel is recorded, unless it already took it.
    A scheduler that cannot be asked now (``SchedulerUnavailable``) is asked again by the
    next poll, which sends every recorded cancel not yet sent; a task still launching has
    no job yet, and gets the cancel as soon as its launch is recorded."""
    if rec.handle is None or rec.cancel_sent:
        return
    try:
        scheduler.cancel(rec.handle)
    except SchedulerUnavailable as exc:
        log.warning("%s/%s: cancel not sent yet, the scheduler did not answer: %s", rec.user, rec.id, exc)
        return
    tasks.commit(rec, None, handle=rec.handle, cancel_sent=True)   # the scheduler may note it in the handle
