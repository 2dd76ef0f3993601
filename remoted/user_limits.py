"""The limits in force for each student: remoted.yaml's ``limits``, with the per-student
overrides course staff set (``ailabber admin limits USER KEY=VALUE``).

``CourseLimits.of(user)`` is the one place remoted asks what a student may do: the launch
(``remoted.launch``: the per-task caps, ``max_running``, ``max_gpus``, ``max_queued``),
intake (upload size, disk quota, uploads in flight, the log cap of a new task's spec), the
queue's start bounds and the student's published ``limits.json``.  An override changes
nothing of what is already decided (a task accepted keeps its log cap; one launched keeps
running) and is in force from the next pass on, without a restart.

The overrides are remoted's own persistent state, ``state/limits.json``, written only by
remoted (``CourseLimits.save``: on disk first, then in memory).  They hold each value as
``UserLimits`` does (seconds, MiB, bytes, counts), read once from what staff wrote
(``remoted_settings.limit_value``, remoted.yaml's rule) and only range-checked after that
(``checked_limit``), never read in units again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ailabber.daemonkit.remoted_settings import BYTE_LIMITS, LIMIT_KEYS, UserLimits, checked_limit
from ailabber.model.joblimits import clock, memory
from ailabber.model.remote_layout import LIMIT_OVERRIDES, STATE, valid_user
from ailabber.storage import fsutil

log = logging.getLogger("remoted")
VERSION = 1

class Overrides(NamedTuple):
    """Every student's overrides, by user."""
    users: dict[str, dict[str, int | None]] = {}

    def changed(self, user: str, values: Mapping[str, int | None], defaults: tuple[str, ...]) -> Overrides:
        """These overrides with ``user``'s ``values`` set and ``defaults`` removed."""
        mine = {k: v for k, v in {**self.users.get(user, {}), **values}.items() if k not in defaults}
        users = {u: o for u, o in self.users.items() if u != user}
        if mine:
            users[user] = dict(sorted(mine.items()))
        return Overrides(users)

    def to_bytes(self) -> bytes:
        return (json.dumps({"version": VERSION, "users": dict(sorted(self.users.items()))}, indent=2,
                           sort_keys=True) + "\n").encode()

    @classmethod
    def from_doc(cls, doc: Any) -> Overrides:
        """What remoted wrote, each value checked again; one that fails the check is left
        out (and logged), never taken."""
        users = doc.get("users") if isinstance(doc, dict) else None
        out: dict[str, dict[str, int | None]] = {}
        for user, raw in (users.items() if isinstance(users, dict) else ()):
            if not isinstance(user, str) or not valid_user(user) or not isinstance(raw, dict):
                continue
            for key, v in raw.items():
                try:
                    if key not in LIMIT_KEYS:
                        raise ValueError("not a limit")
                    out.setdefault(user, {})[key] = checked_limit(key, v)
                except ValueError as exc:
                    log.warning("%s: ignoring the override %s of %s: %s", LIMIT_OVERRIDES, key, user, exc)
        return cls(out)


def limit_text(key: str, v: int | None) -> str:
    """A limit's value as remoted.yaml may write it: ``20G``, ``24:00:00``, ``4``; ``null``."""
    if v is None:
        return "null"
    if key == "max_time_limit":
        return clock(v)
    if key == "max_memory":
        return memory(v)
    if key in BYTE_LIMITS:
        for unit, n in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
            if v >= n and v % n == 0:
                return f"{v // n}{unit}"
    return str(v)


def limits_for(base: UserLimits, overrides: Overrides, user: str) -> UserLimits:
    """``user``'s limits: the course's, with their overrides in place."""
    mine = overrides.users.get(user)
    return base._replace(**mine) if mine else base


def overrides_path(root: Path) -> Path:
    return Path(root) / STATE / LIMIT_OVERRIDES


def read_overrides(root: Path) -> Overrides:
    return Overrides.from_doc(fsutil.read_json_or_none(overrides_path(root)))


class CourseLimits:
    """The limits remoted enforces, per student; the overrides change only through ``save``,
    the course's limits on a reload of remoted.yaml (``base``)."""

    def __init__(self, root: Path, base: UserLimits):
        self.path = overrides_path(root)
        self.overrides = read_overrides(root)
        self._base = base
        self._of: dict[str, UserLimits] = {}

    @property
    def base(self) -> UserLimits:
        return self._base

    @base.setter
    def base(self, value: UserLimits) -> None:
        self._base = value
        self._of = {}

    def of(self, user: str) -> UserLimits:
        """``user``'s limits now (asked per task per pass: kept until something changes)."""
        got = self._of.get(user)
        if got is None:
            got = self._of[user] = limits_for(self._base, self.overrides, user)
        return got

    def save(self, new: Overrides) -> None:
        """Write ``new``, then enforce it; OSError (nothing changed) if the write failed."""
        fsutil.atomic_write_bytes(self.path, new.to_bytes())
        self.overrides = new
        self._of = {}
