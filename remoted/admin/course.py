"""The whole course as remoted's records tell it: one row per task of every student.

Read-only, from ``state/active`` and ``state/done`` (a task in both is read from done, as
remoted does after a crash between the two writes), each record read once per call.  Used
by ``admin tasks``, ``admin show``, ``admin usage`` and the staff's web page; remoted
itself never reads through here.  Staff who are not root read the same files: remoted
makes ``state/`` readable by remoted.yaml's ``admin_group`` (``RecordStore.ensure``), so a
directory or record they cannot read is an error to show (``PermissionError``), never a
task silently left out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from ailabber.model import ids
from ailabber.model.listing import NAME
from ailabber.model.remote_layout import ACTIVE, DISK, DONE, STATE, valid_user
from ailabber.model.task import CANCELED, TERMINATED
from ailabber.storage import fsutil
from remoted.admin.history import Event, Run, events, runs, seconds
from remoted.quota import DiskFigure
from remoted.records import TaskRecord

#: The record's ``extra`` key naming the member of staff who cancelled a task (written
#: by remoted when it carries out a staff cancel; a student's own cancel needs none).
CANCELED_BY = "canceled_by"


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

    @property
    def cpus(self) -> int:
        return self.record.spec.cpus if self.record.spec else 0

    @property
    def node(self) -> str | None:
        """Where the job runs or ran, as the scheduler named it (Slurm's node list);
        None under the local scheduler (the login node itself) or before it ran."""
        nodes = self.record.handle.data.get("nodes") if self.record.handle else None
        return nodes if isinstance(nodes, str) and nodes else None

    @property
    def cancelled_by(self) -> str | None:
        """Who cancelled the task: a member of staff (as remoted recorded them), the
        student (their own request), or None for a task nobody cancelled."""
        st = self.record.status
        if st.state not in (CANCELED, TERMINATED) and not self.record.cancel_requested:
            return None
        staff = self.record.extra.get(CANCELED_BY)
        if isinstance(staff, str) and staff:
            return staff
        return self.user if st.reason == "canceled_by_user" or self.record.cancel_requested else None

    def events(self) -> list[Event]:
        """The task's history (the record's copy of its ``events.jsonl``)."""
        return events(self.record.history)

    def runs(self, now: float) -> list[Run]:
        """When its job ran, by remoted's clock (``history.runs``)."""
        return runs(self.events(), self.record.status, self.record.history is not None, now)

    def elapsed(self, now: float) -> float | None:
        """Seconds its job has run (until it finished, or until ``now``); None if it never ran."""
        rs = self.runs(now)
        return seconds(rs) if rs else None


def _names(d: str | Path) -> list[str]:
    try:
        return sorted(os.listdir(d))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _records(base: Path, user: str) -> Iterator[TaskRecord]:
    d = os.path.join(base, user)          # strings: a Path per record costs more than reading it
    for name in _names(d):
        if not name.endswith(".json") or name.startswith("."):
            continue
        try:
            data = json.loads(fsutil.read_small(os.path.join(d, name)))
        except (FileNotFoundError, fsutil.NotARegularFile, ValueError, RecursionError):
            continue          # moved to done/ meanwhile (read there), or not a record
        if not isinstance(data, dict):
            continue
        try:
            rec = TaskRecord.from_dict(data)
        except (KeyError, TypeError, ValueError):
            continue
        if rec.user == user and f"{rec.id}.json" == name:
            yield rec


def course_rows(root: Path) -> list[TaskRow]:
    """Every task remoted keeps a record of, oldest submission first.  Raises
    PermissionError (with the path) where the caller may not read remoted's records."""
    state = Path(root) / STATE
    rows: dict[tuple[str, str], TaskRow] = {}
    for stage, finished in ((ACTIVE, False), (DONE, True)):      # done wins
        for user in _names(state / stage):
            if valid_user(user):
                for rec in _records(state / stage, user):
                    rows[(user, rec.id)] = TaskRow(user, rec, finished)
    return sorted(rows.values(), key=lambda r: (r.record.status.submitted_at or "", r.id))


class NoSuchTask(LookupError):
    """The query names no task of the course, or more than one: the message says which."""


def find_row(rows: list[TaskRow], query: str) -> TaskRow:
    """The one task ``query`` names: ``user/ID`` or ``ID``, where ID is what a student
    may type (a full id, a unique prefix or suffix, a task name, ``last``:
    ``ids.resolve``), looked up among one student's tasks or the whole course's."""
    user, sep, rest = query.strip().rpartition("/")
    mine = [r for r in rows if r.user == user] if sep else rows
    if sep and not mine:
        raise NoSuchTask(f"no task of a student named {user!r}")
    by_id: dict[str, list[TaskRow]] = {}
    for r in mine:
        by_id.setdefault(r.id, []).append(r)
    try:
        task_id = ids.resolve(rest, by_id, lambda name: [r.id for r in mine if r.name == name])
    except ids.TaskLookupError as exc:
        raise NoSuchTask(str(exc)) from None
    found = by_id[task_id]
    if len(found) > 1:
        raise NoSuchTask(f"{task_id} is a task of {', '.join(r.user for r in found)}: "
                         f"give it as {found[0].user}/{task_id}")
    return found[0]


def disk_figures(root: Path) -> dict[str, DiskFigure]:
    """What remoted last measured of each student's area (``state/disk/<user>.json``,
    written where remoted measures: under a disk quota); unreadable figures are left out."""
    d = Path(root) / STATE / DISK
    out: dict[str, DiskFigure] = {}
    for name in _names(d):
        user = name.removesuffix(".json")
        if name.endswith(".json") and valid_user(user):
            fig = DiskFigure.from_dict(fsutil.read_json_or_none(d / name))
            if fig is not None:
                out[user] = fig
    return out
