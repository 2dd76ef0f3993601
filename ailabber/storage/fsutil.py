"""Crash-safe file primitives.

A rename is atomic but not durable: the data must be fsynced before it and the parent
directory after it, or a power cut can leave a committed name pointing at nothing.  Every
writer in ailabber goes through these helpers so that rule lives in one place.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

#: Tests that create thousands of tasks may turn durability off; atomicity is kept.
_FSYNC = os.environ.get("AILABBER_FSYNC", "1") != "0"


_deferred = 0          # > 0: inside deferred_fsync(); one syncfs replaces the fsyncs
_dirty = False


class deferred_fsync:
    """Group commit: fsyncs inside the block become one ``syncfs`` of ``path``'s
    filesystem at its end (or at ``barrier()``).  For a daemon pass over hundreds of
    tasks, so that durability costs one flush per phase instead of several per task."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = path

    def __enter__(self) -> deferred_fsync:
        global _deferred
        _deferred += 1
        return self

    def barrier(self) -> None:
        """Everything written so far is durable when this returns."""
        flush_deferred(self.path)

    def __exit__(self, *_exc: object) -> None:
        global _deferred
        _deferred -= 1
        self.barrier()


def flush_deferred(path: str | os.PathLike[str]) -> None:
    """Inside ``deferred_fsync``: make everything written so far durable now (an ordering
    point, e.g. an intent that must be on disk before acting on it).  Outside: no-op."""
    global _dirty, _deferred
    if not _dirty:
        return
    _dirty = False
    saved, _deferred = _deferred, 0
    try:
        sync_filesystem(path)
    finally:
        _deferred = saved


def _sync_now() -> bool:
    """Whether a flush must happen now: not when durability is off, nor inside a group
    commit (which only notes that a flush is owed)."""
    global _dirty
    if not _FSYNC:
        return False
    if _deferred:
        _dirty = True
        return False
    return True


def fsync_fd(fd: int) -> None:
    if _sync_now():
        os.fsync(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or create inside ``path`` durable."""
    if not _sync_now():
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` so that a reader sees either the old or the new content, never a mix."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{os.urandom(3).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            fsync_fd(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append one line durably.  O_APPEND keeps concurrent single-line writes whole;
    O_NOFOLLOW keeps a symlink planted in a user's directory from redirecting the write."""
    data = (line.rstrip("\n") + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        fsync_fd(fd)
    finally:
        os.close(fd)


def append_json_line(path: str | os.PathLike[str], obj: Any) -> None:
    append_line(path, json.dumps(obj, sort_keys=True, separators=(",", ":")))


MAX_JSON_BYTES = 16 * 1024 * 1024


class NotARegularFile(OSError):
    pass


def read_fd(fd: int, limit: int, size: int) -> bytes:
    """At most ``limit + 1`` bytes of the regular file open on ``fd`` (whose ``fstat`` said
    ``size``): one byte more than allowed is enough for the caller to refuse the file, and
    a file that grew after the ``fstat`` is never read whole."""
    chunks = []
    left = limit + 1
    while left > 0:
        want = min(left, max(size + 1, 4096), 1 << 20)
        chunk = os.read(fd, want)
        chunks.append(chunk)
        left -= len(chunk)
        if len(chunk) < want:
            break   # a short read of a regular file is its end: no second read to learn it
    return b"".join(chunks)


def read_small(path: str | os.PathLike[str], limit: int = MAX_JSON_BYTES) -> bytes:
    """Read a regular file of at most ``limit`` bytes without following a symlink and
    without blocking on a FIFO: files in users' directories may be anything."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotARegularFile(f"{path} is not a regular file")
        if st.st_size > limit:
            raise NotARegularFile(f"{path} is larger than {limit} bytes")
        data = read_fd(fd, limit, st.st_size)
        if len(data) > limit:
            raise NotARegularFile(f"{path} is larger than {limit} bytes")
        return data
    finally:
        os.close(fd)


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(read_small(path))


def read_json_or_none(path: str | os.PathLike[str]) -> Any:
    """A missing, torn or not-a-file entry is "nothing known yet", not an error: callers
    rescan later, and nothing a user places can crash or block the reader."""
    try:
        return read_json(path)
    except (OSError, ValueError, RecursionError):
        return None


def read_json_lines(path: str | os.PathLike[str]) -> list[Any]:
    """Read a JSONL file, skipping a torn last line left by a crash mid-append."""
    out: list[Any] = []
    try:
        data = read_small(path, 8 * MAX_JSON_BYTES)
    except OSError:
        return out
    for raw in data.splitlines():
        try:
            out.append(json.loads(raw))
        except (ValueError, RecursionError):
            continue
    return out


def commit_rename(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Move a fully written directory into its next stage: the rename is the commit.

    ``dst`` must not exist: renaming onto an existing empty directory would silently
    succeed, so we refuse it explicitly.
    """
    dst = Path(dst)
    if dst.exists():
        raise FileExistsError(f"{dst} already exists")
    os.rename(src, dst)
    fsync_dir(dst.parent)
    src_parent = Path(src).parent
    if src_parent != dst.parent:
        fsync_dir(src_parent)


def sync_filesystem(path: str | os.PathLike[str]) -> None:
    """Flush everything written to the filesystem holding ``path`` with one ``syncfs``:
    for a task of thousands of files, far cheaper than one fsync per file and directory."""
    if not _FSYNC or _deferred:
        global _dirty
        _dirty = _dirty or bool(_FSYNC)
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.syncfs(fd) == 0:
                return
        except (OSError, AttributeError, ImportError):
            pass
        os.sync()
    finally:
        os.close(fd)


def fsync_tree(root: str | os.PathLike[str]) -> None:
    """fsync every file and directory under ``root`` (before a commit rename)."""
    if not _sync_now():
        return   # inside a group commit the pass's next flush covers the whole tree
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                continue
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(dirpath)


def ensure_dirs(*paths: str | os.PathLike[str], mode: int = 0o755) -> None:
    for p in paths:
        os.makedirs(p, mode=mode, exist_ok=True)
