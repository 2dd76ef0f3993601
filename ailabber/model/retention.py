"""Which finished tasks a retention policy removes from the local spool (pure).

A task may go only when it is finished and everything it brought back is in the spool:
it sits in ``done/`` (spoold moves it there after pulling its logs and results), no pull
of its results failed, and no fetch of it is pending.  Among those, a policy removes the
ones finished longer ago than ``max_age``, then, while the spool is over ``max_bytes``,
the oldest that are left; the ``keep`` most recently finished tasks always stay.

Sizes count blocks on disk.  A file shared by hard links between tasks (``submit`` links
unchanged files) is freed only with the last task that holds it, so what removing a task
frees depends on what else goes: ``Freeing`` keeps that count as tasks are removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from ailabber.model.quantities import DAY
from ailabber.model.retention_policy import Policy

Inode = tuple[int, int]             # (st_dev, st_ino)


class Usage(NamedTuple):
    """The disk use of one task: bytes only it holds, and its hard-linked files."""

    own: int = 0
    shared: tuple[tuple[Inode, int, int, int], ...] = ()   # (inode, bytes, links in all, names in this task)


class Finished(NamedTuple):
    id: str
    finished_at: float | None        # None: not known, counted as just now (never old)
    blocker: str | None = None       # why it must stay whatever the policy says; None: it may go
    usage: Usage | None = None       # None: not measured


class Removal(NamedTuple):
    id: str
    why: str
    freed: int | None                # None when the usage was not measured


class Freeing:
    """Bytes freed as tasks are removed one after another."""

    def __init__(self) -> None:
        self.links_left: dict[Inode, int] = {}

    def remove(self, usage: Usage) -> int:
        freed = usage.own
        for inode, nbytes, links, names in usage.shared:
            left = self.links_left.get(inode, links) - names
            self.links_left[inode] = left
            if left <= 0:
                freed += nbytes
        return freed


def choose(tasks: Sequence[Finished], policy: Policy, now: float, total_bytes: int | None = None) -> list[Removal]:
    """The tasks ``policy`` removes, oldest first.  ``total_bytes`` (the whole spool's use)
    is needed for ``max_bytes``, and then every task's usage too."""
    order = sorted(tasks, key=lambda t: (t.finished_at if t.finished_at is not None else now, t.id))
    kept = {t.id for t in order[len(order) - policy.keep:]} if policy.keep > 0 else set()
    free = [t for t in order if t.blocker is None and t.id not in kept]
    freeing = Freeing()
    out: list[Removal] = []

    def take(t: Finished, why: str) -> None:
        out.append(Removal(t.id, why, None if t.usage is None else freeing.remove(t.usage)))

    if policy.max_age is not None:
        for t in free:
            age = now - (t.finished_at if t.finished_at is not None else now)
            if age >= policy.max_age:
                take(t, f"finished {_age_text(age)} ago")
    if policy.max_bytes is not None and total_bytes is not None:
        gone = {r.id for r in out}
        size = total_bytes - sum(r.freed or 0 for r in out)
        for t in free:
            if size <= policy.max_bytes:
                break
            if t.id in gone:
                continue
            if t.usage is None:
                raise ValueError("max_bytes needs the usage of every task")
            before = len(out)
            take(t, "the spool is over its size limit")
            size -= out[before].freed or 0
    return out


def freed_total(removals: Iterable[Removal]) -> int:
    return sum(r.freed or 0 for r in removals)


def _age_text(seconds: float) -> str:
    days = seconds / DAY
    if days >= 1:
        return f"{days:.0f}d"
    return f"{seconds / 3600:.0f}h" if seconds >= 3600 else f"{seconds / 60:.0f}m"
