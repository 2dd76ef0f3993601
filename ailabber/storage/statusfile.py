"""A task directory's state on disk: ``status.json`` replaced atomically, ``events.jsonl``
appended.  Used by the local spool and by remoted's published outbox alike, so ``cat``
works the same on both ends."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ailabber.model.task import TaskStatus
from ailabber.storage import fsutil

STATUS = "status.json"
EVENTS = "events.jsonl"


def read_status(task_dir: str | os.PathLike[str]) -> TaskStatus | None:
    # os.path.join, not Path: `ailabber list` calls this once per task in the spool
    data = fsutil.read_json_or_none(os.path.join(task_dir, STATUS))
    if not isinstance(data, dict):
        return None
    try:
        return TaskStatus.from_dict(data)
    except (TypeError, ValueError):
        return None


def record(task_dir: Path, status: TaskStatus, event: dict[str, Any] | None) -> None:
    """Append the event first, then replace the status: after a crash between the two the
    history is never behind what ``status.json`` claims."""
    if event is not None:
        fsutil.append_json_line(task_dir / EVENTS, event)
    fsutil.atomic_write_json(task_dir / STATUS, status.to_dict())


def read_events(task_dir: Path) -> list[dict[str, Any]]:
    return [e for e in fsutil.read_json_lines(task_dir / EVENTS) if isinstance(e, dict)]
