"""What remoted does for each staff request: one handler per act, in one explicit table
(``HANDLERS``), each taking the parsed request and the name of who asked (checked by
``remoted.admin_requests`` before any handler runs).

A handler returns the outcome (done or failed, one line, a line per item), or None when
its change could not be recorded yet (a full disk): the request then stays and is carried
out on a later pass.  Every handler is idempotent: run again after a crash between the
act and its reply, it comes to the same.  The acts themselves live with what they change:
cancelling in ``remoted.cancel`` (the students' own path), holds in ``remoted.holds``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from remoted.admin.requests import Cancel
from remoted.cancel import STAFF_CANCEL, cancel
from remoted.publish import ActiveTasks
from remoted.schedulers.base import Scheduler


class Outcome(NamedTuple):
    ok: bool
    message: str
    lines: tuple[str, ...] = ()


class Acts(NamedTuple):
    """What the handlers act on: remoted's own objects, shared with its pass."""
    tasks: ActiveTasks
    scheduler: Scheduler


def cancel_tasks(acts: Acts, req: Cancel, who: str) -> Outcome | None:
    """Each task through the students' cancel (record first, then the scheduler), marked
    as the staff's with their reason.  A task that already ended is reported, not failed,
    when it ended by a staff cancel (this request's, before a crash)."""
    lines: list[str] = []
    failed = 0
    for ref in req.tasks:
        rec = acts.tasks.active.get((ref.user, ref.id))
        if rec is None:
            ended = acts.tasks.store.get(ref.user, ref.id)
            if ended is not None and ended.status.reason == STAFF_CANCEL:
                lines.append(f"{ref}: cancelled by course staff ({ended.status.state})")
                continue
            failed += 1
            lines.append(f"{ref}: no such task" if ended is None else f"{ref}: already {ended.status.state}")
            continue
        if not cancel(acts.tasks, acts.scheduler, rec, by_staff=True, message=req.reason):
            return None
        lines.append(f"{ref}: {rec.status.state}" if rec.status.terminal
                     else f"{ref}: being terminated (the scheduler was asked to end its job)")
    done = len(req.tasks) - failed
    if failed:
        return Outcome(False, f"cancelled {done} of {len(req.tasks)} task(s)", tuple(lines))
    return Outcome(True, f"cancelled {done} task(s)", tuple(lines))


#: act -> handler: the same acts as ``remoted.admin.requests.PARSERS``.
HANDLERS: dict[str, Callable[[Acts, Any, str], Outcome | None]] = {
    "cancel": cancel_tasks,
}
