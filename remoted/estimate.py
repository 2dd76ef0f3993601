"""When a task in remoted's own queue starts at the latest, from the time limits.

For a backend that remoted hands GPUs out for (the local scheduler), remoted knows
everything that decides a start: the GPUs, the jobs holding them and their time limits,
the tasks ahead and the per-user limits.  So it can replay its own launch rule (go
through the queue in order and start whatever fits) on the assumption that every job runs
to its full time limit: no job ends later than that, so as the queue stands now, no task
starts later than the replay says.  A task that ends early, or is cancelled, only brings
the starts forward; a student with fewer running tasks who submits now can still come
first (remoted's round-robin), which the next replay shows.

Pure: the caller passes the clock and the state.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable, Mapping, Sequence
from typing import NamedTuple


class Holding(NamedTuple):
    """A job that holds GPUs now (launched, or running)."""
    user: str
    gpus: int
    ends_by: float          # epoch seconds: its start (or now) + its time limit + the kill grace


class Waiting(NamedTuple):
    """A task in remoted's queue, in the order remoted offers them to the scheduler."""
    key: Hashable
    user: str
    gpus: int
    runs_for: float         # its time limit + the kill grace, seconds


def start_bounds(waiting: Sequence[Waiting], holding: Sequence[Holding], total_gpus: int, now: float,
                 max_running: int | None = None, max_gpus: int | None = None,
                 caps: Mapping[str, tuple[int | None, int | None]] | None = None) -> dict[Hashable, float]:
    """The latest start of each waiting task, by key; a task that cannot start as things
    stand (more GPUs than there are, or than its user may have) has none.  ``max_running``
    and ``max_gpus`` are every user's limits, except for the users in ``caps``, whose own
    ``(max_running, max_gpus)`` they are (the staff's per-student overrides)."""
    caps = caps or {}

    def cap(user: str) -> tuple[int | None, int | None]:
        return caps.get(user, (max_running, max_gpus))

    ends: list[tuple[float, int, str, int]] = []      # (end, tie-break, user, gpus), a heap
    running: dict[str, int] = {}
    gpus_of: dict[str, int] = {}
    free = total_gpus
    tie = itertools.count()

    def take(user: str, gpus: int, end: float) -> None:
        nonlocal free
        free -= gpus
        running[user] = running.get(user, 0) + 1
        gpus_of[user] = gpus_of.get(user, 0) + gpus
        heapq.heappush(ends, (end, next(tie), user, gpus))

    def fits(w: Waiting) -> bool:
        if w.gpus > free:
            return False
        most_running, most_gpus = cap(w.user)
        if most_running is not None and running.get(w.user, 0) >= most_running:
            return False
        return most_gpus is None or not w.gpus or gpus_of.get(w.user, 0) + w.gpus <= most_gpus

    out: dict[Hashable, float] = {}
    for h in holding:
        take(h.user, h.gpus, max(now, h.ends_by))
    t = now
    left = [w for w in waiting if w.gpus <= total_gpus and ((most := cap(w.user)[1]) is None or w.gpus <= most)]
    while left:
        rest = []
        for w in left:
            if fits(w):
                out[w.key] = t
                take(w.user, w.gpus, t + w.runs_for)
            else:
                rest.append(w)
        left = rest
        if not left or not ends:
            break
        t = max(t, ends[0][0])
        while ends and ends[0][0] <= t:        # every job that has ended by then frees its GPUs
            _end, _n, user, gpus = heapq.heappop(ends)
            free += gpus
            running[user] -= 1
            gpus_of[user] -= gpus
    return out
