"""A task's history as remoted recorded it, and the rule for when its job ran.

Pure: a record's ``history`` (the events remoted published, kept in its record) and
status in, typed values out.  ``admin show`` prints the events; ``admin tasks``, ``admin
usage`` and the staff's web page count run time with ``runs``, so that every view of the
course says the same.

When a job ran is taken from remoted's own clock, not from the job: a run is a span the
history shows the task ``running``, from the event that said so (the poll that first saw
the job run) to the next event that says otherwise (the poll that saw it end).  The
job's own ``started_at`` comes from ``started.json``, which the student's job writes and
could move to shrink what they are counted; it is used only for a job that began and
ended between two of remoted's polls (no ``running`` event), and then kept between the
launch and the end remoted saw.  Both ends are late by at most a poll, so a run is
within about one ``poll_interval`` of the job's real length (see docs/admin-guide.md,
"Usage reports").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from ailabber.model.task import RUNNING, TaskStatus, parse_iso


class Event(NamedTuple):
    """One line of a task's history (``events.jsonl``'s fields)."""

    at: str                       # remoted's clock, ISO UTC as written
    t: float                      # the same, in epoch seconds
    seq: int
    state: str
    reason: str | None
    message: str | None
    exit_code: int | None
    job_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "seq": self.seq, "state": self.state, "reason": self.reason,
                "message": self.message, "exit_code": self.exit_code, "job_id": self.job_id}


class Run(NamedTuple):
    """A span the task's job held its resources (epoch seconds)."""

    start: float
    end: float

    def within(self, since: float | None, until: float | None) -> float:
        """Seconds of this run inside ``[since, until)`` (None: unbounded on that side)."""
        lo = self.start if since is None else max(self.start, since)
        hi = self.end if until is None else min(self.end, until)
        return max(0.0, hi - lo)


def events(history: Iterable[dict[str, Any]] | None) -> list[Event]:
    """The events of a record's history that can be read, in order; [] for a record kept
    without one (``history: null``)."""
    out: list[Event] = []
    for d in history or ():
        t = parse_iso(d.get("at"))
        state = d.get("state")
        if t is None or not isinstance(state, str):
            continue
        seq, reason, message, code, job = (d.get(k) for k in ("seq", "reason", "message", "exit_code", "job_id"))
        out.append(Event(str(d["at"]), t, seq if isinstance(seq, int) else 0, state,
                         reason if isinstance(reason, str) else None, message if isinstance(message, str) else None,
                         code if isinstance(code, int) and not isinstance(code, bool) else None,
                         str(job) if isinstance(job, (str, int)) and not isinstance(job, bool) else None))
    return out


def runs(evs: list[Event], status: TaskStatus, kept: bool, now: float) -> list[Run]:
    """When the task's job ran (module docstring).  ``kept``: the record keeps a history
    (False: an older record, whose runs are the status's ``started_at`` to its end, the
    job's word and all).  A run not yet over ends ``now``."""
    end = parse_iso(status.finished_at) if status.terminal else None
    if not kept:
        start = parse_iso(status.started_at)
        return [] if start is None else [Run(start, max(start, end if end is not None else now))]
    out: list[Run] = []
    begin: float | None = None
    for e in evs:
        if e.state == RUNNING:
            begin = e.t if begin is None else begin
        elif begin is not None:
            out.append(Run(begin, max(begin, e.t)))
            begin = None
    if begin is not None:
        out.append(Run(begin, max(begin, end if end is not None else now)))
    if out or end is None:
        return out
    claimed = parse_iso(status.started_at)
    if claimed is None:
        return []                  # never started: cancelled or refused while waiting
    launched = next((e.t for e in evs if e.reason == "launching"), None)
    start = min(max(claimed, launched if launched is not None else claimed), end)
    return [Run(start, end)]


def seconds(rs: Iterable[Run], since: float | None = None, until: float | None = None) -> float:
    """The runs' length together, inside ``[since, until)``."""
    return sum(r.within(since, until) for r in rs)


def gaps(evs: list[Event]) -> list[tuple[int, int]]:
    """``(after, count)``: events left out of the record after the event at position
    ``after`` (remoted keeps the first and the latest ones: records.MAX_HISTORY)."""
    return [(i, b.seq - a.seq - 1) for i, (a, b) in enumerate(zip(evs, evs[1:])) if b.seq - a.seq > 1]
