"""Who used how much: the course's tasks summed per student over a window of time.

Pure: rows (``course.TaskRow``) and disk figures in, one ``StudentUsage`` per student and
their total out; ``admin usage`` prints them and the staff's web page draws them.  The
rules (docs/admin-guide.md, "Usage reports", says the same to staff):

- The window is ``[since, until)``; no ``since``: from the first task; no ``until``: now.
- A task's **run** is when its job held its resources, by remoted's clock
  (``history.runs``).  Only the part of a run inside the window counts: a job that
  started before ``since`` or is still running at ``until`` (or now) is clipped to it.
- **Wall time** is the sum of the clipped runs of a student's tasks (two jobs at once
  count twice); **GPU-hours** and **CPU-hours** weigh each task's clipped runs by the GPUs
  and CPUs it asked for (and held), not by what it used of them.
- A task counts under its **final state** when it ended inside the window; a task still
  running, or one that ended later, counts only by its time.
- **Disk** is not over a window: it is what remoted last measured of the student's area.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from ailabber.model.task import CANCELED, COMPLETED, FAILED, TERMINATED, parse_iso
from remoted.admin.course import TaskRow
from remoted.admin.history import seconds
from remoted.quota import DiskFigure

#: The final states, in the report's column order.
FINAL_STATES = (COMPLETED, FAILED, CANCELED, TERMINATED)


class Window(NamedTuple):
    """``[since, until)`` in epoch seconds; None: open on that side (until: now)."""

    since: float | None = None
    until: float | None = None

    def holds(self, t: float) -> bool:
        return (self.since is None or t >= self.since) and (self.until is None or t < self.until)


def week_start(now: float) -> float:
    """Monday 00:00 of the week holding ``now``, in this machine's time zone (the window
    of the staff's page)."""
    t = time.localtime(now)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday - t.tm_wday, 0, 0, 0, 0, 0, -1))


class StudentUsage(NamedTuple):
    user: str
    ended: dict[str, int]          # final state -> tasks that ended in it inside the window
    wall_s: float
    gpu_s: float
    cpu_s: float
    disk: DiskFigure | None        # None: remoted has not measured the area

    @property
    def gpu_hours(self) -> float:
        return self.gpu_s / 3600

    @property
    def cpu_hours(self) -> float:
        return self.cpu_s / 3600


def usage(rows: Iterable[TaskRow], window: Window, now: float,
          disk: Mapping[str, DiskFigure] | None = None) -> list[StudentUsage]:
    """One line per student who has a task on record (none in the window: zeros), by name."""
    until = now if window.until is None else min(window.until, now)
    sums: dict[str, list[float]] = {}
    ended: dict[str, dict[str, int]] = {}
    for r in rows:
        s = sums.setdefault(r.user, [0.0, 0.0, 0.0])
        counts = ended.setdefault(r.user, dict.fromkeys(FINAL_STATES, 0))
        st = r.record.status
        end = parse_iso(st.finished_at)
        if st.state in counts and end is not None and window.holds(end):
            counts[st.state] += 1
        ran = seconds(r.runs(now), window.since, until)
        s[0] += ran
        s[1] += ran * r.gpus
        s[2] += ran * r.cpus
    figures = disk or {}
    return [StudentUsage(u, ended[u], sums[u][0], sums[u][1], sums[u][2], figures.get(u)) for u in sorted(sums)]


def total(lines: Iterable[StudentUsage]) -> StudentUsage:
    """Every student's line added up; its disk, the areas measured (complete if all were)."""
    lines = list(lines)
    figs = [x.disk for x in lines if x.disk is not None]
    disk = DiskFigure(sum(f.bytes for f in figs), all(f.complete for f in figs),
                      min(f.measured_at for f in figs)) if figs else None
    return StudentUsage("TOTAL", {s: sum(x.ended[s] for x in lines) for s in FINAL_STATES},
                        sum(x.wall_s for x in lines), sum(x.gpu_s for x in lines), sum(x.cpu_s for x in lines), disk)
