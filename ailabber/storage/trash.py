"""Removing a finished task from the spool without a moment where half of it is visible,
and without pulling it out from under a command that is reading it.

A removal renames ``done/<id>`` to ``trash/<id>.<nonce>`` first: that one rename takes the
task away (nothing lists ``trash/``), and whatever is left in ``trash/`` after a crash is
deleted by the next removal or by spoold.  Its mirror ``outbox/<id>`` follows it there; one
left behind by a crash between the two renames belongs to no task and is swept the same way.

Readers (``logs``, ``fetch``, spoold pulling results on request) hold a shared ``flock`` on
the task's ``task.lock`` while they read; a removal takes the exclusive lock without
waiting and leaves a task in use alone.  The file travels with the task's directory when
spoold moves it to its next stage, so a reader keeps its lock across that move.  (A file,
not the directory itself: NFS emulates ``flock`` with byte-range locks, which need a file
open for writing to be exclusive.)
"""

from __future__ import annotations

import fcntl
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ailabber.model import ids
from ailabber.model.listing import NAME
from ailabber.storage import fsutil, names, statusfile
from ailabber.storage.spool import DONE, Spool

TRASH = "trash"
LOCK = "task.lock"


class TaskGone(Exception):
    """The task was removed from the spool (by ``clean`` or spoold's retention)."""


class TaskInUse(Exception):
    """Another command is reading the task; it was left alone."""


def _open_lock(task_dir: Path) -> int:
    """The task's lock file, made on first use (tasks carry none from submit)."""
    return os.open(task_dir / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def _same(fd: int, task_dir: Path) -> bool:
    """Whether ``fd`` is still the lock file of the task at ``task_dir`` (not one moved
    into trash/ by a removal)."""
    try:
        st = os.stat(task_dir / LOCK, follow_symlinks=False)
    except FileNotFoundError:
        return False
    here = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino)


@contextmanager
def reading(spool: Spool, task_id: str) -> Iterator[Path]:
    """Keep removals away from ``task_id`` while the block reads it; yields the task's
    directory as found after the lock was taken.  ``TaskGone`` if it no longer exists."""
    for _attempt in range(3):
        loc = spool.locate(task_id)
        if loc is None:
            raise TaskGone(task_id)
        try:
            fd = _open_lock(loc[1])
        except FileNotFoundError:
            continue          # moved on to its next stage meanwhile: look again
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            # A removal may have won the race for the lock: then the task is in trash/.
            now = spool.locate(task_id)
            if now is not None and _same(fd, now[1]):
                yield now[1]
                return
        finally:
            os.close(fd)
    raise TaskGone(task_id)


def remove_task(spool: Spool, task_id: str) -> bool:
    """Take the finished task ``task_id`` out of ``done/`` and delete it.  False when it was
    not there (another removal got it first); ``TaskInUse`` while a reader holds it."""
    task_dir = spool.stage_dir(DONE) / task_id
    try:
        fd = _open_lock(task_dir)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TaskInUse(task_id) from None
        if not _same(fd, task_dir):
            return False
        trash = spool.root / TRASH
        trash.mkdir(mode=0o700, exist_ok=True)
        name = f"{task_id}.{os.urandom(4).hex()}"
        st = statusfile.read_status(task_dir)
        try:
            fsutil.commit_rename(task_dir, trash / name)
        except FileNotFoundError:
            return False
        if st is not None and isinstance(st.extra.get(NAME), str):
            names.forget(spool.root, st.extra[NAME], task_id)
        outbox = spool.outbox(task_id)
        if outbox.is_dir():
            os.rename(outbox, trash / f"{name}.outbox")
        delete_tree(trash / name)
        delete_tree(trash / f"{name}.outbox")
        return True
    finally:
        os.close(fd)


def empty_trash(spool: Spool) -> None:
    """Delete what removals left in ``trash/``, and outbox mirrors of tasks that no longer
    exist (a crash between a removal's two renames)."""
    trash = spool.root / TRASH
    live = set(spool.all_ids())       # stages listed in the order tasks move: none is missed
    for name in _names(spool.outbox_dir):
        if ids.is_task_id(name) and name not in live and spool.locate(name) is None:
            trash.mkdir(mode=0o700, exist_ok=True)
            try:
                os.rename(spool.outbox(name), trash / f"{name}.{os.urandom(4).hex()}.outbox")
            except FileNotFoundError:
                continue
    for name in _names(trash):
        delete_tree(trash / name)


def _names(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def delete_tree(path: Path) -> None:
    """Delete ``path`` and everything under it, also directories the job left without
    write or search permission for their owner (pulled back with their modes)."""

    def unblock(_func: object, failed: str, exc: object) -> None:
        error = exc[1] if isinstance(exc, tuple) else exc     # onerror's exc_info, or onexc's exception
        if not isinstance(error, PermissionError):
            return            # gone already (another removal): nothing to do
        opened = False
        for p in (os.path.dirname(failed), failed):
            try:
                st = os.lstat(p)
                if stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) & 0o700 != 0o700:
                    os.chmod(p, stat.S_IMODE(st.st_mode) | 0o700)
                    opened = True
            except OSError:
                continue
        if not opened:
            return            # not a permission we can change: leave it, do not loop
        try:
            if os.path.isdir(failed) and not os.path.islink(failed):
                delete_tree(Path(failed))
            else:
                os.unlink(failed)
        except OSError:
            pass

    import shutil  # only when something is removed: not on every reader's start-up

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=unblock)
    else:
        shutil.rmtree(path, onerror=unblock)
