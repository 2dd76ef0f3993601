"""remoted's own record of each task, kept outside every user's directory.

``state/active/<user>/<id>.json`` while unfinished, ``state/done/<user>/<id>.json`` after.
The record holds the public status plus what only remoted may trust: the job spec it
derived, the scheduler handle, and the phase of the launch (``queued`` -> ``launching``
-> ``launched``).  ``launching`` is written *before* the scheduler is called, so after a
crash remoted knows to look for the job instead of starting it again.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ailabber import fsutil, ids, statusfile
from ailabber.remote_layout import valid_user
from ailabber.task import TaskStatus
from remoted.jobspec import JobSpec
from remoted.schedulers.base import JobHandle

log = logging.getLogger(__name__)

ACCEPTING, QUEUED, LAUNCHING, LAUNCHED, FINISHED = "accepting", "queued", "launching", "launched", "finished"


@dataclass
class TaskRecord:
    id: str
    user: str
    status: TaskStatus
    spec: JobSpec | None = None
    phase: str = QUEUED
    handle: JobHandle | None = None
    cancel_requested: bool = False
    order: int = 0                     # arrival order, for FIFO within a user
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "user": self.user, "status": self.status.to_dict(),
            "spec": self.spec.to_dict() if self.spec else None, "phase": self.phase,
            "handle": self.handle.to_dict() if self.handle else None,
            "cancel_requested": self.cancel_requested, "order": self.order, "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskRecord:
        return cls(
            id=d["id"], user=d["user"], status=TaskStatus.from_dict(d["status"]),
            spec=JobSpec.from_dict(d["spec"]) if d.get("spec") else None,
            phase=d.get("phase", QUEUED),
            handle=JobHandle.from_dict(d["handle"]) if d.get("handle") else None,
            cancel_requested=bool(d.get("cancel_requested")), order=int(d.get("order", 0)),
            extra=dict(d.get("extra") or {}),
        )


class RecordStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.active_dir = self.root / "state" / "active"
        self.done_dir = self.root / "state" / "done"

    def ensure(self) -> None:
        fsutil.ensure_dirs(self.active_dir, self.done_dir, mode=0o700)

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

    def save(self, rec: TaskRecord) -> None:
        p = self._path(self.active_dir, rec.user, rec.id)
        fsutil.ensure_dirs(p.parent, mode=0o700)
        fsutil.atomic_write_bytes(p, _encode(rec))

    def finish(self, rec: TaskRecord) -> None:
        """Write the final record into done/, then drop the active one (done wins on restart)."""
        rec.phase = FINISHED
        dst = self._path(self.done_dir, rec.user, rec.id)
        fsutil.ensure_dirs(dst.parent, mode=0o700)
        fsutil.atomic_write_bytes(dst, _encode(rec))
        try:
            os.unlink(self._path(self.active_dir, rec.user, rec.id))
        except FileNotFoundError:
            pass

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


def publish(root: Path, rec: TaskRecord, event: dict[str, Any] | None) -> None:
    """Write the public status where the user's transport can pull it: through directory
    handles, so a symlink the student planted in the outbox redirects nothing."""
    import json

    from ailabber.safedir import SafeDir

    root_uid = 0 if os.geteuid() == 0 else None
    try:
        with SafeDir.open(root / "users") as users, users.sub(rec.user) as area, \
                area.sub("outbox", create=True, owner=root_uid, replace_bad=True) as outbox, \
                outbox.sub(rec.id, create=True, owner=root_uid, replace_bad=True) as d:
            if event is not None:
                d.append(statusfile.EVENTS, json.dumps(event, sort_keys=True, separators=(",", ":")))
            d.write_atomic(statusfile.STATUS,
                           (json.dumps(rec.status.to_dict(), indent=2, sort_keys=True) + "\n").encode())
    except OSError as exc:
        # The outbox lives in the student's area: whatever the student did to it costs
        # that student their view of the task, never remoted's pass for everyone.
        log.warning("%s/%s: cannot publish the status (%s); the private record is kept", rec.user, rec.id, exc)


def _encode(rec: TaskRecord) -> bytes:
    """A private record as compact JSON: written several times per task, and only
    ``json.dumps`` without ``indent`` runs in C (``python -m json.tool`` shows it indented)."""
    import json

    return json.dumps(rec.to_dict(), sort_keys=True, separators=(",", ":")).encode() + b"\n"


def _listdir(p: Path) -> list[str]:
    try:
        return sorted(os.listdir(p))
    except (FileNotFoundError, NotADirectoryError):
        return []
