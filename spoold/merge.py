"""Folding the remote side's status into the local task record (pure apart from reads).

The remote status is authoritative for everything after upload; the local record keeps
what only the student's side knows (submission time, upload figures) and appends each new
remote event to its own history, so ``events.jsonl`` on the workstation tells the whole
story from submit to finish.
"""

from __future__ import annotations

from typing import Any

from ailabber.model.task import TaskStatus

REMOTE_FIELDS = ("state", "reason", "message", "exit_code", "started_at", "finished_at", "job_id", "updated_at")


def merge_remote(local: TaskStatus, remote: TaskStatus, remote_events: list[dict[str, Any]]
                 ) -> tuple[TaskStatus, list[dict[str, Any]]] | None:
    """Return the new local status and the events to append, or None if nothing is new."""
    seen = int(local.extra.get("remote_seq", 0))
    if remote.seq <= seen or remote.id != local.id or local.terminal:
        return None
    new = local.copy()
    for name in REMOTE_FIELDS:
        setattr(new, name, getattr(remote, name))
    new.extra["remote_seq"] = remote.seq
    fresh: list[dict[str, Any]] = []
    for e in remote_events:
        if isinstance(e.get("seq"), int) and e["seq"] > seen:
            fresh.append(dict(e, source="remote", remote_seq=e["seq"], seq=local.seq + len(fresh) + 1))
    new.seq = local.seq + max(1, len(fresh))
    return new, fresh
