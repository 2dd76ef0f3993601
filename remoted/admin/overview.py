"""The course at a glance, as the staff's dashboard shows it: the queue in the order
remoted offers it to the scheduler and why each task waits, the jobs running and the
GPUs they hold, and the recent failures.

Derived from remoted's records only (``course.course_rows``), never from a student's
directory.  The queue is ``remoted.queue.fair_order`` over the queued records with the
running tasks per student, as ``launch.Launcher.queue_order`` computes it; remoted also
breaks ties by whom it served last, which lives in its memory only, so between students
with as many tasks running the order here is that of their oldest task.  Pure: rows in,
values out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from ailabber.model.task import FAILED, PENDING, RUNNING, explain, parse_iso
from remoted.admin.course import TaskRow
from remoted.queue import fair_order
from remoted.records import LAUNCHED, LAUNCHING, QUEUED, TaskRecord

#: How far back the failures shown go, and how many at most.
FAILURES_SINCE = 7 * 86400.0
MAX_FAILURES = 50


class Waiting(NamedTuple):
    row: TaskRow
    place: int | None           # 1: the next one remoted offers; None: waiting in the scheduler's own queue
    why: str


class Holding(NamedTuple):
    row: TaskRow
    node: str
    gpus: str                   # the GPUs held: their numbers where the record has them, else how many


class Overview(NamedTuple):
    queue: list[Waiting]
    running: list[Holding]
    failures: list[TaskRow]
    counts: dict[str, int]      # state -> tasks in it
    students: int


def why_waiting(row: TaskRow) -> str:
    """The reason in words, and remoted's message for it (a limit and its use, the GPUs free)."""
    st = row.record.status
    words = f"{st.reason}: {explain(st.reason)}" if st.reason else "waiting"
    return f"{words} ({st.message})" if st.message else words


def in_fair_order(rows: Sequence[TaskRow]) -> list[TaskRow]:
    """The queued rows in the order the next pass offers them to the scheduler."""
    active = [r for r in rows if not r.finished]
    running: dict[str, int] = {}
    for r in active:
        if r.record.phase in (LAUNCHING, LAUNCHED):
            running[r.user] = running.get(r.user, 0) + 1
    queued = {(r.user, r.id): r for r in active if r.record.phase == QUEUED and r.record.spec is not None}
    order = fair_order([r.record for r in queued.values()], running)
    return [queued[(rec.user, rec.id)] for rec in order if isinstance(rec, TaskRecord)]


def held(row: TaskRow, local_node: str | None) -> Holding:
    """Where the job runs and which GPUs it holds, as far as its record says: the local
    scheduler's handle lists the GPU numbers (its node is remoted's own machine,
    ``local_node``); a Slurm handle names the node only if remoted recorded it."""
    data = row.record.handle.data if row.record.handle is not None else {}
    numbers = data.get("gpus")
    if isinstance(numbers, list) and all(isinstance(g, int) for g in numbers):
        gpus = ",".join(map(str, numbers)) if numbers else "none"
    else:
        gpus = str(row.gpus) if row.gpus else "none"
    nodes = data.get("nodes")
    node = nodes if isinstance(nodes, str) and nodes else (local_node or "not recorded")
    return Holding(row, node, gpus)


def overview(rows: Sequence[TaskRow], now: float, local_node: str | None) -> Overview:
    """``local_node``: the machine the jobs run on under the local scheduler (None under Slurm)."""
    queue = [Waiting(r, i + 1, why_waiting(r)) for i, r in enumerate(in_fair_order(rows))]
    placed = {(w.row.user, w.row.id) for w in queue}
    queue += [Waiting(r, None, why_waiting(r)) for r in rows
              if not r.finished and r.record.status.state == PENDING and (r.user, r.id) not in placed]
    running = sorted((held(r, local_node) for r in rows if not r.finished and r.record.status.state == RUNNING),
                     key=lambda h: (h.node, h.row.record.status.started_at or "", h.row.id))
    failures = [r for r in rows if r.record.status.state == FAILED
                and now - (parse_iso(r.record.status.finished_at) or 0.0) <= FAILURES_SINCE]
    failures.sort(key=lambda r: r.record.status.finished_at or "", reverse=True)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.record.status.state] = counts.get(r.record.status.state, 0) + 1
    return Overview(queue, running, failures[:MAX_FAILURES], counts, len({r.user for r in rows}))
