"""remoted's own record of each task, kept outside every user's directory, and its public
copy in the student's outbox.

``state/active/<user>/<id>.json`` while unfinished, ``state/done/<user>/<id>.json`` after.
The record holds the public status plus what only remoted may trust: the job spec it
derived, the scheduler handle, and the phase of the launch (``queued`` -> ``launching``
-> ``launched``).  ``launching`` is written *before* the scheduler is called, so after a
crash remoted knows to look for the job instead of starting it again.

The record also keeps the task's history: every event published to the outbox's
``events.jsonl`` (``history``), so that course staff read a task's whole life from
remoted's records alone, the outbox being the student's (and emptied by spoold once the
task is done).  Records written before histories were kept say ``history: null``.  The
history costs a typical record about 250 bytes and 4 us of encoding per write (44 -> 48 us),
nothing beside a burst's time per task.

Who may read the records: root, and the members of remoted.yaml's ``admin_group``
(``RecordStore.readers``): ``state/``, ``active/``, ``done/`` and every user's directory
in them are 0750 and of that group, the records 0644 (remoted's umask 022) and so readable
only through those directories.  Students are never in reach; ``jobs/`` (the local jobs'
lock files) and ``owed/`` stay 0700.  docs/trust-model.md says why.

A kept record changes only through ``RecordStore.save``: the new record is built as a
value, written, and only then applied to the record in memory.  A write that fails (a
full disk) leaves memory as it was, so memory never says what the disk does not, and the
caller's next pass derives the change again.  The public copy is written second, and a
copy that could not be written is owed and written on a later pass (``Outbox``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ailabber.model import ids
from ailabber.model.remote_layout import ACTIVE, DISK, DONE, JOBS, OUTBOX, OWED, STATE, USERS, valid_user
from ailabber.model.task import PENDING, TaskStatus, transition
from ailabber.storage import fsutil, statusfile
from ailabber.storage.safedir import SafeDir
from remoted.jobspec import JobSpec
from remoted.outage import WriteTrouble, passing
from remoted.schedulers.base import JobHandle

log = logging.getLogger(__name__)

ACCEPTING, QUEUED, LAUNCHING, LAUNCHED, FINISHED = "accepting", "queued", "launching", "launched", "finished"

#: Events a record keeps: the first and the latest ones.  A task whose pending reason flaps
#: for days (Slurm's Priority / Resources) would otherwise make every write of its record
#: longer; the events' ``seq`` numbers show where some were left out.
MAX_HISTORY = 64


@dataclass
class TaskRecord:
    id: str
    user: str
    status: TaskStatus
    spec: JobSpec | None = None
    phase: str = QUEUED
    handle: JobHandle | None = None
    cancel_requested: bool = False
    cancel_sent: bool = False          # the scheduler took the cancel (until then every poll retries)
    cancel_by_staff: bool = False      # course staff asked for the cancel (``ailabber admin cancel``)
    cancel_message: str | None = None  # ... and the reason they gave, shown to the student
    order: int = 0                     # arrival order, for FIFO within a user
    extra: dict[str, Any] = field(default_factory=dict)
    #: The task's events, as published (None: a record from before histories were kept).
    history: list[dict[str, Any]] | None = field(default_factory=list)

    def changed(self, **changes: Any) -> TaskRecord:
        """This record with ``changes``, as a new value (this one is left alone); a record
        whose status is final is in phase finished."""
        new = dataclasses.replace(self, **changes)
        if new.status.terminal:
            new.phase = FINISHED
        return new

    def with_event(self, event: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The history with ``event`` after it, as a new list (None stays None: a partial
        history would read as a whole one)."""
        if self.history is None:
            return None
        out = [*self.history, event]
        if len(out) > MAX_HISTORY:
            del out[1:len(out) - MAX_HISTORY + 1]
        return out

    def adopt(self, new: TaskRecord) -> None:
        """Become ``new`` (once it is on disk), in place: whoever holds this record sees it."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(new, f.name))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "user": self.user, "status": self.status.to_dict(),
            "spec": self.spec.to_dict() if self.spec else None, "phase": self.phase,
            "handle": self.handle.to_dict() if self.handle else None,
            "cancel_requested": self.cancel_requested, "cancel_sent": self.cancel_sent, "order": self.order, "extra": self.extra,
            "history": self.history,
            "cancel_by_staff": self.cancel_by_staff, "cancel_message": self.cancel_message,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskRecord:
        return cls(
            id=d["id"], user=d["user"], status=TaskStatus.from_dict(d["status"]),
            spec=JobSpec.from_dict(d["spec"]) if d.get("spec") else None,
            phase=d.get("phase", QUEUED),
            handle=JobHandle.from_dict(d["handle"]) if d.get("handle") else None,
            cancel_requested=bool(d.get("cancel_requested")), cancel_sent=bool(d.get("cancel_sent")), order=int(d.get("order", 0)),
            extra=dict(d.get("extra") or {}),
            history=[e for e in d["history"] if isinstance(e, dict)] if isinstance(d.get("history"), list) else None,
            cancel_by_staff=bool(d.get("cancel_by_staff")),
            cancel_message=d["cancel_message"] if isinstance(d.get("cancel_message"), str) else None,
        )


class RecordStore:
    def __init__(self, root: Path, trouble: WriteTrouble | None = None, readers: int | None = None):
        """``readers``: the gid of remoted.yaml's ``admin_group`` (None: root alone reads)."""
        self.root = Path(root)
        self.state_dir = self.root / STATE
        self.active_dir = self.state_dir / ACTIVE
        self.done_dir = self.state_dir / DONE
        self.readers = readers
        self.trouble = trouble or WriteTrouble()
        self.outbox = Outbox(self.root, self.trouble)
        #: Records written so far: a pass that wrote none found nothing to do.
        self.writes = 0
        self._made: set[Path] = set()

    def ensure(self) -> None:
        """``state/``, its halves and every user's directory in them: private (0700), or
        0750 and of the ``readers`` group, even if they existed before with another mode
        or group (a mount point; an admin_group set or changed since):
        ``os.makedirs`` gives its mode only to the last directory it makes.  ``jobs/`` and
        ``owed/`` are private whatever the group."""
        fsutil.ensure_dirs(self.active_dir, self.done_dir, self.state_dir / DISK, mode=0o700)
        for d in (self.state_dir / JOBS, self.state_dir / OWED):
            fsutil.ensure_dirs(d, mode=0o700)
            os.chmod(d, 0o700)
        shared = [self.state_dir, self.active_dir, self.done_dir, self.state_dir / DISK]
        shared += [half / user for half in (self.active_dir, self.done_dir) for user in _listdir(half)
                   if valid_user(user)]
        for d in shared:
            self._share(d)

    def _share(self, d: Path) -> None:
        """Give ``d`` the mode and group the records' readers need."""
        if self.readers is None:
            os.chmod(d, 0o700)
            return
        try:
            os.chown(d, -1, self.readers)
        except PermissionError as exc:     # a service account outside admin_group
            log.warning("cannot give the admin_group (gid %d) read access to %s (%s): it stays private",
                        self.readers, d, exc)
            os.chmod(d, 0o700)
            return
        os.chmod(d, 0o750)

    def _path(self, base: Path, user: str, task_id: str) -> Path:
        return base / user / f"{task_id}.json"

    def exists(self, user: str, task_id: str) -> bool:
        return self._path(self.active_dir, user, task_id).exists() or self._path(self.done_dir, user, task_id).exists()

    def get(self, user: str, task_id: str) -> TaskRecord | None:
        for base in (self.done_dir, self.active_dir):
            data = fsutil.read_json_or_none(self._path(base, user, task_id))
            if isinstance(data, dict):
                try:
                    return TaskRecord.from_dict(data)
                except (KeyError, TypeError, ValueError):
                    continue
        return None

    def save(self, rec: TaskRecord, **changes: Any) -> None:
        """Write ``rec`` with ``changes``; only once that is on disk does ``rec`` take them.
        A final status goes to done/.  Raises OSError (the write failed) with ``rec`` as it was."""
        new = rec.changed(**changes)
        try:
            self._write(new)
        except OSError as exc:
            self.trouble.failed("task records", exc)
            raise
        self.trouble.ok("task records")
        self.writes += 1
        rec.adopt(new)

    def finish(self, rec: TaskRecord) -> None:
        """``save`` for a record whose status is final: written into done/, then the
        active record is dropped (done wins on restart)."""
        assert rec.status.terminal, rec.status
        self.save(rec)

    def _write(self, rec: TaskRecord) -> None:
        """Put one record value on disk: done/ for a final one (then drop the active one)."""
        base = self.done_dir if rec.phase == FINISHED else self.active_dir
        p = self._path(base, rec.user, rec.id)
        if p.parent not in self._made:       # one mkdir per user and half, not per write
            self._user_dir(p.parent)
            self._made.add(p.parent)
        try:
            fsutil.atomic_write_bytes(p, _encode(rec))
        except FileNotFoundError:            # the directory was removed meanwhile
            self._user_dir(p.parent)
            fsutil.atomic_write_bytes(p, _encode(rec))
        if base is self.done_dir:
            try:
                os.unlink(self._path(self.active_dir, rec.user, rec.id))
            except FileNotFoundError:
                pass

    def _user_dir(self, d: Path) -> None:
        fsutil.ensure_dirs(d, mode=0o700)
        self._share(d)

    def publish(self, rec: TaskRecord, event: dict[str, Any] | None, files: dict[str, bytes] | None = None) -> None:
        """The public copy of ``rec`` (already saved) and its new event, now or on a later
        pass; ``files`` (e.g. ``outputs.json``) are written before the status."""
        self.outbox.publish(rec, event, files)

    def load_active(self) -> list[TaskRecord]:
        out: list[TaskRecord] = []
        for user_dir in _listdir(self.active_dir):
            if not valid_user(user_dir):
                continue
            for name in _listdir(self.active_dir / user_dir):
                task_id = name.removesuffix(".json")
                if not name.endswith(".json") or not ids.is_task_id(task_id):
                    continue
                if self._path(self.done_dir, user_dir, task_id).exists():
                    os.unlink(self.active_dir / user_dir / name)  # crash inside finish()
                    continue
                data = fsutil.read_json_or_none(self.active_dir / user_dir / name)
                if isinstance(data, dict):
                    out.append(TaskRecord.from_dict(data))
        return sorted(out, key=lambda r: (r.order, r.id))


@dataclass
class _Owed:
    """What a task's outbox still lacks: files, events not yet appended (in order), and
    the status to write after them."""
    status: TaskStatus
    events: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)


class Outbox:
    """Writes the public status where the student's transport can pull it, through
    directory handles so that a symlink the student planted redirects nothing.

    A copy that cannot be written for a passing reason (a full disk) is owed: its events
    and latest status are kept and written on the next ``retry``, each event exactly once,
    so the outbox ends up equal to the private record without a restart."""

    def __init__(self, root: Path, trouble: WriteTrouble):
        self.root = root
        self.trouble = trouble
        self._owed: dict[tuple[str, str], _Owed] = {}
        self._notices: dict[tuple[str, str], TaskStatus] = {}
        #: ``state/owed/<user>/<id>``: a task whose outbox is behind its record, so that a
        #: restart during an outage republishes it (the owed events themselves are lost
        #: then; the status, which is what the student's side acts on, is not).
        self.owed_dir = Path(root) / STATE / OWED
        self._marked: set[tuple[str, str]] = set()

    def owed_after_restart(self) -> list[tuple[str, str]]:
        """The tasks an earlier run of remoted still owed a publication (to republish)."""
        out = []
        for user in _listdir(self.owed_dir):
            if valid_user(user):
                out += [(user, t) for t in _listdir(self.owed_dir / user) if ids.is_task_id(t)]
        self._marked.update(out)
        return out

    def publish(self, rec: TaskRecord, event: dict[str, Any] | None, files: dict[str, bytes] | None = None) -> None:
        key = (rec.user, rec.id)
        self._notices.pop(key, None)        # the record has taken over from the notice
        owed = self._owed.setdefault(key, _Owed(rec.status))
        owed.status = rec.status
        owed.files.update(files or {})
        if event is not None:
            owed.events.append(event)
        self._flush(key)

    def retry(self) -> None:
        """Write what earlier passes could not."""
        for key in list(self._owed):
            self._flush(key)

    @property
    def owed(self) -> int:
        return len(self._owed)

    def notify(self, user: str, task_id: str, message: str) -> None:
        """Show a task that remoted cannot take yet (nothing recorded for it) as waiting,
        with ``message``.  Its first record continues from this status
        (``first_status``), so the student's side sees that record as newer."""
        key = (user, task_id)
        if key in self._notices:
            return
        status, _event = transition(TaskStatus(id=task_id, owner=user), PENDING, "queued", message=message)
        try:
            self._write(user, task_id, status, [])
        except OSError as exc:
            self.trouble.failed("the students' outboxes", exc)
            return
        self._notices[key] = status

    def first_status(self, user: str, task_id: str, submitted_at: str | None) -> TaskStatus:
        """The status a task's first record starts from: new, or the waiting status
        published for it by ``notify`` (kept until the record's first publication)."""
        notice = self._notices.get((user, task_id))
        status = notice.copy() if notice is not None else TaskStatus(id=task_id, owner=user)
        status.submitted_at = submitted_at
        return status

    def _flush(self, key: tuple[str, str]) -> None:
        owed = self._owed[key]
        try:
            self._write(key[0], key[1], owed.status, owed.events, owed.files)
        except OSError as exc:
            if passing(exc):
                self.trouble.failed("the students' outboxes", exc)
                self._mark(key)
                return
            # The outbox lives in the student's area: whatever the student did to it costs
            # that student their view of the task, never remoted's pass for everyone.
            log.warning("%s/%s: cannot publish the status (%s); the private record is kept", key[0], key[1], exc)
        else:
            self.trouble.ok("the students' outboxes")
        self._unmark(key)
        del self._owed[key]

    def _mark(self, key: tuple[str, str]) -> None:
        if key in self._marked:
            return
        try:
            fsutil.ensure_dirs(self.owed_dir / key[0], mode=0o700)
            fsutil.atomic_write_bytes(self.owed_dir / key[0] / key[1], b"")
            self._marked.add(key)
        except OSError:
            pass     # the same full disk: the owed copy stays in memory only

    def _unmark(self, key: tuple[str, str]) -> None:
        if key not in self._marked:
            return
        try:
            os.unlink(self.owed_dir / key[0] / key[1])
        except FileNotFoundError:
            pass
        except OSError:
            return
        self._marked.discard(key)

    def _write(self, user: str, task_id: str, status: TaskStatus, events: list[dict[str, Any]],
               files: dict[str, bytes] | None = None) -> None:
        """Write ``files`` and append ``events`` (each removed once written), then write
        ``status``: whoever acts on the status finds the rest there."""
        root_uid = 0 if os.geteuid() == 0 else None
        with SafeDir.open(self.root / USERS) as users, users.sub(user) as area, \
                area.sub(OUTBOX, create=True, owner=root_uid, replace_bad=True) as outbox, \
                outbox.sub(task_id, create=True, owner=root_uid, replace_bad=True) as d:
            pending = files if files is not None else {}
            for name in list(pending):
                try:
                    d.write_atomic(name, pending[name])
                except OSError as exc:
                    if passing(exc):
                        raise
                    log.warning("%s/%s: cannot publish %s (%s)", user, task_id, name, exc)   # the status still goes
                del pending[name]
            while events:
                d.append(statusfile.EVENTS, json.dumps(events[0], sort_keys=True, separators=(",", ":")))
                events.pop(0)
            d.write_atomic(statusfile.STATUS, (json.dumps(status.to_dict(), indent=2, sort_keys=True) + "\n").encode())


def _encode(rec: TaskRecord) -> bytes:
    """A private record as compact JSON: written several times per task, and only
    ``json.dumps`` without ``indent`` runs in C (``python -m json.tool`` shows it indented)."""
    return json.dumps(rec.to_dict(), sort_keys=True, separators=(",", ":")).encode() + b"\n"


def _listdir(p: Path) -> list[str]:
    try:
        return sorted(os.listdir(p))
    except (FileNotFoundError, NotADirectoryError):
        return []
