"""``submit``: turn a project directory into a committed task in the local spool.

The task is written completely in ``tmp/<id>`` (snapshot, config as submitted, metadata,
manifest, first status), fsynced, and renamed into ``new/<id>``.  Until that rename
nobody sees it; after it, it exists even if the machine loses power.  Any error on the
way leaves the spool as it was.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from ailabber import __version__
from ailabber.model import ids
from ailabber.model.config import ConfigError, TaskConfig
from ailabber.model.joblimits import JobLimits
from ailabber.model.render import size
from ailabber.model.task import TaskStatus, now_iso, transition
from ailabber.storage import fsutil, statusfile
from ailabber.storage.home import os_user
from ailabber.storage.manifest import manifest_of
from ailabber.storage.spool import FILES, MANIFEST, META, TASK_TOML, Spool
from ailabber.storage.upload_limits import UploadLimits
from ailabber.workstation.project import check_lock, load_task_config_bytes
from ailabber.workstation.snapshot import SnapshotPlan, copy_snapshot, plan_snapshot


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
    res = cfg.resources
    never = (jobs or JobLimits()).problems(res.gpus, res.time_limit_s, res.memory_mb)
    if never:
        raise ConfigError([f"{config_path.name}: {field}: {why}" for field, why in never])
    check_lock(cfg, config_path)
    plan = plan_snapshot(cfg)
    limits = limits or UploadLimits()
    too_big = limits.problem(plan.total_bytes, plan.file_count)
    if too_big:
        largest = ", ".join(f"{e.rel} ({size(e.size)})" for e in plan.largest(5))
        raise ConfigError([f"{config_path.name}: files.upload: {too_big}; largest: {largest}; "
                           "add what the job does not need to files.ignore or .ailabberignore"])
    over_quota = limits.quota_problem(plan.disk_bytes)    # as of the last limits.json spoold pulled
    if over_quota:
        raise ConfigError([f"{config_path.name}: files.upload: {over_quota}"])
    return cfg, plan, raw


def submit(config_path: Path, spool: Spool, limits: UploadLimits | None = None,
           jobs: JobLimits | None = None) -> Submitted:
    cfg, plan, raw = prepare(config_path, limits, jobs)
    spool.ensure()
    task_id = ids.new_task_id()
    tmp = spool.new_tmp_dir(task_id)
    try:
        # Nothing in tmp/ needs to be durable on its own: one flush covers the whole task
        # before commit() renames it into new/ (instead of a fsync per file written).
        with fsutil.deferred_fsync(tmp):
            files = tmp / FILES
            os.mkdir(files, 0o755)
            copy_snapshot(plan, files, durable=False)
            fsutil.atomic_write_bytes(tmp / TASK_TOML, raw)
            submitted_at = now_iso()
            meta = {
                "id": task_id,
                "owner": os_user(),
                "uid": os.getuid(),
                "host": os.uname().nodename,
                "submitted_at": submitted_at,
                "client_version": __version__,
                "config_file": str(config_path.absolute()),
                "upload_root": str(cfg.upload_root),
                "workdir": cfg.files.workdir,
                "logs": list(cfg.run.logs),
                "results": list(cfg.run.results),
                "file_count": plan.file_count,
                "total_bytes": plan.total_bytes,
                "disk_bytes": plan.disk_bytes,
            }
            fsutil.atomic_write_json(tmp / META, meta)
            files_listed, links = plan.listing(FILES)
            for member in (TASK_TOML, META):
                files_listed[member] = os.stat(tmp / member).st_size
            fsutil.atomic_write_json(tmp / MANIFEST, manifest_of(task_id, files_listed, links))
            status = TaskStatus(id=task_id, owner=os_user(), submitted_at=submitted_at)
            status, event = transition(status, "pending", "waiting_for_upload",
                                       upload_bytes_total=plan.total_bytes)
            event["event"] = "submitted"
            statusfile.record(tmp, status, event)
        spool.commit(task_id)
    except BaseException:
        spool.discard_tmp(task_id)
        raise
    return Submitted(task_id, cfg, plan, status)
