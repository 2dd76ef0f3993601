"""The whole course as remoted's records tell it: one row per task of every student.

Read-only, from ``state/active`` and ``state/done`` (a task in both is read from done, as
remoted does after a crash between the two writes).  Used by ``admin tasks``, ``admin
show``, ``admin usage`` and the staff's web page; remoted itself never reads through here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from ailabber.model.listing import NAME
from ailabber.model.remote_layout import ACTIVE, DONE, STATE, valid_user
from ailabber.model.task import parse_iso
from ailabber.storage import fsutil
from remoted.records import TaskRecord


class TaskRow(NamedTuple):
    user: str
    record: TaskRecord
    finished: bool              # read from state/done

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def name(self) -> str | None:
        name = self.record.status.extra.get(NAME)
        return name if isinstance(name, str) else None

    @property
    def gpus(self) -> int:
        return self.record.spec.gpus if self.record.spec else 0

    def elapsed(self, now: float) -> float | None:
        """Seconds the job has run (until it finished, or until ``now``)."""
        st = self.record.status
        start = parse_iso(st.started_at)
        if start is None:
            return None
        end = parse_iso(st.finished_at) if st.terminal else now
        return max(0.0, (end if end is not None else now) - start)


def _names(d: Path) -> list[str]:
    try:
        return sorted(os.listdir(d))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _records(base: Path, user: str) -> Iterator[TaskRecord]:
    for name in _names(base / user):
        if not name.endswith(".json") or name.startswith("."):
            continue
        data = fsutil.read_json_or_none(base / user / name)
        if not isinstance(data, dict):
            continue
        try:
            rec = TaskRecord.from_dict(data)
        except (KeyError, TypeError, ValueError):
            continue
        if rec.user == user and f"{rec.id}.json" == name:
            yield rec


def course_rows(root: Path) -> list[TaskRow]:
    """Every task remoted keeps a record of, oldest submission first."""
    state = Path(root) / STATE
    rows: dict[tuple[str, str], TaskRow] = {}
    for stage, finished in ((ACTIVE, False), (DONE, True)):      # done wins
        for user in _names(state / stage):
            if valid_user(user):
                for rec in _records(state / stage, user):
                    rows[(user, rec.id)] = TaskRow(user, rec, finished)
    return sorted(rows.values(), key=lambda r: (r.record.status.submitted_at or "", r.id))
