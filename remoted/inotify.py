"""inotify, through libc, for the gate's ``watch`` (``remoted/areawatch.py``).

The gate watches directories it opened itself through no-follow handles: a watch is added
on ``/proc/self/fd/<n>``, the directory that descriptor holds, never on a path a student
could swap for a symlink between a check and the call.  Only what the watch needs is
here: one instance, watches on directories, and the events read back as values.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
from typing import NamedTuple

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

#: The watched directory itself went away or moved: its watch no longer tells about the
#: place it was opened from.
GONE = IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED

_HEADER = struct.Struct("iIII")      # wd, mask, cookie, len


class Event(NamedTuple):
    wd: int
    mask: int
    name: str          # "" for an event on the watched directory itself


def parse(buf: bytes) -> list[Event]:
    """The events in one ``read`` of an inotify descriptor."""
    out = []
    pos = 0
    while pos + _HEADER.size <= len(buf):
        wd, mask, _cookie, length = _HEADER.unpack_from(buf, pos)
        pos += _HEADER.size
        raw = buf[pos:pos + length]
        pos += length
        out.append(Event(wd, mask, os.fsdecode(raw.split(b"\0", 1)[0])))
    return out


class Inotify:
    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._add = libc.inotify_add_watch
        self._add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._add.restype = ctypes.c_int
        self._rm = libc.inotify_rm_watch
        self._rm.argtypes = (ctypes.c_int, ctypes.c_int)
        self._rm.restype = ctypes.c_int
        init = libc.inotify_init1
        init.argtypes = (ctypes.c_int,)
        init.restype = ctypes.c_int
        fd = init(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)} (see fs.inotify.max_user_instances)")
        self.fd = fd

    def watch_fd(self, dir_fd: int, mask: int) -> int:
        """Watch the directory open on ``dir_fd`` (it must be a directory); the watch
        descriptor.  The same directory watched twice gives the same descriptor."""
        wd = self._add(self.fd, f"/proc/self/fd/{dir_fd}".encode(), mask | IN_ONLYDIR)
        if wd < 0:
            err = ctypes.get_errno()
            hint = " (see fs.inotify.max_user_watches)" if err == 28 else ""
            raise OSError(err, f"inotify_add_watch: {os.strerror(err)}{hint}")
        return int(wd)

    def unwatch(self, wd: int) -> None:
        self._rm(self.fd, wd)        # already gone (IN_IGNORED) is no error worth telling

    def read(self) -> list[Event]:
        """Every event queued now ([] if none)."""
        out: list[Event] = []
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            if not buf:
                return out
            out += parse(buf)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
