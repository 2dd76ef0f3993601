"""What remoted does for each staff request: one handler per act, in one explicit table
(``HANDLERS``), each taking the parsed request and the name of who asked (checked by
``remoted.admin_requests`` before any handler runs).

A handler returns the outcome (done or failed, one line, a line per item), or None when
its change could not be recorded yet (a full disk): the request then stays and is carried
out on a later pass.  Every handler is idempotent: run again after a crash between the
act and its reply, it comes to the same.  The acts themselves live with what they change:
cancelling in ``remoted.cancel`` (the students' own path), holds in ``remoted.holds``
(enforced by ``remoted.launch``), limits in ``remoted.user_limits``, purging in
``remoted.purge``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

from ailabber.model.task import now_iso
from remoted.admin.requests import Cancel, Hold, Purge, Release, SetLimits
from remoted.cancel import STAFF_CANCEL, cancel
from remoted.holds import HoldEntry, Holds, HoldState
from remoted.publish import ActiveTasks
from remoted.purge import Purger
from remoted.records import QUEUED
from remoted.schedulers.base import Scheduler
from remoted.user_limits import CourseLimits, limit_text


class Outcome(NamedTuple):
    ok: bool
    message: str
    lines: tuple[str, ...] = ()


class Acts(NamedTuple):
    """What the handlers act on: remoted's own objects, shared with its pass."""
    tasks: ActiveTasks
    scheduler: Scheduler
    holds: Holds
    limits: CourseLimits
    purger: Purger


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


def hold(acts: Acts, req: Hold, who: str) -> Outcome | None:
    """Record the hold; from the next launch on, the students' queued tasks stay pending
    with the reason ``held`` and the message (``remoted.launch``)."""
    entry = HoldEntry(req.message, who, now_iso())
    old = acts.holds.state
    new = (old._replace(everyone=entry) if req.everyone
           else old._replace(users={**old.users, **{u: entry for u in req.users}}))
    if not _saved(acts.holds, new):
        return None
    whom = "the whole queue" if req.everyone else ", ".join(req.users)
    return Outcome(True, f"held {whom}: {_waiting(acts, None if req.everyone else req.users)} queued task(s) "
                         f"stay pending until released; running tasks go on")


def release(acts: Acts, req: Release, who: str) -> Outcome | None:
    """Lift holds: ``--all`` lifts the hold on the whole queue (each student's own hold
    stays, and is named); released tasks are launched on the next pass."""
    old = acts.holds.state
    if req.everyone:
        lifted = ["the whole queue"] if old.everyone else []
        new = old._replace(everyone=None)
    else:
        lifted = [u for u in req.users if u in old.users]
        new = old._replace(users={u: h for u, h in old.users.items() if u not in req.users})
    if new != old and not _saved(acts.holds, new):
        return None
    left = [f"still held: {line}" for line in new.lines()]
    if not lifted:
        return Outcome(True, "nothing to release: " + ("the queue is not held" if req.everyone
                                                        else f"{', '.join(req.users)} not held"), tuple(left))
    return Outcome(True, f"released {', '.join(lifted)}: queued tasks start on the next pass", tuple(left))


def set_limits(acts: Acts, req: SetLimits, who: str) -> Outcome | None:
    """Record one student's overrides; in force from the next pass (``CourseLimits.of``)."""
    new = acts.limits.overrides.changed(req.user, dict(req.values), req.defaults)
    if new != acts.limits.overrides:
        try:
            acts.limits.save(new)
        except OSError:
            return None
    now = acts.limits.of(req.user)
    base = acts.limits.base
    lines = [f"{key} = {limit_text(key, getattr(now, key))}" for key, _v in req.values]
    lines += [f"{key} = {limit_text(key, getattr(base, key))} (the course's again)" for key in req.defaults]
    return Outcome(True, f"{req.user}'s limits changed; in force from remoted's next pass", tuple(lines))


def purge(acts: Acts, req: Purge, who: str) -> Outcome | None:
    """Remove finished tasks' cluster-side files (``remoted.purge``); the records stay.
    Fails only if some task's files could not be removed."""
    report = acts.purger.purge(req.older_than_s, unpulled=req.unpulled, now=time.time())
    return Outcome(not report.failed, report.message(), tuple(report.lines()))


def _saved(holds: Holds, new: HoldState) -> bool:
    try:
        holds.save(new)
    except OSError:
        return False       # not recorded: the request stays for the next pass
    return True


def _waiting(acts: Acts, users: tuple[str, ...] | None) -> int:
    return sum(1 for r in acts.tasks.in_phase(QUEUED) if users is None or r.user in users)


#: act -> handler: the same acts as ``remoted.admin.requests.PARSERS``.
HANDLERS: dict[str, Callable[[Acts, Any, str], Outcome | None]] = {
    "cancel": cancel_tasks,
    "hold": hold,
    "release": release,
    "limits": set_limits,
    "purge": purge,
}
