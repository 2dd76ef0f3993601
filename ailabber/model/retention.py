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

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

DAY = 86400.0
CLEAN_AGE = 7 * DAY                 # ``ailabber clean`` without --older-than or ids


class Policy(NamedTuple):
    max_age: float | None = None    # seconds since the task finished
    keep: int = 0                   # the newest finished tasks that always stay
    max_bytes: int | None = None    # the spool's size the oldest tasks are removed to stay under


#: spoold's policy unless spoold.yaml says otherwise: a month of history, and the last 20
#: tasks whatever their age (a student back from a break still finds their last runs).
DEFAULT_POLICY = Policy(max_age=30 * DAY, keep=20)

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


# --------------------------------------------------------------------------- parsing

_AGE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY, "w": 7 * DAY}
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
AGE_WORDS = "an age such as 30d, 12h, 90m or 2w (s, m, h, d, w), or 0"
SIZE_WORDS = "a size such as 5GiB or 500M (binary units), or a whole number of bytes"


def parse_age(text: str) -> float:
    """``30d`` -> seconds; ``ValueError`` naming the accepted forms."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if m is None or (not m.group(2) and float(m.group(1)) != 0):
        raise ValueError(f"must be {AGE_WORDS}, got {text!r}")
    return float(m.group(1)) * _AGE_UNITS.get(m.group(2), 1.0)


def parse_size(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", value, re.IGNORECASE) \
        if isinstance(value, str) else None
    if m is None:
        raise ValueError(f"must be {SIZE_WORDS}, got {value!r}")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).upper()])


RETENTION_KEYS = ("max_age", "keep", "max_bytes")


def policy_from_setting(value: Any) -> Policy | None:
    """spoold.yaml's ``retention``: ``off`` (YAML false) or null turns it off, ``on`` is the
    default policy; a mapping changes the keys it names and keeps ``DEFAULT_POLICY``'s others.  ``ValueError``
    messages start with the key they are about (``retention.max_age: ...``)."""
    if value is None or value is False:
        return None
    if value is True:
        return DEFAULT_POLICY
    if not isinstance(value, Mapping):
        raise ValueError(f"retention: must be on, off or a mapping with {', '.join(RETENTION_KEYS)}, got {value!r}")
    for key in value:
        if key not in RETENTION_KEYS:
            raise ValueError(f"retention.{key}: unknown key (known: {', '.join(RETENTION_KEYS)})")
    policy = DEFAULT_POLICY
    try:
        if "max_age" in value:
            v = value["max_age"]
            policy = policy._replace(max_age=None if v is None else parse_age(str(v)))
    except ValueError as exc:
        raise ValueError(f"retention.max_age: {exc} (or null: no age limit)") from None
    if "keep" in value:
        keep = value["keep"]
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            raise ValueError(f"retention.keep: must be a whole number >= 0, got {keep!r}")
        policy = policy._replace(keep=keep)
    try:
        if "max_bytes" in value:
            v = value["max_bytes"]
            policy = policy._replace(max_bytes=None if v is None else parse_size(v))
    except ValueError as exc:
        raise ValueError(f"retention.max_bytes: {exc} (or null: no size limit)") from None
    return policy
