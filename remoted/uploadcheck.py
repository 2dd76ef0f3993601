"""Judging one upload: whether the files a student committed may become a task, and what
the accepted task's own files say.

``remoted.intake`` runs the pass over every student's ``incoming/`` and does the moving
and recording; this module only looks.  Everything it looks at is the student's and can
change at any moment, so it reads only through directory handles that follow no symlink
(``ailabber.storage.safedir``), checks the manifest against the files through the one
handle it then remembers (``same_as_checked`` tells a directory swapped in before the
accepting rename from the one checked), and validates ``task.toml`` from the bytes it
read once, exactly as ``submit`` did.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ailabber.model.config import MAX_CONFIG_BYTES, ConfigError, parse_frozen_config
from ailabber.model.names import is_name
from ailabber.model.remote_layout import TASKS, TMP, USERS, UserArea
from ailabber.model.task import parse_iso
from ailabber.storage import fsutil, manifest
from ailabber.storage import spool as local_spool
from ailabber.storage.safedir import SafeDir, open_beneath
from ailabber.storage.upload_limits import UploadLimits
from remoted.quota import DiskUsage

if TYPE_CHECKING:
    from ailabber.model.config import TaskConfig

#: What ``UploadCheck.refusal`` says of a commit marker that came without any upload.
NO_UPLOAD = "no upload"


class UploadCheck:
    """The checks an upload passes before it is taken: its members, the manifest, the
    size limits and the student's disk quota, all through one open handle."""

    def __init__(self, root: Path, limits: Callable[[str], UploadLimits], usage: DiskUsage):
        """``limits``: each student's upload limits and disk quota."""
        self.root = root
        self.limits = limits
        self.usage = usage
        #: (user, id) -> (device, inode) of each upload checked and not yet taken.
        self._checked: dict[tuple[str, str], tuple[int, int]] = {}

    def refusal(self, area: UserArea, incoming: SafeDir, commit: SafeDir, marker: str, task_id: str) -> str | None:
        """Why the upload cannot be accepted (None: it can; ``NO_UPLOAD``: there is none)."""
        try:
            data = read_marker(commit, marker)
        except OSError as exc:
            return f"unreadable commit marker: {exc.strerror or exc}"
        try:
            with incoming.sub(TMP) as tmp:
                try:
                    st = tmp.lstat(task_id)
                except FileNotFoundError:
                    return NO_UPLOAD
                if not stat.S_ISDIR(st.st_mode):
                    return "the upload is not a directory"
                with tmp.sub(task_id) as up:
                    why = self._check_open(area, up, data)
                    checked = os.fstat(up.fd)
                    self._checked[(area.user, task_id)] = (checked.st_dev, checked.st_ino)
        except FileNotFoundError as exc:
            return f"incomplete upload: {Path(exc.filename or '?').name} is missing"
        except OSError as exc:
            return f"unreadable upload: {exc.strerror or exc}"
        if why:
            return why
        fsutil.sync_filesystem(self.root)   # rsync does not fsync; the accept must be durable
        return None

    def _check_open(self, area: UserArea, up: SafeDir, data: object) -> str | None:
        """The checks of an upload, all through its one open handle: its members, the
        manifest, the size limits and the student's disk quota."""
        for member in (local_spool.TASK_TOML, local_spool.META):
            if not stat.S_ISREG(up.lstat(member).st_mode):
                return f"{member} is not a regular file"
        if not stat.S_ISDIR(up.lstat(local_spool.FILES).st_mode):
            return "files/ is not a directory"
        problems = manifest.verify_manifest(up.fd, data)
        if problems:
            return f"incomplete or inconsistent upload: {problems[0]}"
        if isinstance(data, dict) and isinstance(data.get("files"), dict):
            # The project's files only, as submit counted them (not task.toml / meta.json).
            project = {k: v for k, v in data["files"].items() if k.startswith(local_spool.FILES + "/")}
            too_big = self.limits(area.user).problem(sum(v for v in project.values() if isinstance(v, int)),
                                                     len(project))
            if too_big:
                return too_big
        return self.usage.admit(area.user, up, self.limits(area.user))

    def same_as_checked(self, area: UserArea, commit: SafeDir, marker: str, tasks: SafeDir, task_id: str,
                        taken: os.stat_result) -> str | None:
        """Why the directory now in ``tasks/<id>`` is not the upload that was checked
        (None if it is).  The student can swap ``incoming/tmp/<id>`` between the check
        and the rename; the checked directory's identity says whether that happened.  After
        a restart that identity is gone, and the taken directory is checked again."""
        checked = self._checked.pop((area.user, task_id), None)
        if checked is not None:
            same = checked == (taken.st_dev, taken.st_ino)
            return None if same else "the upload was replaced while it was being accepted"
        try:
            data = read_marker(commit, marker)
            with tasks.sub(task_id) as tdir:
                problems = manifest.verify_manifest(tdir.fd, data)
        except OSError as exc:
            return f"unreadable upload: {exc.strerror or exc}"
        return f"incomplete or inconsistent upload: {problems[0]}" if problems else None


class TaskFiles(NamedTuple):
    """What an accepted task's own files say."""

    submitted_at: str | None      # meta.json: the student's word about their own task; None if unusable
    name: str | None              # meta.json's ``name`` (the config's, or ``--name``), if a valid name
    config: TaskConfig | str      # task.toml validated from the bytes read once, or why it is refused


def read_task(root: Path, user: str, task_id: str, owner: int | None,
              tdir: SafeDir | None = None) -> TaskFiles:
    """An accepted task's ``meta.json`` and ``task.toml``, each read once (``TaskFiles``)."""
    meta_bytes, toml_bytes = _read_task_files(root, user, task_id, owner, tdir)
    meta = _json_or_none(meta_bytes)
    meta = meta if isinstance(meta, dict) else {}
    submitted = meta.get("submitted_at")
    if not isinstance(submitted, str) or parse_iso(submitted) is None:
        submitted = None
    name = meta.get("name")
    name = name if isinstance(name, str) and is_name(name) else None
    if isinstance(toml_bytes, OSError):
        return TaskFiles(submitted, name, f"unreadable task: {toml_bytes.strerror or toml_bytes}")
    try:
        return TaskFiles(submitted, name, parse_frozen_config(toml_bytes, Path(local_spool.TASK_TOML)))
    except ConfigError as exc:
        return TaskFiles(submitted, name, str(exc).splitlines()[0])


def _read_task_files(root: Path, user: str, task_id: str, owner: int | None,
                     tdir: SafeDir | None = None) -> tuple[bytes | None, bytes | OSError]:
    """``meta.json`` (None if unusable) and ``task.toml`` (or why it cannot be read) of an
    accepted task, each read once through handles that follow no symlink (``tdir``, or
    opened from the root), as regular files owned by the task's account: a symlink or
    hard link to another student's file swapped in at any moment is refused, never read."""
    if tdir is None:
        try:
            with open_beneath(root, (USERS, user, TASKS, task_id)) as opened:
                return _read_task_files(root, user, task_id, owner, opened)
        except OSError as exc:
            return None, exc
    try:
        meta: bytes | None = tdir.read_regular(local_spool.META, fsutil.MAX_JSON_BYTES, owner)
    except OSError:
        meta = None
    try:
        toml: bytes | OSError = tdir.read_regular(local_spool.TASK_TOML, MAX_CONFIG_BYTES + 1, owner)
    except OSError as exc:
        toml = exc
    return meta, toml


def _json_or_none(data: bytes | None) -> object:
    try:
        return json.loads(data) if data is not None else None
    except (ValueError, RecursionError):
        return None


def read_marker(commit: SafeDir, name: str) -> object:
    """The commit marker (the manifest) as JSON, or None if it is not JSON; OSError if it
    is not a regular file of reasonable size."""
    fd = commit.open_file(name, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > fsutil.MAX_JSON_BYTES:
            raise OSError(0, "not a regular file of reasonable size")
        with os.fdopen(os.dup(fd), "rb") as fh:
            return json.loads(fh.read(fsutil.MAX_JSON_BYTES + 1))
    except (ValueError, RecursionError):
        return None
    finally:
        os.close(fd)
