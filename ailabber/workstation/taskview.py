"""What the CLI (and the student's web page) shows of the tasks, read from the spool only:
every task's status (``tasks_in``), where a waiting task stands (``outbox/queue.json``,
which spoold pulls with the statuses) and the task's time limit (from its ``task.toml``,
as submitted)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ailabber.model.task import TaskStatus
from ailabber.storage import fsutil, statusfile
from ailabber.storage.spool import QUEUE, STAGES, TASK_TOML, Spool

if TYPE_CHECKING:       # imported only when there is a queue to read: list starts faster
    from ailabber.model.queueinfo import QueueEntry


def tasks_in(spool: Spool, states: Collection[str] | None) -> list[tuple[str, str, TaskStatus]]:
    """(id, stage, status) of every task in one of ``states`` (all if None or empty), oldest first."""
    found = []
    for stage in STAGES:
        stage_dir = str(spool.stage_dir(stage))
        for task_id in spool.ids_in(stage):
            st = statusfile.read_status(f"{stage_dir}/{task_id}")
            if st is not None and (not states or st.state in states):
                found.append((task_id, stage, st))
    found.sort(key=lambda t: t[0])
    return found


def queue_entries(spool: Spool) -> dict[str, QueueEntry]:
    """Every waiting task's entry as spoold last pulled them ({} when none was pulled)."""
    doc = fsutil.read_json_or_none(spool.outbox_dir / QUEUE)
    if not doc:
        return {}
    from ailabber.model.queueinfo import parse_queue_document

    return parse_queue_document(doc)


def with_queue(d: dict[str, Any], st: TaskStatus, entry: QueueEntry | None) -> dict[str, Any]:
    """``status --json`` fields plus the queue entry's, for a task still waiting on the cluster."""
    from ailabber.model.progress import waiting

    entry = waiting(st, entry)
    return {**d, **entry.to_dict()} if entry is not None else d


def time_limit(task_dir: Path, st: TaskStatus) -> int | None:
    """The task's ``resources.time_limit`` in seconds: as ``submit`` put it in the status
    (``time_limit_s``), else from the config it was submitted with (a task written by an
    older version); None when neither can be read."""
    from ailabber.model.listing import TIME_LIMIT

    kept = st.extra.get(TIME_LIMIT)
    if isinstance(kept, int) and not isinstance(kept, bool):
        return kept
    from ailabber.model.config import ConfigError, parse_frozen_config

    try:
        data = fsutil.read_small(task_dir / TASK_TOML)
        return parse_frozen_config(data, task_dir / TASK_TOML).resources.time_limit_s
    except (OSError, ConfigError, ValueError):
        return None
