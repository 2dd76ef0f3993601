"""Which files of a new task can be the previous task's copies: sharing unchanged files.

Every submit records where each file of its snapshot came from: the project file's
device, inode, size, modification time and change time (``sources.json`` in the task
directory; it stays on this machine).  The next submit of the same project hard-links the
previous task's copy instead of copying the file again when the project file still has
exactly that identity.

Equal times prove equal bytes only if the file could not change again without its times
changing.  Timestamps come from a clock that ticks (a few milliseconds on ext4, 2 s on
FAT, the server's clock on NFS): a second write within the tick of the one before keeps
every time as it was, the way a parameter sweep rewrites ``config.json`` twice in one
second.  So an identity is recorded only for a file whose change time was already
``SETTLE_NS`` old when the copy started: any later write lands in a later tick and
changes ``st_ctime``, which no program can set back.  A file changed just before a submit
is copied (and recorded at the next submit, once it has settled).  The change time also
moves on ``chmod``, a rename over it (new inode) or a restore of an old mtime, so none of
those are mistaken for "unchanged" either.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import NamedTuple

from ailabber.storage import fsutil
from ailabber.storage.spool import FILES, Spool

SOURCES = "sources.json"
LATEST = "latest"          # spool/latest/<key>: the newest task of each upload directory
SOURCES_VERSION = 1
SETTLE_NS = 3_000_000_000  # longer than any filesystem's timestamp tick (FAT: 2 s)

#: (st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns) of a project file.
Identity = tuple[int, int, int, int, int]


def identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Sources:
    """The identities of one snapshot's files, noted as they are copied or shared."""

    def __init__(self, upload_root: str, started_ns: int) -> None:
        self.upload_root = upload_root
        self.started_ns = started_ns    # wall clock before the first file was read
        self.files: dict[str, Identity] = {}

    def note(self, rel: str, before: os.stat_result, after: os.stat_result) -> None:
        """``rel`` was read between the ``before`` and ``after`` stats of its project file:
        kept only if nothing changed meanwhile and the file had settled before the copy."""
        ident = identity(before)
        if ident == identity(after) and before.st_ctime_ns < self.started_ns - SETTLE_NS:
            self.files[rel] = ident

    def write(self, task_dir: Path) -> None:
        """``task_dir/sources.json``, compact: one short entry per file of the snapshot."""
        data = {"version": SOURCES_VERSION, "upload_root": self.upload_root,
                "files": {rel: list(ident) for rel, ident in self.files.items()}}
        fsutil.atomic_write_bytes(task_dir / SOURCES, json.dumps(data, separators=(",", ":")).encode())


class Previous(NamedTuple):
    """The previous task of the same project: its ``files/`` and where they came from."""

    task_id: str
    files_dir: str
    recorded: dict[str, Identity]

    def copy_of(self, rel: str, st: os.stat_result) -> str | None:
        """The previous task's copy of ``rel`` if the project file (``st``, from an open
        handle) is the very file that copy was made from, unchanged since; else None."""
        if self.recorded.get(rel) != identity(st):
            return None
        path = os.path.join(self.files_dir, rel)
        try:
            old = os.lstat(path)
        except OSError:
            return None      # the task moved on to its next stage, or was cleaned meanwhile
        if not stat.S_ISREG(old.st_mode) or old.st_size != st.st_size or old.st_mtime_ns != st.st_mtime_ns:
            return None
        return path


def _latest_file(spool: Spool, upload_root: str) -> Path:
    # A 64-bit FNV-1a hash of the directory's name, not a cryptographic one: hashlib (an
    # OpenSSL import) or even zlib would cost every submit more than hashing a path here,
    # and the file names its upload directory, so a collision only means "no previous task".
    h = 0xCBF29CE484222325
    for byte in os.fsencode(upload_root):
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return spool.root / LATEST / f"{h:016x}.json"


def previous_snapshot(spool: Spool, upload_root: str) -> Previous | None:
    """The newest earlier task submitted from ``upload_root`` that is still in the spool,
    with its recorded sources; None if there is none (or its record is unreadable)."""
    latest = fsutil.read_json_or_none(_latest_file(spool, upload_root))
    if not isinstance(latest, dict) or latest.get("upload_root") != upload_root:
        return None
    task_id = latest.get("id")
    loc = spool.locate(task_id) if isinstance(task_id, str) else None
    if loc is None:
        return None
    data = fsutil.read_json_or_none(loc[1] / SOURCES)
    if (not isinstance(data, dict) or data.get("version") != SOURCES_VERSION
            or data.get("upload_root") != upload_root or not isinstance(data.get("files"), dict)):
        return None
    # Entries are only ever compared with a fresh identity: one of another shape never matches.
    recorded: dict[str, Identity] = {rel: tuple(v) for rel, v in data["files"].items()
                                     if isinstance(v, list)}
    return Previous(str(task_id), str(loc[1] / FILES), recorded)


def remember_latest(spool: Spool, upload_root: str, task_id: str) -> None:
    """Point the project's entry at the task being submitted (written inside submit's
    group commit, so it costs no flush of its own).  Only an optimisation: an entry naming
    a task that never got committed means a full copy next time, and a failure to write it
    (a full disk) is no reason to fail the submit."""
    path = _latest_file(spool, upload_root)
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        fsutil.atomic_write_json(path, {"id": task_id, "upload_root": upload_root})
    except OSError:
        pass
