"""Holds: course staff keep one student's queued tasks, or everyone's, from being launched
(``ailabber admin hold`` / ``release``), for a maintenance drain or a student to talk to.

remoted's own persistent state, ``state/holds.json``, written only by remoted (through
``Holds.save``: on disk first, then in memory) and read back when it starts, so a hold
survives a restart.  A held task stays ``pending`` with the reason ``held`` and the staff's
message; running tasks are untouched.  ``admin tasks`` and ``doctor --remoted-config``
read the same file (``read_holds``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, NamedTuple

from ailabber.model.remote_layout import HOLDS_FILE, STATE, valid_user
from ailabber.model.render import ago
from ailabber.storage import fsutil

log = logging.getLogger("remoted")
VERSION = 1


class HoldEntry(NamedTuple):
    """One hold: the message students see, who set it and when."""
    message: str | None
    by: str
    at: str          # ISO time, as task times are written

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "by": self.by, "at": self.at}

    @classmethod
    def from_dict(cls, d: Any) -> HoldEntry | None:
        if not isinstance(d, dict):
            return None
        message, by, at = d.get("message"), d.get("by"), d.get("at")
        if not isinstance(by, str) or not isinstance(at, str) or not (message is None or isinstance(message, str)):
            return None
        return cls(message, by, at)

    def words(self) -> str:
        """``by ta1, 2h ago: the node is being repaired``."""
        return f"by {self.by}, {ago(self.at)}" + (f": {self.message}" if self.message else "")


class HoldState(NamedTuple):
    """Every hold in force: on the whole queue, and per student."""
    everyone: HoldEntry | None = None
    users: dict[str, HoldEntry] = {}

    def of(self, user: str) -> HoldEntry | None:
        """The hold ``user``'s queued tasks are under, if any: their own, else the queue's."""
        return self.users.get(user) or self.everyone

    @property
    def any(self) -> bool:
        return self.everyone is not None or bool(self.users)

    def to_bytes(self) -> bytes:
        doc = {"version": VERSION, "all": self.everyone.to_dict() if self.everyone else None,
               "users": {u: h.to_dict() for u, h in sorted(self.users.items())}}
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_doc(cls, doc: Any) -> HoldState:
        """What remoted wrote; anything unreadable in it is no hold (remoted is its only writer)."""
        if not isinstance(doc, dict):
            return cls()
        users = doc.get("users")
        held = {u: h for u, raw in (users.items() if isinstance(users, dict) else ())
                if isinstance(u, str) and valid_user(u) and (h := HoldEntry.from_dict(raw)) is not None}
        return cls(HoldEntry.from_dict(doc.get("all")), held)

    def lines(self) -> list[str]:
        """One line per hold, for people."""
        out = [f"the whole queue is held {self.everyone.words()}"] if self.everyone else []
        return out + [f"{u} is held {h.words()}" for u, h in sorted(self.users.items())]


def holds_path(root: Path) -> Path:
    return Path(root) / STATE / HOLDS_FILE


def read_holds(root: Path) -> HoldState:
    """The holds as remoted last wrote them (none without the file)."""
    return HoldState.from_doc(fsutil.read_json_or_none(holds_path(root)))


class Holds:
    """The holds remoted enforces: read when it starts, changed only through ``save``."""

    def __init__(self, root: Path):
        self.path = holds_path(root)
        self.state = read_holds(root)

    def of(self, user: str) -> HoldEntry | None:
        return self.state.of(user)

    def save(self, new: HoldState) -> None:
        """Write ``new``, then hold it in memory; OSError (nothing changed) if the write failed."""
        fsutil.atomic_write_bytes(self.path, new.to_bytes())
        self.state = new
