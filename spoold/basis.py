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

import os
from pathlib import Path


def same_second_edit(new_files: Path, basis_files: Path) -> str | None:
    """The first file (relative path) whose size and whole-second mtime equal the basis
    copy's while its nanosecond mtime differs: a change rsync's quick check would miss.
    None when the quick check is exact for every file."""
    for dirpath, _dirnames, filenames in os.walk(new_files):
        rel_dir = os.path.relpath(dirpath, new_files)
        for name in filenames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            try:
                new = os.lstat(os.path.join(dirpath, name))
                old = os.lstat(os.path.join(basis_files, rel))
            except FileNotFoundError:
                continue      # new or removed: rsync sees the difference itself
            if (new.st_size == old.st_size and new.st_mtime_ns // 1_000_000_000 == old.st_mtime_ns // 1_000_000_000
                    and new.st_mtime_ns != old.st_mtime_ns):
                return rel
    return None
