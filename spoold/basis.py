"""Which earlier upload a large task is linked against, and whether rsync's quick check
can be trusted against it.

rsync skips (here: hard-links from the basis) a file whose size and modification time
match, comparing times in whole seconds.  A file edited twice within one second keeping
its size (a parameter sweep rewriting ``config.json``) would be linked to the old
content.  The local spool still holds the basis task's snapshot, so that case is found
here with a stat per file, and only then does the upload pay for ``--checksum`` (which
reads and hashes every file on both sides).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ailabber.storage import statusfile
from ailabber.storage.spool import DONE, FILES, NEW, SYNCED, Spool

log = logging.getLogger("spoold")


def newest_accepted(spool: Spool) -> str | None:
    """The newest earlier task the remote side accepted: unchanged files are linked from
    it instead of being sent again."""
    candidates = sorted(spool.ids_in(SYNCED) + spool.ids_in(DONE), reverse=True)
    for task_id in candidates[:20]:
        loc = spool.locate(task_id)
        st = statusfile.read_status(loc[1]) if loc else None
        if st is not None and "upload_bytes_sent" in st.extra and st.reason != "rejected":
            return task_id
    return None


def needs_checksum(spool: Spool, task_id: str, basis: str) -> bool:
    """Whether linking ``task_id`` against ``basis`` by size and mtime could be wrong."""
    loc = spool.locate(basis)
    if loc is None:
        return True          # the basis snapshot is gone locally: compare by content
    rel = same_second_edit(spool.stage_dir(NEW) / task_id / FILES, loc[1] / FILES)
    if rel:
        log.info("%s: %s changed within the second of the last upload's copy; comparing by content", task_id, rel)
    return rel is not None


def same_second_edit(new_files: Path, basis_files: Path) -> str | None:
    """The first file (relative path) whose size and whole-second mtime equal the basis
    copy's while its nanosecond mtime differs (or is a whole second, so cannot tell): a
    change rsync's quick check could miss.  None when the quick check is exact for every
    file."""
    for dirpath, _dirnames, filenames in os.walk(new_files):
        rel_dir = os.path.relpath(dirpath, new_files)
        for name in filenames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            try:
                new = os.lstat(os.path.join(dirpath, name))
                old = os.lstat(os.path.join(basis_files, rel))
            except FileNotFoundError:
                continue      # new or removed: rsync sees the difference itself
            except OSError:
                return rel    # e.g. a file where the basis has a directory: do not guess
            if new.st_size != old.st_size or new.st_mtime_ns // SECOND != old.st_mtime_ns // SECOND:
                continue      # rsync's quick check sees this difference itself
            if (new.st_ino, new.st_dev) == (old.st_ino, old.st_dev):
                continue      # one file shared by both snapshots (submit linked it): the same bytes
            if new.st_mtime_ns != old.st_mtime_ns or new.st_mtime_ns % SECOND == 0:
                # Edited within the same second; or times in whole seconds (a file system
                # without finer timestamps, an archive's restored dates), where equal
                # times say nothing about equal contents.
                return rel
    return None


SECOND = 1_000_000_000
