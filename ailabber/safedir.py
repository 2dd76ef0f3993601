"""Directory handles that never follow a symlink a user planted.

remoted may run as root and writes inside students' directories, which those students can
change at any moment.  Checking a path and then using it is a race; working through open
directory descriptors (``openat`` with ``O_NOFOLLOW``) is not: once a directory is open, a
rename or symlink swap of its path no longer changes what we write into.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ailabber import fsutil

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(OSError):
    """A path component is a symlink, not a directory, or has the wrong owner."""


class SafeDir:
    def __init__(self, fd: int, path: Path):
        self.fd = fd
        self.path = path

    # --- opening ------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path) -> SafeDir:
        """Open a directory the admin configured (its own path is trusted, but it must
        not itself be a symlink)."""
        try:
            return cls(os.open(path, _DIR_FLAGS), Path(path))
        except OSError as exc:
            raise UnsafePath(exc.errno, f"{path}: {exc.strerror}") from None

    def sub(self, name: str, *, create: bool = False, mode: int = 0o755, owner: int | None = None,
            replace_bad: bool = False) -> SafeDir:
        """Open ``name`` below this directory.  ``create`` makes it if missing;
        ``replace_bad`` removes a symlink or file found in its place (only for names
        remoted owns); ``owner`` (uid) is enforced when running as root."""
        _check_name(name)
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            if not create:
                raise
            os.mkdir(name, mode, dir_fd=self.fd)
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            if not replace_bad:
                raise UnsafePath(0, f"{self.path / name} is not a directory")
            os.unlink(name, dir_fd=self.fd)
            os.mkdir(name, mode, dir_fd=self.fd)
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            raise UnsafePath(exc.errno, f"{self.path / name}: {exc.strerror}") from None
        sub = SafeDir(fd, self.path / name)
        if owner is not None and os.geteuid() == 0:
            st = os.fstat(fd)
            if st.st_uid != owner:
                os.fchown(fd, owner, -1)
            if stat.S_IMODE(st.st_mode) != mode:
                os.fchmod(fd, mode)
        return sub

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> SafeDir:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- files --------------------------------------------------------------------------
    def lstat(self, name: str) -> os.stat_result:
        _check_name(name)
        return os.stat(name, dir_fd=self.fd, follow_symlinks=False)

    def write_atomic(self, name: str, data: bytes, mode: int = 0o644) -> None:
        _check_name(name)
        tmp = f".{name}.tmp-{os.getpid()}-{os.urandom(3).hex()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                     dir_fd=self.fd)
        try:
            os.write(fd, data)
            fsutil.fsync_fd(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        fsutil.fsync_fd(self.fd)

    def append(self, name: str, line: str, mode: int = 0o644) -> None:
        _check_name(name)
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                     dir_fd=self.fd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafePath(0, f"{self.path / name} is not a regular file")
            os.write(fd, (line.rstrip("\n") + "\n").encode())
            fsutil.fsync_fd(fd)
        finally:
            os.close(fd)

    def open_file(self, name: str, flags: int, mode: int = 0o644) -> int:
        _check_name(name)
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self.fd)

    def chown(self, name: str, uid: int | None, gid: int | None) -> None:
        if os.geteuid() == 0 and uid is not None and uid != 0:
            os.chown(name, uid, gid if gid is not None else -1, dir_fd=self.fd, follow_symlinks=False)

    def rename_into(self, name: str, dst: SafeDir, dst_name: str) -> None:
        """Move entry ``name`` here to ``dst/dst_name``; refuse to overwrite."""
        _check_name(name)
        _check_name(dst_name)
        try:
            dst.lstat(dst_name)
        except FileNotFoundError:
            pass
        else:
            raise FileExistsError(f"{dst.path / dst_name} already exists")
        os.rename(name, dst_name, src_dir_fd=self.fd, dst_dir_fd=dst.fd)
        fsutil.fsync_fd(dst.fd)
        fsutil.fsync_fd(self.fd)

    def listdir(self) -> list[str]:
        return sorted(os.listdir(self.fd))


def _check_name(name: str) -> None:
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise UnsafePath(0, f"not a plain name: {name!r}")
