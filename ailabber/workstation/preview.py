"""``submit --dry-run``: every decision a submit would make, with nothing written.

The same steps as a submit (read the config, check the lock, plan the snapshot, check the
limits the CLI knows) then, instead of the copy, what a student needs to trim an upload:
what each ignore rule left out (walking the excluded directories, which a real submit
never enters), what is new or changed since the last task submitted from the same upload
directory (against that task's manifest and snapshot in the spool), how the upload sits
against each limit, and the warnings a submit would print.  Reads the spool, never writes
to it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import NamedTuple

from ailabber.model.config import ConfigError, TaskConfig
from ailabber.model.joblimits import JobLimits
from ailabber.model.template import refuse_placeholder
from ailabber.storage import fsutil
from ailabber.storage.spool import FILES, MANIFEST, META, Spool
from ailabber.storage.upload_limits import UploadLimits
from ailabber.workstation.ignore import Rule
from ailabber.workstation.project import check_lock, load_task_config
from ailabber.workstation.snapshot import FILE, SYMLINK, Excluded, SnapshotPlan, plan_snapshot
from ailabber.workstation.submit import limit_problems, refuse_impossible
from ailabber.workstation.upload_warnings import UploadWarning, upload_warnings

#: How many earlier tasks are searched for the last one of the same upload directory.
SEARCH_TASKS = 500


class RuleTally(NamedTuple):
    rule: Rule
    paths: int          # entries the rule matched itself (a directory counts once)
    files: int          # files and symlinks left out, those inside excluded directories included
    bytes: int


class Changes(NamedTuple):
    since: str                  # the earlier task's id
    submitted_at: str | None
    new: list[str]
    changed: list[str]          # another size, modification time, kind or link target
    removed: list[str]
    bytes: int                  # of the new and changed files


class LimitCheck(NamedTuple):
    name: str                   # "max_upload_bytes", "max_upload_files", "max_disk_bytes"
    value: int                  # what this upload needs
    limit: int | None           # None: no limit known
    used: int | None = None     # max_disk_bytes: what is already kept on the cluster

    @property
    def fits(self) -> bool:
        """As ``submit`` judges: a quota whose usage is not known yet holds nothing back."""
        if self.limit is None or (self.name == "max_disk_bytes" and self.used is None):
            return True
        return (self.used or 0) + self.value <= self.limit


class Preview(NamedTuple):
    config: TaskConfig
    plan: SnapshotPlan
    excluded: list[RuleTally]
    changes: Changes | None
    limits: list[LimitCheck]
    warnings: list[UploadWarning]
    refusals: list[str]         # the lines a submit would refuse it with; empty: accepted


def preview(config_path: Path, spool: Spool, limits: UploadLimits, jobs: JobLimits | None = None) -> Preview:
    """What ``submit`` would do; ``ConfigError`` when it could not even plan the upload.
    Every refusal ``submit`` makes before writing is collected, in ``submit``'s order."""
    cfg = load_task_config(config_path)
    refusals: list[str] = []
    for check in (lambda: refuse_placeholder(cfg), lambda: refuse_impossible(cfg, config_path.name, jobs),
                  lambda: check_lock(cfg, config_path)):
        try:
            check()
        except ConfigError as exc:
            refusals.extend(exc.problems)
    try:
        plan = plan_snapshot(cfg)
    except ConfigError as exc:
        raise ConfigError(refusals + exc.problems) from None
    refusals.extend(limit_problems(config_path, plan, limits))
    return Preview(
        config=cfg, plan=plan, excluded=tally_excluded(plan), changes=changes_since_last(spool, plan),
        limits=limit_checks(plan, limits), warnings=upload_warnings(plan.entries, cfg.files),
        refusals=refusals)


# --------------------------------------------------------------------------- left out


def _tree_size(path: str) -> tuple[int, int]:
    """Files (and symlinks) and bytes below ``path``, never following a symlink; what
    cannot be read counts as nothing."""
    files = size = 0
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                entries = list(it)
        except OSError:
            continue
        for de in entries:
            try:
                if de.is_dir(follow_symlinks=False):
                    stack.append(de.path)
                elif de.is_symlink():
                    files += 1
                elif de.is_file(follow_symlinks=False):
                    files += 1
                    size += de.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return files, size


def _entry_size(root: Path, ex: Excluded) -> tuple[int, int]:
    path = os.path.join(root, ex.rel)
    if ex.is_dir:
        try:
            if not stat.S_ISLNK(os.lstat(path).st_mode):
                return _tree_size(path)
        except OSError:
            return 0, 0
        return 1, 0             # a symlink to a directory left out: one entry
    try:
        st = os.lstat(path)
    except OSError:
        return 0, 0
    return 1, st.st_size if stat.S_ISREG(st.st_mode) else 0


def tally_excluded(plan: SnapshotPlan) -> list[RuleTally]:
    """Per deciding rule: what it left out, largest first."""
    out: dict[tuple[str, int, str], RuleTally] = {}
    for ex in plan.excluded:
        files, size = _entry_size(plan.root, ex)
        key = (ex.rule.source, ex.rule.line, ex.rule.text)
        got = out.get(key)
        out[key] = (RuleTally(ex.rule, 1, files, size) if got is None
                    else RuleTally(got.rule, got.paths + 1, got.files + files, got.bytes + size))
    return sorted(out.values(), key=lambda t: (-t.bytes, -t.files, t.rule.where()))


# --------------------------------------------------------------------------- since last


def last_task_of(spool: Spool, upload_root: Path) -> tuple[str, Path, dict[str, object]] | None:
    """The newest task in the spool submitted from ``upload_root``: (id, dir, meta)."""
    for task_id in sorted(spool.all_ids(), reverse=True)[:SEARCH_TASKS]:
        loc = spool.locate(task_id)
        if loc is None:
            continue
        meta = fsutil.read_json_or_none(loc[1] / META)
        if isinstance(meta, dict) and meta.get("upload_root") == str(upload_root):
            return task_id, loc[1], meta
    return None


def _same_file(new: str, old: str) -> bool:
    """Size and modification time, as rsync's quick check (the snapshot keeps mtimes)."""
    try:
        a, b = os.lstat(new), os.lstat(old)
    except OSError:
        return False
    return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns


def changes_since_last(spool: Spool, plan: SnapshotPlan) -> Changes | None:
    found = last_task_of(spool, plan.root)
    if found is None:
        return None
    task_id, task_dir, meta = found
    manifest = fsutil.read_json_or_none(task_dir / MANIFEST)
    if not isinstance(manifest, dict):
        return None
    prefix = f"{FILES}/"
    old_files = {k[len(prefix):]: v for k, v in (manifest.get("files") or {}).items() if k.startswith(prefix)}
    old_links = {k[len(prefix):]: v for k, v in (manifest.get("symlinks") or {}).items() if k.startswith(prefix)}
    new: list[str] = []
    changed: list[str] = []
    sent = 0
    seen: set[str] = set()
    for e in plan.entries:
        if e.kind not in (FILE, SYMLINK):
            continue
        seen.add(e.rel)
        if e.kind == FILE and e.rel in old_files:
            same = old_files[e.rel] == e.size and _same_file(
                os.path.join(plan.root, e.rel), os.path.join(task_dir, FILES, e.rel))
        elif e.kind == SYMLINK and e.rel in old_links:
            same = old_links[e.rel] == e.target
        elif e.rel in old_files or e.rel in old_links:
            same = False            # a file became a link, or a link a file
        else:
            new.append(e.rel)
            sent += e.size
            continue
        if not same:
            changed.append(e.rel)
            sent += e.size
    removed = sorted(r for r in (*old_files, *old_links) if r not in seen)
    submitted_at = meta.get("submitted_at")
    return Changes(task_id, submitted_at if isinstance(submitted_at, str) else None,
                   new, changed, removed, sent)


# --------------------------------------------------------------------------- limits


def limit_checks(plan: SnapshotPlan, limits: UploadLimits) -> list[LimitCheck]:
    return [
        LimitCheck("max_upload_bytes", plan.total_bytes, limits.max_bytes),
        LimitCheck("max_upload_files", plan.file_count, limits.max_files),
        LimitCheck("max_disk_bytes", plan.disk_bytes, limits.max_disk_bytes,
                   limits.disk_used_bytes if limits.max_disk_bytes is not None else None),
    ]
