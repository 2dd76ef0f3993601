"""``submit``: turn a project directory into a committed task in the local spool.

The task is written completely in ``tmp/<id>`` (snapshot, config as submitted, metadata,
manifest, first status), fsynced, and renamed into ``new/<id>``.  Until that rename
nobody sees it; after it, it exists even if the machine loses power.  Any error on the
way leaves the spool as it was.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ailabber import __version__
from ailabber.model import ids
from ailabber.model.config import ConfigError, TaskConfig
from ailabber.model.listing import NAME
from ailabber.model.listing import labels as task_labels
from ailabber.model.render import size
from ailabber.model.task import TaskStatus, now_iso, transition
from ailabber.model.template import refuse_placeholder
from ailabber.storage import fsutil, names, statusfile
from ailabber.storage.home import os_user
from ailabber.storage.manifest import manifest_of
from ailabber.storage.sources import previous_snapshot, remember_latest
from ailabber.storage.spool import FILES, MANIFEST, META, TASK_TOML, Spool
from ailabber.storage.upload_limits import UploadLimits
from ailabber.workstation.project import check_lock, load_task_config_bytes
from ailabber.workstation.snapshot import SnapshotPlan, copy_snapshot, plan_snapshot

if TYPE_CHECKING:      # limits.json brings them, and only then are they checked
    from ailabber.model.joblimits import JobLimits


class Submitted(NamedTuple):
    task_id: str
    config: TaskConfig
    plan: SnapshotPlan
    status: TaskStatus


def prepare(config_path: Path, limits: UploadLimits | None = None,
            jobs: JobLimits | None = None) -> tuple[TaskConfig, SnapshotPlan, bytes]:
    """Validate everything before anything is written (raises ConfigError).  ``jobs``:
    what the cluster lets one task ask for, as limits.json last said."""
    cfg, raw = load_task_config_bytes(config_path)
    refuse_placeholder(cfg)
    refuse_impossible(cfg, config_path.name, jobs)
    check_lock(cfg, config_path)
    plan = plan_snapshot(cfg)
    refused = limit_problems(config_path, plan, limits or UploadLimits())
    if refused:
        raise ConfigError(refused)
    return cfg, plan, raw


def limit_problems(config_path: Path, plan: SnapshotPlan, limits: UploadLimits) -> list[str]:
    """The lines a submit of ``plan`` is refused with under ``limits`` (none: it fits)."""
    too_big = limits.problem(plan.total_bytes, plan.file_count)
    if too_big:
        largest = ", ".join(f"{e.rel} ({size(e.size)})" for e in plan.largest(5))
        return [f"{config_path.name}: files.upload: {too_big}; largest: {largest}; "
                "add what the job does not need to files.ignore or .ailabberignore"]
    over_quota = limits.quota_problem(plan.disk_bytes)    # as of the last limits.json spoold pulled
    if over_quota:
        return [f"{config_path.name}: files.upload: {over_quota}"]
    return []


def refuse_impossible(cfg: TaskConfig, source: str, jobs: JobLimits | None) -> None:
    """A task the cluster could never run (``jobs``: its limits for one task, as limits.json
    last said) is refused now, not failed after its upload."""
    if jobs is None:
        return
    res = cfg.resources
    never = jobs.problems(res.gpus, res.time_limit_s, res.memory_mb)
    if never:
        raise ConfigError([f"{source}: {field}: {why}" for field, why in never])


def submit(config_path: Path, spool: Spool, limits: UploadLimits | None = None,
           jobs: JobLimits | None = None, name: str | None = None) -> Submitted:
    """``name``: the task's name, checked by the caller (``submit --name``); it wins over the config's."""
    cfg, plan, raw = prepare(config_path, limits, jobs)

    def fill(files: Path) -> Listing:
        """The snapshot, sharing what did not change since this project's last task
        (``storage/sources.py``); the task is ``files``' parent, ``tmp/<id>``."""
        task = files.parent
        sources = copy_snapshot(plan, files, durable=False, previous=previous_snapshot(spool, str(plan.root)))
        sources.write(task)
        remember_latest(spool, str(plan.root), task.name)
        return Listing(*plan.listing(FILES), plan.disk_bytes)

    task_id, status = write_task(spool, raw, cfg, fill, {"config_file": str(config_path.absolute())}, name=name)
    return Submitted(task_id, cfg, plan, status)


class Listing(NamedTuple):
    """What a task's ``files/`` holds, as written: for its manifest and its size figures."""
    files: dict[str, int]       # regular files under files/ -> size
    links: dict[str, str]       # symlinks under files/ -> target
    disk_bytes: int             # blocks the files use: what the cluster's quota counts


#: Fills the empty ``files/`` of a task being written and says what it put there.
Fill = Callable[[Path], Listing]


def write_task(spool: Spool, raw: bytes, cfg: TaskConfig, fill: Fill, meta_fields: dict[str, Any],
               status_fields: dict[str, Any] | None = None, name: str | None = None) -> tuple[str, TaskStatus]:
    """Write a new task in ``tmp/<id>`` (``files/`` by ``fill``, ``task.toml`` = ``raw``,
    meta, manifest, first status) and commit it to ``new/``: the one way a task is made,
    whether from a project (``submit``) or from an earlier task (``resubmit``).
    ``meta_fields`` add to or override meta.json; ``status_fields`` go into the status;
    ``name`` (checked by the caller) wins over the config's."""
    labels = task_labels(cfg, name or cfg.name)
    spool.ensure()
    task_id = ids.new_task_id()
    tmp = spool.new_tmp_dir(task_id)
    named = None
    try:
        # Nothing in tmp/ needs to be durable on its own: one flush covers the whole task
        # before commit() renames it into new/ (instead of a fsync per file written).
        with fsutil.deferred_fsync(tmp):
            files = tmp / FILES
            os.mkdir(files, 0o755)
            listing = fill(files)
            files_listed, total = dict(listing.files), sum(listing.files.values())
            fsutil.atomic_write_bytes(tmp / TASK_TOML, raw)
            submitted_at = now_iso()
            meta = {
                "id": task_id,
                "owner": os_user(),
                "uid": os.getuid(),
                "host": os.uname().nodename,
                "submitted_at": submitted_at,
                "client_version": __version__,
                "upload_root": str(cfg.upload_root),
                "workdir": cfg.files.workdir,
                "logs": list(cfg.run.logs),
                "results": list(cfg.run.results),
                "file_count": len(files_listed),
                "total_bytes": total,
                "disk_bytes": listing.disk_bytes,
                **labels,
                **meta_fields,
            }
            fsutil.atomic_write_json(tmp / META, meta)
            for member in (TASK_TOML, META):
                files_listed[member] = os.stat(tmp / member).st_size
            fsutil.atomic_write_json(tmp / MANIFEST, manifest_of(task_id, files_listed, listing.links))
            status = TaskStatus(id=task_id, owner=os_user(), submitted_at=submitted_at)
            status, event = transition(status, "pending", "waiting_for_upload",
                                       upload_bytes_total=total, **labels, **(status_fields or {}))
            event["event"] = "submitted"
            statusfile.record(tmp, status, event)
            if NAME in labels:
                named = names.add(spool.root, labels[NAME], task_id)
        spool.commit(task_id)
    except BaseException:
        spool.discard_tmp(task_id)
        if named is not None:
            names.discard(named)
        raise
    return task_id, status
