"""``resubmit``: the snapshot of an earlier task, as a new task, optionally with edits.

The new task is written like any other (``submit.write_task``: ``tmp/<id>`` then rename to
``new/``), but its ``files/`` are hard links to the earlier task's: nothing is copied, and
nothing can differ.  That is safe because a file in the spool is never changed in place:
``submit`` writes it once, rsync only reads it, and what comes back (results, logs) goes
into other files.  The earlier task may move from stage to stage (``new/`` -> ``synced/``
-> ``done/``) while this runs, so it is opened once as a directory handle and everything
is read and linked relative to that handle, never by a path that a rename could change.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ailabber.model.config import MAX_CONFIG_BYTES, ConfigError, TaskConfig, decode_config, parse_task_config
from ailabber.model.config_edit import edited_config, parse_edit
from ailabber.model.config_fields import Problems
from ailabber.model.joblimits import JobLimits
from ailabber.model.listing import NAME
from ailabber.model.task import TaskStatus
from ailabber.storage.filecopy import link_or_copy
from ailabber.storage.spool import FILES, META, TASK_TOML, Spool
from ailabber.storage.upload_limits import UploadLimits
from ailabber.workstation.project import UploadDir
from ailabber.workstation.submit import Listing, refuse_impossible, write_task


class Resubmitted(NamedTuple):
    task_id: str
    config: TaskConfig
    listing: Listing
    status: TaskStatus


def resubmit(spool: Spool, original: str, edits: Sequence[str], limits: UploadLimits | None = None,
             jobs: JobLimits | None = None, name: str | None = None) -> Resubmitted:
    """A new task from the task ``original`` (a full id) with ``edits`` (``TABLE.KEY=VALUE``)
    applied to its config.  Raises ``EditError`` or ``ConfigError`` (nothing written) for
    an edit or a config that cannot be used."""
    parsed = [parse_edit(e) for e in edits]
    fd = _open_task(spool, original)
    try:
        raw = _read(fd, TASK_TOML, MAX_CONFIG_BYTES)
        meta = _meta(fd)
        source = Path("--edit" if parsed else TASK_TOML)
        text = decode_config(raw, source)
        if parsed:
            text = edited_config(text, parsed)
            raw = text.encode()
        cfg = parse_task_config(text, source)      # every value, before anything is written
        refuse_impossible(cfg, str(source), jobs)
        _check_limits(original, meta, limits)

        linked: list[Listing] = []

        def fill(files: Path) -> Listing:
            linked.append(link_tree(fd, files))
            # The files the config names, checked in the snapshot it will run with.
            parse_task_config(text, source, lambda p, _raw, _norm: UploadDir(files))
            return linked[0]

        fields: dict[str, Any] = {k: meta[k] for k in ("config_file", "upload_root") if k in meta}
        fields.update(rerun_of=original, edits=list(edits))
        kept = meta.get(NAME) if isinstance(meta.get(NAME), str) else None    # its --name, if any
        task_id, status = write_task(spool, raw, cfg, fill, fields, {"rerun_of": original}, name=name or kept)
    finally:
        os.close(fd)
    return Resubmitted(task_id, cfg, linked[0], status)


def _open_task(spool: Spool, task_id: str) -> int:
    """A handle of the task's directory, wherever it is: a rename between finding it and
    opening it (spoold moving it on) is followed by looking again."""
    for _attempt in range(3):
        loc = spool.locate(task_id)
        if loc is None:
            break
        try:
            return os.open(loc[1], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
    raise FileNotFoundError(errno.ENOENT, f"task {task_id} is no longer in the spool", str(spool.root))


def _read(dir_fd: int, name: str, limit: int) -> bytes:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ConfigError([f"{name}: file: is larger than {limit} bytes"])
    return data


def _meta(dir_fd: int) -> dict[str, Any]:
    import json

    try:
        meta = json.loads(_read(dir_fd, META, 1 << 20))
    except (OSError, ValueError):
        meta = None
    return meta if isinstance(meta, dict) else {}


def _check_limits(original: str, meta: dict[str, Any], limits: UploadLimits | None) -> None:
    """The limits as ``submit`` checks them, with the earlier task's figures (its files)."""
    if limits is None:
        return
    total, count = int(meta.get("total_bytes") or 0), int(meta.get("file_count") or 0)
    problem = limits.problem(total, count) or limits.quota_problem(int(meta.get("disk_bytes", total) or 0))
    if problem:
        p = Problems(Path(original))
        p.add("files.upload", problem)
        raise ConfigError(p.lines)


def link_tree(task_fd: int, dest: Path) -> Listing:
    """Hard-link every file under the task's ``files/`` into the empty ``dest``, recreate
    its directories (mode and mtime) and symlinks; never follows a symlink."""
    top = os.open(FILES, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=task_fd)
    files: dict[str, int] = {}
    links: dict[str, str] = {}
    disk = 0
    dirs: list[tuple[str, os.stat_result]] = []
    stack = [(top, "")]
    try:
        while stack:
            fd, rel = stack.pop()
            try:
                for entry in sorted(os.scandir(fd), key=lambda e: e.name):
                    name = f"{rel}{entry.name}"
                    st = entry.stat(follow_symlinks=False)
                    out = dest / name
                    if stat.S_ISDIR(st.st_mode):
                        os.mkdir(out, 0o700)
                        dirs.append((name, st))
                        sub = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                      dir_fd=fd)
                        stack.append((sub, name + "/"))
                    elif stat.S_ISREG(st.st_mode):
                        link_or_copy(entry.name, out, src_dir_fd=fd)
                        files[f"{FILES}/{name}"] = st.st_size
                        disk += st.st_blocks * 512
                    elif stat.S_ISLNK(st.st_mode):
                        target = os.readlink(entry.name, dir_fd=fd)
                        os.symlink(target, out)
                        os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
                        links[f"{FILES}/{name}"] = target
            finally:
                os.close(fd)
    finally:
        for fd, _rel in stack:
            os.close(fd)
    for name, st in reversed(dirs):   # deepest first: filling a directory changes its mtime
        os.chmod(dest / name, stat.S_IMODE(st.st_mode) | 0o700)
        os.utime(dest / name, ns=(st.st_atime_ns, st.st_mtime_ns))
    return Listing(files, links, disk)

