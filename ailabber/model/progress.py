"""A task on its way, in words: the upload's bytes, rate and time left, its place in the
queue and when it may start, and how long it has run of its time limit.

What ``status``, ``list`` and ``wait`` show beside the state.  Pure: the caller passes the
status, the queue entry (``queueinfo``), the time limit and the clock.
"""

from __future__ import annotations

import time
from typing import Any

from ailabber.model.queueinfo import UPPER_BOUND, QueueEntry
from ailabber.model.render import duration, size
from ailabber.model.task import PENDING, RUNNING, TaskStatus, explain, parse_iso

#: Reasons of a task not yet accepted by the cluster: no queue entry applies to them.
BEFORE_THE_CLUSTER = frozenset({"waiting_for_upload", "uploading", "uploaded"})


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def clock_time(t: float, now: float, relative: bool = True) -> str:
    """A moment as a person reads it: ``14:05 (in 12m)``, the date added beyond a day."""
    shown = time.strftime("%H:%M" if abs(t - now) < 86400 else "%Y-%m-%d %H:%M", time.localtime(t))
    if not relative:
        return shown
    return f"{shown} (in {duration(t - now)})" if t > now else f"{shown} (now)"


def upload(st: TaskStatus, short: bool = False) -> str | None:
    """``12.3 MB of 50.0 MB (24%), 1.2 MB/s, at most 31s left`` while spoold uploads."""
    if st.state != PENDING or st.reason != "uploading":
        return None
    total, sent = _int(st.extra.get("upload_bytes_total")), _int(st.extra.get("upload_bytes_sent"))
    if total is None or sent is None or st.extra.get("upload_progress_at") is None:
        return None
    pct = 100 * sent // total if total else 100
    parts = [f"{pct}%" if short else f"{size(sent)} of {size(total)} ({pct}%)"]
    rate, left = _int(st.extra.get("upload_rate")), _int(st.extra.get("upload_eta_s"))
    if rate:
        parts.append(f"{size(rate)}/s")
    if left is not None:
        parts.append(f"{duration(left)} left" if short else f"at most {duration(left)} left")
    return ", ".join(parts)


def place(entry: QueueEntry | None, short: bool = False) -> str | None:
    """``2nd of 5 in the course queue (1 ahead)``."""
    if entry is None or entry.position is None:
        return None
    if short:
        return f"{ordinal(entry.position)} of {entry.length}"
    return f"{ordinal(entry.position)} of {entry.length} in the course queue ({entry.ahead} ahead)"


def start(entry: QueueEntry | None, now: float, short: bool = False) -> str | None:
    """When the task may start: remoted's bound, or the scheduler's own estimate."""
    if entry is None or entry.start_by is None:
        return None
    when = clock_time(entry.start_by, now, relative=not short)
    if short:
        return f"starts by {when}" if entry.start_kind == UPPER_BOUND else f"expected {when}"
    if entry.start_kind == UPPER_BOUND:
        return f"starts by {when} at the latest, if every task ahead runs to its time limit"
    return f"the scheduler expects it to start at {when}"


def elapsed(st: TaskStatus, time_limit_s: int | None, now: float) -> str | None:
    """``1m05s of its 10m00s time limit`` for a running task."""
    began = parse_iso(st.started_at)
    if st.state != RUNNING or began is None:
        return None
    ran = duration(now - began)
    return f"{ran} of its {duration(time_limit_s)} time limit" if time_limit_s else f"running for {ran}"


def waiting(st: TaskStatus, entry: QueueEntry | None) -> QueueEntry | None:
    """The queue entry that applies to ``st``: only a task the cluster holds and has not
    started (an entry left from before it started, or for another task, means nothing)."""
    if st.state != PENDING or st.reason in BEFORE_THE_CLUSTER:
        return None
    return entry


def detail(st: TaskStatus, entry: QueueEntry | None, time_limit_s: int | None, now: float,
           short: bool = False) -> str | None:
    """What is happening to the task right now beyond its reason, or None."""
    entry = waiting(st, entry)
    parts = [upload(st, short), place(entry, short), start(entry, now, short),
             None if short else elapsed(st, time_limit_s, now)]
    shown = [p for p in parts if p]
    if not shown:
        return None
    return ", ".join(shown) if short else "; ".join(shown)


def line(st: TaskStatus, entry: QueueEntry | None, time_limit_s: int | None, now: float,
         terse: bool = False) -> str:
    """One line for ``wait``: ``pending (queued): 2nd of 3 in the course queue ...``.
    ``terse`` (a terminal's one line): the reason's words only when there is nothing else."""
    head = st.state + (f" ({st.reason})" if st.reason else "")
    more = detail(st, entry, time_limit_s, now)
    parts = [more] if more else []
    if st.reason and not ((terse or st.reason == "uploading") and more):
        parts.insert(0, explain(st.reason))
    return f"{head}: {'; '.join(parts)}" if parts else head


def rows(st: TaskStatus, entry: QueueEntry | None, now: float) -> list[tuple[str, str]]:
    """``status``'s lines about the task's progress: upload, queue, start (its run time
    against the limit is ``listing.describe_rows``')."""
    entry = waiting(st, entry)
    found = [("upload", upload(st)), ("queue", place(entry)), ("start", start(entry, now))]
    return [(k, v) for k, v in found if v]
