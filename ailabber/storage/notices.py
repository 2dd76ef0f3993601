"""Notices of finished tasks on disk: the queue spoold works through, and each task's record.

``spool/notify/<id>`` is queued (an empty file, written atomically) just before spoold
moves a finished task to ``done/``; spoold takes it from there once the task is in
``done/``.  Before anything is sent, ``done/<id>/notified.json`` is written, and only then
is the queue entry removed: a task is notified at most once, even when spoold stops at
any point in between (see ``spoold/notices.py``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ailabber.model import ids
from ailabber.model.notice import NOTICE_FILE
from ailabber.storage import fsutil
from ailabber.storage.spool import Spool

QUEUE = "notify"


def queue_dir(spool: Spool) -> Path:
    return spool.root / QUEUE


def queue(spool: Spool, task_id: str) -> None:
    """Ask for ``task_id``'s notice; durable before the caller moves the task on."""
    d = queue_dir(spool)
    d.mkdir(mode=0o700, exist_ok=True)
    fsutil.atomic_write_bytes(d / task_id, b"", 0o600)


def queued(spool: Spool) -> list[str]:
    try:
        names = os.listdir(queue_dir(spool))
    except FileNotFoundError:
        return []
    return sorted(n for n in names if ids.is_task_id(n))


def unqueue(spool: Spool, task_id: str) -> None:
    try:
        os.unlink(queue_dir(spool) / task_id)
    except FileNotFoundError:
        return
    fsutil.fsync_dir(queue_dir(spool))


def read_record(task_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    data = fsutil.read_json_or_none(os.path.join(task_dir, NOTICE_FILE))
    return data if isinstance(data, dict) else None


def write_record(task_dir: Path, record: dict[str, Any]) -> None:
    fsutil.atomic_write_json(task_dir / NOTICE_FILE, record)
