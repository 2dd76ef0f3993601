"""Directory handles that never follow a symlink a user planted.

remoted may run as root and writes inside students' directories, which those students can
change at any moment.  Checking a path and then using it is a race; working through open
directory descriptors (``openat`` with ``O_NOFOLLOW``) is not: once a directory is open, a
rename or symlink swap of its path no longer changes what we write into.  (Where a user's
own command writes, ``ailabber fetch``, the handle is a ``userdir.UserDir``.)
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import TypeVar

from ailabber.storage import fsutil

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

_D = TypeVar("_D", bound="SafeDir")


class UnsafePath(OSError):
    """A path component is a symlink, not a directory, or has the wrong owner."""


class SafeDir:
    def __init__(self, fd: int, path: Path):
        self.fd = fd
        self.path = path

    # --- opening ------------------------------------------------------------------------
    @classmethod
    def open(cls: type[_D], path: Path) -> _D:
        """Open a directory the admin configured (its own path is trusted, but it must
        not itself be a symlink)."""
        try:
            return cls(os.open(path, DIR_FLAGS), Path(path))
        except OSError as exc:
            raise UnsafePath(exc.errno, f"{path}: {exc.strerror}") from None

    def sub(self, name: str, *, create: bool = False, mode: int = 0o755, owner: int | None = None,
            replace_bad: bool = False) -> SafeDir:
        """Open ``name`` below this directory.  ``create`` makes it if missing;
        ``replace_bad`` removes a symlink or file found in its place (only for names
        remoted owns); ``owner`` (uid) is enforced when running as root."""
        check_name(name)
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
            fd = os.open(name, DIR_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            raise UnsafePath(exc.errno, f"{self.path / name}: {exc.strerror}") from None
        if owner is not None and os.geteuid() == 0:
            st = os.fstat(fd)
            if st.st_uid != owner:
                # Someone else's directory in the place of ours: never adopt it (what it
                # holds, hard links included, would become ours to write through).
                os.close(fd)
                if not replace_bad:
                    raise UnsafePath(0, f"{self.path / name} is owned by uid {st.st_uid}, not {owner}")
                self._put_aside(name)
                os.mkdir(name, mode, dir_fd=self.fd)
                fd = os.open(name, DIR_FLAGS, dir_fd=self.fd)
                st = os.fstat(fd)
                if st.st_uid != owner:
                    os.fchown(fd, owner, -1)
            if stat.S_IMODE(st.st_mode) != mode:
                os.fchmod(fd, mode)
        return SafeDir(fd, self.path / name)

    def _put_aside(self, name: str) -> None:
        """Clear the place of directory ``name``: removed if empty, else renamed to a
        hidden name beside it (its owner keeps what it holds)."""
        try:
            os.rmdir(name, dir_fd=self.fd)
        except OSError:
            os.rename(name, f".{name}.moved-{os.urandom(4).hex()}", src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self: _D) -> _D:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- files --------------------------------------------------------------------------
    def lstat(self, name: str) -> os.stat_result:
        check_name(name)
        return os.stat(name, dir_fd=self.fd, follow_symlinks=False)

    def write_atomic(self, name: str, data: bytes, mode: int = 0o644) -> None:
        check_name(name)
        tmp = f".{name}.tmp-{os.getpid()}-{os.urandom(3).hex()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                     dir_fd=self.fd)
        try:
            try:
                left = memoryview(data)
                while left:                  # a short write (disk nearly full) goes on, or raises
                    left = left[os.write(fd, left):]
                fsutil.fsync_fd(fd)
            finally:
                os.close(fd)
            os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=self.fd)   # a full disk's retries leave no temporary files behind
            except OSError:
                pass
            raise
        fsutil.fsync_fd(self.fd)

    def append(self, name: str, line: str, mode: int = 0o644) -> None:
        """Append one line entirely or not at all: a write cut short (a full disk) is
        taken back, so the line written again later is not glued to a torn copy of itself."""
        check_name(name)
        data = (line.rstrip("\n") + "\n").encode()
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     mode, dir_fd=self.fd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_uid != os.geteuid():
                raise UnsafePath(0, f"{self.path / name} is not a regular file of ours with one link")
            try:
                if os.write(fd, data) != len(data):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                fsutil.fsync_fd(fd)
            except OSError:
                os.ftruncate(fd, st.st_size)
                raise
        finally:
            os.close(fd)

    def open_file(self, name: str, flags: int, mode: int = 0o644) -> int:
        check_name(name)
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self.fd)

    def chown(self, name: str, uid: int | None, gid: int | None) -> None:
        if os.geteuid() == 0 and uid is not None and uid != 0:
            os.chown(name, uid, gid if gid is not None else -1, dir_fd=self.fd, follow_symlinks=False)

    def rename_into(self, name: str, dst: SafeDir, dst_name: str) -> None:
        """Move entry ``name`` here to ``dst/dst_name``; refuse to overwrite."""
        check_name(name)
        check_name(dst_name)
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

    def remove(self, name: str) -> None:
        """Remove entry ``name``, a whole tree if it is a directory: through handles
        that follow no symlink (a symlink is removed, never followed) and without
        recursion, so neither a swapped-in link nor a tree thousands of levels deep can
        make it delete anything outside ``name`` or stop it.  Missing is fine."""
        check_name(name)
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            _unlink_if_there(self.fd, name, is_dir=False)
            return
        # Frames of (parent fd, name, open fd, its subdirectories still to empty): each
        # directory is listed once, its files unlinked, its subdirectories entered in turn.
        stack: list[tuple[int, str, int, list[str]]] = []
        try:
            stack.append(_frame(self.fd, name))
            while stack:
                parent, dname, fd, subdirs = stack[-1]
                if subdirs:
                    stack.append(_frame(fd, subdirs.pop()))
                    continue
                stack.pop()
                os.close(fd)
                _unlink_if_there(parent, dname, is_dir=True)
        finally:
            for _parent, _name, fd, _subdirs in stack:
                os.close(fd)

    def read_regular(self, name: str, max_bytes: int, owner: int | None = None) -> bytes:
        """The bytes of regular file ``name``, opened without following a symlink and
        without blocking on a FIFO; refused when larger than ``max_bytes`` or (``owner``
        given) not owned by that uid.  What is checked is what is read: one open file."""
        fd = self.open_file(name, os.O_RDONLY | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafePath(0, f"{self.path / name} is not a regular file")
            if owner is not None and st.st_uid != owner:
                raise UnsafePath(0, f"{self.path / name} is owned by uid {st.st_uid}, not {owner}")
            if st.st_size > max_bytes:
                raise UnsafePath(0, f"{self.path / name} is larger than {max_bytes} bytes")
            data = fsutil.read_fd(fd, max_bytes, st.st_size)
            if len(data) > max_bytes:
                raise UnsafePath(0, f"{self.path / name} is larger than {max_bytes} bytes")
            return data
        finally:
            os.close(fd)



def open_beneath(root: Path, parts: list[str] | tuple[str, ...]) -> SafeDir:
    """``root`` (a path the admin configured, trusted) and then each of ``parts`` below it,
    opened one by one without following a symlink at any of them: whatever a user renamed
    or swapped below ``root``, the handle returned is a real directory physically under it."""
    d = SafeDir.open(root)
    try:
        for name in parts:
            nxt = d.sub(name)
            d.close()
            d = nxt
    except BaseException:
        d.close()
        raise
    return d


def _frame(parent: int, name: str) -> tuple[int, str, int, list[str]]:
    """Open directory ``name`` below ``parent`` (no symlink followed), unlink everything
    in it that is not a directory, and list its subdirectories."""
    fd = os.open(name, DIR_FLAGS, dir_fd=parent)
    subdirs: list[str] = []
    try:
        with os.scandir(fd) as it:
            entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        for child, is_dir in entries:
            if is_dir:
                subdirs.append(child)
            else:
                _unlink_if_there(fd, child, is_dir=False)
    except BaseException:
        os.close(fd)
        raise
    return parent, name, fd, subdirs


def _unlink_if_there(dir_fd: int, name: str, *, is_dir: bool) -> None:
    try:
        if is_dir:
            os.rmdir(name, dir_fd=dir_fd)
        else:
            os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def check_name(name: str) -> None:
    """Refuse anything but one plain entry name: a handle is only as safe as the name given it."""
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise UnsafePath(0, f"not a plain name: {name!r}")
