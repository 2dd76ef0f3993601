"""The spool's name index: ``spool/names/<name>/<id>``, one empty file per named task.

A name is typed wherever an id is taken, and ``status NAME`` must not read the status of
every task in the spool to find it (``status`` over 10,000 tasks is benchmarked): one
``listdir`` of the name's directory answers.  Names are checked before they get here
(``model/names.py``), so a name is always a plain directory name.

The entry is made before the task is committed to ``new/`` (the commit's flush makes it
durable with the task) and is only a hint: a lookup keeps the ids that are tasks in the
spool, so an entry left by a submission that never committed names nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from ailabber.model.names import is_name

NAMES = "names"


def add(spool_root: Path, name: str, task_id: str) -> Path:
    """Record that ``task_id`` carries ``name``; returns the entry (for ``discard``)."""
    d = spool_root / NAMES / name
    os.makedirs(d, mode=0o700, exist_ok=True)
    entry = d / task_id
    os.close(os.open(entry, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
    return entry


def discard(entry: Path) -> None:
    """Take back an entry whose task was never committed."""
    try:
        os.unlink(entry)
    except FileNotFoundError:
        pass


def ids_named(spool_root: Path, query: str) -> list[str]:
    """The ids recorded under ``query`` if it is a name (not filtered: see the module)."""
    if not is_name(query):
        return []
    try:
        return os.listdir(os.path.join(spool_root, NAMES, query))
    except (FileNotFoundError, NotADirectoryError):
        return []


def names_of(spool_root: Path, task_ids: set[str]) -> list[str]:
    """The names carried by any of ``task_ids`` (the tasks in the spool), from the index:
    one ``listdir`` per name instead of a read of every task's ``meta.json``."""
    try:
        names = os.listdir(os.path.join(spool_root, NAMES))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for name in names:
        if not is_name(name):
            continue
        try:
            if not task_ids.isdisjoint(os.listdir(os.path.join(spool_root, NAMES, name))):
                out.append(name)
        except (FileNotFoundError, NotADirectoryError):
            continue
    return out


def forget(spool_root: Path, name: str, task_id: str) -> None:
    """Drop ``task_id``'s entry once the task has left the spool (and the name's directory
    when it was the last): the index does not outgrow the spool."""
    if not is_name(name):
        return
    d = os.path.join(spool_root, NAMES, name)
    try:
        os.unlink(os.path.join(d, task_id))
        os.rmdir(d)
    except OSError:
        pass            # already gone, or other tasks carry the name still
