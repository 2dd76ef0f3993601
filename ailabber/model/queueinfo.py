"""Where a waiting task stands on the cluster: its place in remoted's queue and when it
may start.

remoted writes one ``QueueEntry`` per waiting task of a student into that student's
``outbox/queue.json``; spoold pulls it with the statuses, and ``status``, ``list`` and
``wait`` show it beside the task's status.  It is a view, not a state: it changes without
an event, and an entry for a task that is no longer waiting means nothing.

Pure: values in, values out.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ailabber.model.task import now_iso, parse_iso

#: ``start_kind``: remoted's own bound (local scheduler: the time limits of the tasks
#: ahead), or the scheduler's estimate (Slurm's, as ``squeue --start`` shows it).
UPPER_BOUND, SCHEDULER = "upper_bound", "scheduler"


class QueueEntry(NamedTuple):
    position: int | None = None        # 1: the next task remoted offers to the scheduler
    ahead: int | None = None           # tasks of the course queue ahead of this one
    length: int | None = None          # tasks in the course queue
    start_by: float | None = None      # epoch seconds: the start, at the latest or as estimated
    start_kind: str | None = None      # UPPER_BOUND or SCHEDULER
    held: bool = False                 # held by course staff: not in the queue until released
    hold_message: str | None = None    # ... and what they said

    def to_dict(self) -> dict[str, Any]:
        """The fields as ``status --json`` shows them (and queue.json holds them)."""
        d: dict[str, Any] = {"held": True, "hold_message": self.hold_message} if self.held else {}
        if self.position is not None:
            d.update(queue_position=self.position, queue_ahead=self.ahead, queue_length=self.length)
        if self.start_by is not None:
            d.update(start_estimate=now_iso(self.start_by), start_estimate_kind=self.start_kind)
        return d

    @classmethod
    def from_dict(cls, d: Any) -> QueueEntry | None:
        """None for anything malformed: the entry is only ever a hint."""
        if not isinstance(d, dict):
            return None

        def num(key: str) -> int | None:
            v = d.get(key)
            return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None

        start = parse_iso(d.get("start_estimate"))
        kind = d.get("start_estimate_kind")
        message = d.get("hold_message")
        entry = cls(num("queue_position"), num("queue_ahead"), num("queue_length"), start,
                    kind if start is not None and kind in (UPPER_BOUND, SCHEDULER) else None,
                    d.get("held") is True, message if isinstance(message, str) else None)
        return entry if entry.position is not None or entry.start_by is not None or entry.held else None


def queue_document(entries: dict[str, QueueEntry]) -> dict[str, Any]:
    """queue.json's content: every waiting task of one student, by id."""
    return {"version": 1, "tasks": {task_id: e.to_dict() for task_id, e in sorted(entries.items())}}


def parse_queue_document(doc: Any) -> dict[str, QueueEntry]:
    tasks = doc.get("tasks") if isinstance(doc, dict) else None
    if not isinstance(tasks, dict):
        return {}
    out = {}
    for task_id, d in tasks.items():
        entry = QueueEntry.from_dict(d)
        if isinstance(task_id, str) and entry is not None:
            out[task_id] = entry
    return out
