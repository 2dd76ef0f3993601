"""Accepting uploads: a commit marker (manifest) in ``incoming/commit`` plus the files in
``incoming/tmp/<id>`` become a task, once, and only when the upload is whole.

Everything here is untrusted input from a student's transport: the task id must be a
well-formed id, the manifest must match the files, and the config is validated again
exactly as ``submit`` did.  The user is the directory the upload arrived in.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

from ailabber import fsutil, ids, manifest, spool as local_spool
from ailabber.config import ConfigError, TaskConfig, load_task_config
from ailabber.faults import crash_point
from ailabber.remote_layout import RUN, UserArea, valid_user
from ailabber.task import FAILED, TaskStatus, now_iso, parse_iso, transition
from remoted.identity import IdentityError, RunAs, find_uv, job_path, owner_of
from remoted.jobspec import JobSpec
from remoted.records import QUEUED, RecordStore, TaskRecord, publish

log = logging.getLogger(__name__)


def user_areas(root: Path) -> list[UserArea]:
    try:
        names = sorted(os.listdir(root / "users"))
    except FileNotFoundError:
        return []
    return [UserArea(root, n) for n in names if valid_user(n) and (root / "users" / n).is_dir()]


def build_spec(root: Path, area: UserArea, task_id: str, cfg: TaskConfig, kill_grace: float,
               env_cache: Path, run_as: RunAs, job_python: str | None = None, uv: str | None = None,
               signal_before: int = 0) -> JobSpec:
    task_dir = area.task(task_id)
    files = task_dir / local_spool.FILES
    env = cfg.environment
    return JobSpec(
        task_id=task_id, user=area.user,
        workdir=str(files / cfg.files.workdir if cfg.files.workdir != "." else files),
        run_dir=str(task_dir / RUN), log_dir=str(area.task_outbox(task_id) / "logs"),
        commands=list(cfg.run.commands), gpus=cfg.resources.gpus, cpus=cfg.resources.cpus,
        memory_mb=cfg.resources.memory_mb, time_limit_s=cfg.resources.time_limit_s,
        kill_grace=kill_grace, env_cache=str(env_cache / area.user),
        uid=run_as.uid, gid=run_as.gid, uv=uv or find_uv(job_python), python=job_python or sys.executable,
        signal_before=signal_before, path=job_path(),
        pyproject=str(files / env.pyproject_toml) if env.pyproject_toml else None,
        uv_lock=str(files / env.uv_lock) if env.uv_lock else None,
        wheels=[str(files / w) for w in env.extra_wheels],
    )


class Intake:
    def __init__(self, root: Path, store: RecordStore, kill_grace: float, env_cache: Path,
                 job_python: str | None = None, uv: str | None = None, signal_before: int = 0):
        self.signal_before = signal_before
        self.job_python = job_python
        self.uv = uv
        self.root = root
        self.store = store
        self.kill_grace = kill_grace
        self.env_cache = env_cache

    def scan(self, next_order: int) -> list[TaskRecord]:
        accepted: list[TaskRecord] = []
        for area in user_areas(self.root):
            try:
                markers = sorted(os.listdir(area.incoming_commit))
            except FileNotFoundError:
                continue
            for name in markers:
                if name.startswith(".") or not name.endswith(".json"):
                    continue  # rsync's temporary files, editors' leftovers
                task_id = name[: -len(".json")]
                rec = self._accept(area, task_id, area.incoming_commit / name, next_order + len(accepted))
                if rec is not None:
                    accepted.append(rec)
        return accepted

    def _accept(self, area: UserArea, task_id: str, marker: Path, order: int) -> TaskRecord | None:
        if not ids.is_task_id(task_id):
            log.warning("%s: ignoring marker with a malformed task id: %s", area.user, marker.name)
            _unlink(marker)
            return None
        upload = area.incoming_tmp / task_id
        task_dir = area.task(task_id)
        if self.store.exists(area.user, task_id):
            # A repeated push (spoold crashed after sending the marker): already ours.
            _discard(upload)
            _unlink(marker)
            return None
        if not task_dir.exists():
            problems = manifest.verify_manifest(upload, fsutil.read_json_or_none(marker))
            if problems:
                return self._reject(area, task_id, marker, upload, order,
                                    f"incomplete or inconsistent upload: {problems[0]}")
            fsutil.ensure_dirs(area.tasks)
            fsutil.fsync_tree(upload)        # rsync does not fsync; the accept must be durable
            fsutil.commit_rename(upload, task_dir)
            crash_point("remoted:after_accept_rename")
        rec = self._make_record(area, task_id, order)
        if rec.status.terminal:
            self.store.finish(rec)
        else:
            self.store.save(rec)
        publish(self.root, rec, {"at": rec.status.updated_at, "seq": rec.status.seq, "state": rec.status.state,
                                 "reason": rec.status.reason, "message": rec.status.message})
        _unlink(marker)
        _discard(upload)
        log.info("%s: accepted task %s (%s)", area.user, task_id, rec.status.state)
        return rec

    def _make_record(self, area: UserArea, task_id: str, order: int) -> TaskRecord:
        task_dir = area.task(task_id)
        meta = fsutil.read_json_or_none(task_dir / local_spool.META)
        submitted = meta.get("submitted_at") if isinstance(meta, dict) else None
        if not isinstance(submitted, str) or parse_iso(submitted) is None:
            submitted = now_iso()
        status = TaskStatus(id=task_id, owner=area.user, submitted_at=submitted)
        try:
            cfg = load_task_config(task_dir / local_spool.TASK_TOML, upload_root_override=task_dir / local_spool.FILES)
        except ConfigError as exc:
            status, _ = transition(status, FAILED, "rejected", message=str(exc).splitlines()[0])
            return TaskRecord(id=task_id, user=area.user, status=status, order=order)
        try:
            run_as = owner_of(area.path)
        except IdentityError as exc:
            status, _ = transition(status, FAILED, "rejected", message=str(exc))
            return TaskRecord(id=task_id, user=area.user, status=status, order=order)
        spec = build_spec(self.root, area, task_id, cfg, self.kill_grace, self.env_cache, run_as,
                          self.job_python, self.uv, self.signal_before)
        status, _ = transition(status, "pending", "queued")
        return TaskRecord(id=task_id, user=area.user, status=status, spec=spec, phase=QUEUED, order=order)

    def _reject(self, area: UserArea, task_id: str, marker: Path, upload: Path, order: int, why: str) -> TaskRecord:
        log.warning("%s: rejecting task %s: %s", area.user, task_id, why)
        status = TaskStatus(id=task_id, owner=area.user, submitted_at=now_iso())
        status, event = transition(status, FAILED, "rejected", message=why)
        rec = TaskRecord(id=task_id, user=area.user, status=status, order=order)
        self.store.finish(rec)
        publish(self.root, rec, event)
        _unlink(marker)
        _discard(upload)
        return rec


def _unlink(p: Path) -> None:
    try:
        os.unlink(p)
    except FileNotFoundError:
        pass


def _discard(p: Path) -> None:
    if p.exists():
        shutil.rmtree(p, ignore_errors=True)
