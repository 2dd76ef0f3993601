"""Who is watching a task right now: ``ailabber logs -f`` and ``wait`` tell spoold, through
the spool, so that it pulls that task's news at once instead of on its quiet back-off.

Each follower leaves ``following/<id>.<pid>`` while it runs and removes it when it ends.
A follower killed outright leaves its file behind; spoold drops a file whose process is
gone (the same user's, so ``kill(pid, 0)`` tells).  The files are only hints: nothing is
lost if one is missing, spoold only pulls slower.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ailabber.model import ids

FOLLOWING = "following"


def following_dir(spool_root: Path) -> Path:
    return spool_root / FOLLOWING


@contextlib.contextmanager
def following(spool_root: Path, task_id: str) -> Iterator[None]:
    """Say that this process follows ``task_id`` while the block runs."""
    d = following_dir(spool_root)
    marker = d / f"{task_id}.{os.getpid()}"
    try:
        d.mkdir(mode=0o700, exist_ok=True)
        marker.touch()
    except OSError:           # a read-only spool: following still works, only slower
        yield
        return
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


def followed(spool_root: Path, among: Iterable[str]) -> set[str]:
    """The tasks of ``among`` that a live process follows; stale markers are removed."""
    wanted = set(among)
    out: set[str] = set()
    try:
        names = os.listdir(following_dir(spool_root))
    except OSError:
        return out
    for name in names:
        task_id, _, pid = name.rpartition(".")
        if not ids.is_task_id(task_id) or not pid.isdigit():
            continue
        if not _alive(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(following_dir(spool_root) / name)
        elif task_id in wanted:
            out.add(task_id)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
