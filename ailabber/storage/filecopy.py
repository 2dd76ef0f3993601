"""Copying a file's bytes, and sharing a spool file with a new task instead of copying it.

Every file under a task's ``files/`` is written once, when the task is made, and never
again: ``spool_mode`` takes the write bits away, so that a file shared by hard links
between tasks cannot be changed in place by accident (an editor opening it, a script
writing into the wrong directory) and every task keeps the bytes it was submitted with.
Uploads give the owner's write bit back on the cluster (``spoold/transport.py``), where
the job works in its own copy.
"""

from __future__ import annotations

import errno
import os
import stat

from ailabber.storage.fsutil import fsync_fd

_CHUNK = 1 << 30
_FALLBACK_ERRNOS = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM,
                    errno.EBADF, errno.ETXTBSY}
#: Why ``os.link`` may refuse where a copy still works: another filesystem, too many links
#: to one file (ext4: 65,000), a filesystem without hard links, a protected_hardlinks policy.
_NO_LINK_ERRNOS = {errno.EXDEV, errno.EMLINK, errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EACCES}
WRITE_BITS = 0o222


def spool_mode(mode: int) -> int:
    """The permission bits a file gets in the spool: its own, without any write bit."""
    return stat.S_IMODE(mode) & 0o777 & ~WRITE_BITS


def link_or_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str], src_dir_fd: int | None = None) -> bool:
    """Make ``dst`` (which must not exist) hold exactly the bytes of the spool file ``src``:
    a hard link when the filesystem allows one (no data written at all), else a copy (a
    reflink where the filesystem can, through ``copy_file_range``) with ``src``'s mode and
    times.  Either way ``dst`` ends read-only (``spool_mode``).  True when linked.

    ``src`` is never followed if it is a symlink: a link to a symlink is refused
    (``ValueError``) and nothing is left at ``dst``.  ``src_dir_fd``: ``src`` is a name in
    that directory (a task opened once as a handle, which spoold may move meanwhile)."""
    src, dst = os.fspath(src), os.fspath(dst)
    try:
        os.link(src, dst, src_dir_fd=src_dir_fd, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in _NO_LINK_ERRNOS:
            raise
        _copy_file(src, dst, src_dir_fd)
        return False
    st = os.lstat(dst)
    if not stat.S_ISREG(st.st_mode):
        os.unlink(dst)
        raise ValueError(f"{src} is not a regular file")
    if st.st_mode & WRITE_BITS:        # a task written before files were kept read-only
        os.chmod(dst, spool_mode(st.st_mode))
    return True


def _copy_file(src: str, dst: str, src_dir_fd: int | None = None) -> None:
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=src_dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{src} is not a regular file")
        out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            copy_fd(fd, out)
            os.fchmod(out, spool_mode(st.st_mode))
            os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
            fsync_fd(out)
        except BaseException:
            os.close(out)
            os.unlink(dst)
            raise
        os.close(out)
    finally:
        os.close(fd)


def copy_fd(src: int, dst: int) -> int:
    """Copy ``src`` from its start to EOF into the empty ``dst``, keeping holes: only the
    data extents (``SEEK_DATA``/``SEEK_HOLE``) are copied and the size is set last, so a
    sparse 1 GiB file stays a few blocks on disk instead of becoming 1 GiB of zeros.
    Returns the file's length as copied (the offset of EOF)."""
    end = os.fstat(src).st_size
    pos = 0
    while pos < end:
        try:
            start = os.lseek(src, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:   # only a hole is left up to EOF
                break
            if exc.errno not in _FALLBACK_ERRNOS:
                raise
            start = pos                    # no hole support here: all of it is data
        try:
            stop = os.lseek(src, start, os.SEEK_HOLE)
        except OSError as exc:
            if exc.errno not in _FALLBACK_ERRNOS:
                raise
            stop = end
        _copy_range(src, dst, start, stop - start)
        pos = stop
    # A file that grew or shrank while it was copied is caught by the caller's size check.
    os.ftruncate(dst, end)
    return end


def _copy_range(src: int, dst: int, offset: int, count: int) -> None:
    """``count`` bytes at ``offset`` of ``src`` to the same offset of ``dst``: in the kernel
    where possible (copy_file_range: reflinks on CoW file systems), else by reads."""
    done = 0
    if hasattr(os, "copy_file_range"):
        try:
            while done < count:
                n = os.copy_file_range(src, dst, min(count - done, _CHUNK), offset + done, offset + done)
                if n == 0:
                    break          # EOF moved (file shrank) or not supported: the slow way
                done += n
        except OSError as exc:
            if exc.errno not in _FALLBACK_ERRNOS:
                raise
    while done < count:
        chunk = os.pread(src, min(count - done, 1 << 20), offset + done)
        if not chunk:
            return         # the file shrank meanwhile: the caller's size check says so
        written = 0
        while written < len(chunk):
            written += os.pwrite(dst, chunk[written:], offset + done + written)
        done += len(chunk)
