"""Which queued task to try next: round-robin across users, FIFO within a user.

Pure: takes records, returns them in order.  One student's hundred tasks do not push
another student's single task to the back of the line.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Protocol


class Queued(Protocol):
    user: str
    order: int
    id: str


def fair_order(queued: Iterable[Queued], running_per_user: dict[str, int] | None = None,
               last_served: dict[str, float] | None = None) -> list[Queued]:
    """Users with fewer running tasks go first in each round; among equals, the one served
    longest ago (never served first), then the one whose oldest task is oldest."""
    running_per_user = running_per_user or {}
    last_served = last_served or {}
    by_user: OrderedDict[str, list[Queued]] = OrderedDict()
    for rec in sorted(queued, key=lambda r: (r.order, r.id)):
        by_user.setdefault(rec.user, []).append(rec)
    users = sorted(by_user, key=lambda u: (running_per_user.get(u, 0), last_served.get(u, float("-inf")),
                                           by_user[u][0].order))
    out: list[Queued] = []
    depth = 0
    while True:
        added = False
        for u in users:
            if depth < len(by_user[u]):
                out.append(by_user[u][depth])
                added = True
        if not added:
            return out
        depth += 1


def over_limit(user: str, gpus: int, running: dict[str, int], gpus_in_use: dict[str, int],
               max_running: int | None, max_gpus: int | None) -> str | None:
    """Why ``user`` may not start one more task of ``gpus`` GPUs now, or None."""
    if max_running is not None and running.get(user, 0) >= max_running:
        return f"you have {running.get(user, 0)} task(s) running; the limit is {max_running}"
    if max_gpus is not None and gpus and gpus_in_use.get(user, 0) + gpus > max_gpus:
        return f"you use {gpus_in_use.get(user, 0)} GPU(s); this task needs {gpus} more; the limit is {max_gpus}"
    return None
