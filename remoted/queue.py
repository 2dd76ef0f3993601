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


def fair_order(queued: Iterable[Queued], running_per_user: dict[str, int] | None = None) -> list[Queued]:
    running_per_user = running_per_user or {}
    by_user: OrderedDict[str, list[Queued]] = OrderedDict()
    for rec in sorted(queued, key=lambda r: (r.order, r.id)):
        by_user.setdefault(rec.user, []).append(rec)
    # Users with fewer running tasks go first in each round; ties by earliest task.
    users = sorted(by_user, key=lambda u: (running_per_user.get(u, 0), by_user[u][0].order))
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
