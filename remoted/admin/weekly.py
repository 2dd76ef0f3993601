"""What each student used over a period, from remoted's records: GPU-hours, CPU-hours and
wall time of the jobs that ran in it, and the tasks that did.

A job counts for the part of its run (``started_at`` to ``finished_at``, or to now while
it runs) that falls inside the period, times the GPUs and CPUs its spec holds: what it
kept from everyone else, whatever it did with them.  Pure: rows and times in, figures out.
Written for the staff's dashboard (usage this week, as bars); ``admin usage`` can share it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import NamedTuple

from ailabber.model.task import parse_iso
from remoted.admin.course import TaskRow

HOUR = 3600.0


class Use(NamedTuple):
    user: str
    tasks: int = 0              # tasks whose job ran during the period
    gpu_hours: float = 0.0
    cpu_hours: float = 0.0
    wall_hours: float = 0.0


def week_start(now: float) -> float:
    """Monday 00:00 of the week holding ``now``, in this machine's time zone."""
    t = time.localtime(now)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday - t.tm_wday, 0, 0, 0, 0, 0, -1))


def ran_between(row: TaskRow, since: float, until: float, now: float) -> float:
    """Seconds of the task's job inside [since, until]; 0 if it never started."""
    st = row.record.status
    start = parse_iso(st.started_at)
    if start is None:
        return 0.0
    end = parse_iso(st.finished_at) if st.terminal else now
    end = now if end is None else end
    return max(0.0, min(end, until) - max(start, since))


def use_between(rows: Iterable[TaskRow], since: float, until: float, now: float) -> list[Use]:
    """Each student who ran something in [since, until], the most GPU-hours first (then
    CPU-hours, then name)."""
    totals: dict[str, list[float]] = {}
    for row in rows:
        seconds = ran_between(row, since, until, now)
        if seconds <= 0:
            continue
        spec = row.record.spec
        gpus, cpus = (spec.gpus, spec.cpus) if spec is not None else (0, 0)
        t = totals.setdefault(row.user, [0, 0.0, 0.0, 0.0])
        t[0] += 1
        t[1] += gpus * seconds / HOUR
        t[2] += cpus * seconds / HOUR
        t[3] += seconds / HOUR
    use = [Use(user, int(t[0]), t[1], t[2], t[3]) for user, t in totals.items()]
    return sorted(use, key=lambda u: (-u.gpu_hours, -u.cpu_hours, u.user))
