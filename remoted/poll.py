"""Polling: what the scheduler says of launched jobs becomes the tasks' state.

A scheduler reports in the task vocabulary (``JobState``); remoted records a report only
when it says something new, and only as a transition the state machine allows
(``task.transition``): a result file is the student's word about their own task, and a
forged one that claims the impossible is ignored, never the pass for everyone.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ailabber.model.task import PENDING, RUNNING, IllegalTransition
from remoted.cancel import USER_CANCEL, ended_by, send_cancel
from remoted.publish import ActiveTasks
from remoted.records import LAUNCHED, TaskRecord
from remoted.schedulers.base import JobState, Scheduler, SchedulerUnavailable

log = logging.getLogger("remoted")


def poll(tasks: ActiveTasks, scheduler: Scheduler) -> dict[tuple[str, str], JobState]:
    """Ask the scheduler about every launched job, apply each report, then let the
    scheduler enforce the limits it keeps itself (the local time-limit backstop).  The
    reports, by (user, task id): what they say beyond the state (a pending job's expected
    start) is shown, never recorded."""
    launched = [r for r in tasks.in_phase(LAUNCHED) if r.handle]
    if not launched:
        return {}
    for rec in launched:
        if rec.cancel_requested and not rec.cancel_sent:
            send_cancel(tasks, scheduler, rec)
    try:
        states = scheduler.poll([r.handle for r in launched])  # type: ignore[misc]
    except SchedulerUnavailable as exc:
        log.warning("scheduler unavailable: %s", exc)
        return {}
    reports: dict[tuple[str, str], JobState] = {}
    for rec in launched:
        js = states.get(rec.handle.job_id)  # type: ignore[union-attr]
        if js is None:
            continue
        reports[(rec.user, rec.id)] = js
        try:
            apply_state(tasks, rec, js)
        except IllegalTransition as exc:
            # e.g. a result record the student forged: ignore it, keep serving everyone.
            log.warning("%s/%s: ignoring an impossible report from the job: %s", rec.user, rec.id, exc)
        except Exception:  # noqa: BLE001 - one task's report never stops the pass for everyone
            log.exception("%s/%s: cannot apply the job's report", rec.user, rec.id)
    scheduler.enforce_limits(tasks.launched_handles(), time.time())
    return reports


def apply_state(tasks: ActiveTasks, rec: TaskRecord, js: JobState) -> None:
    """Record what the scheduler reports of one job, if it is news."""
    fields: dict[str, Any] = {}
    if js.exit_code is not None:
        fields["exit_code"] = js.exit_code
    if js.message:
        fields["message"] = js.message
    if js.started_at and not rec.status.started_at:
        fields["started_at"] = js.started_at
    if js.state == PENDING and rec.status.state == RUNNING and js.reason != "requeued":
        return  # a requeue is reported by the scheduler explicitly, never guessed
    reason = js.reason
    if reason == USER_CANCEL:             # the scheduler cannot tell who asked; the record can
        reason, fields["message"] = ended_by(rec, fields.get("message"))
    if js.state == rec.status.state and reason == rec.status.reason:
        return
    tasks.change(rec, js.state, reason, **fields)
