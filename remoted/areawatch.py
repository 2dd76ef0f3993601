"""The gate's ``watch``: tell spoold, over one long-lived ssh session, when something in
the student's directory changed, so that it pulls only then.

Runs as the account the key logs in as (the student, or the service account that owns
every student's directory), confined to the one directory the admin pinned the key to.
It reads nothing but the heartbeat file and prints nothing but fixed words and the task
ids spoold itself named (``ailabber/model/watch_lines.py``), so even a watch that saw the
wrong directory could only leak timing; it does not see the wrong one: every directory is
opened through no-follow handles from the pinned one (``SafeDir``), and inotify watches
the directory a descriptor holds (``/proc/self/fd/<n>``), never a path.  A symlink the
student plants, a renamed ``outbox``, an id that names another directory: none leads out.

What is watched: the directory itself (``limits.json``, ``remoted.json``, ``outbox``),
``outbox/`` (``queue.json``, the tasks' directories appearing), and for each task spoold
named, ``outbox/<id>/`` (status, events) and ``outbox/<id>/logs/``.  inotify only sees
this host's writes: a job on a compute node writes its logs over a shared filesystem, and
an admin may run remoted on another host than sshd.  So every ``SWEEP_EVERY`` seconds the
same files are also compared by ``lstat`` (size, mtime, inode): cheap system calls, never a
session; and where the kernel refuses an inotify instance or a watch (the account's
``fs.inotify`` limits, shared by every student under a service account) the sweep alone
tells, a second or two later.  News is coalesced: one line at most every ``MIN_GAP`` seconds, log-only news at
most every ``LOG_GAP`` seconds, whatever a job does to its log (the kernel merges the
events it queues meanwhile).

The watch ends when the session does (its input closes), when its output cannot be
written, and after ``SILENCE_LIMIT`` seconds without a line from spoold (a peer that
vanished without closing the connection leaves nothing running for long).
"""

from __future__ import annotations

import os
import select
import sys
import time
from pathlib import Path

from ailabber.model.remote_layout import LOGS, METRICS, OUTBOX, QUEUE_FILE
from ailabber.model.watch_lines import (
    ALL,
    BEAT_MAX_BYTES,
    LIMITS,
    LOGS_SUFFIX,
    MAX_LINE,
    QUEUE,
    SILENCE_LIMIT,
    beat_line,
    changed_line,
    parse_ids,
)
from ailabber.storage.logindex import INDEX, OUTPUT_LOG
from ailabber.storage.remoted_beat import REMOTED_BEAT
from ailabber.storage.safedir import SafeDir
from ailabber.storage.statusfile import EVENTS, STATUS
from ailabber.storage.upload_limits import LIMITS_FILE
from remoted import inotify
from remoted.inotify import GONE, Inotify
from remoted.joblogs import SETUP_LOG

SETTLE = 0.02         # after a batch's first event: a rename and its append travel together
MIN_GAP = 0.25        # between two lines
LOG_GAP = 1.0         # between two lines that carry log news
READ_GAP = 0.1        # between two reads of the events: a busy log wakes the watch ten times a second at most
SWEEP_EVERY = 2.0
TASK_FILES = (STATUS, EVENTS)
LOG_FILES = (OUTPUT_LOG, INDEX, SETUP_LOG, METRICS)
DIR_EVENTS = (inotify.IN_CLOSE_WRITE | inotify.IN_MOVED_TO | inotify.IN_MOVED_FROM | inotify.IN_CREATE
              | inotify.IN_DELETE | inotify.IN_DELETE_SELF | inotify.IN_MOVE_SELF)
LOG_EVENTS = DIR_EVENTS | inotify.IN_MODIFY
TASK_EVENTS = DIR_EVENTS | inotify.IN_MODIFY

Signature = tuple[int, int, int] | None     # inode, size, mtime (ns); None: absent


class Stop(Exception):
    """The watch ends; ``code`` is its exit status (0: the session ended)."""

    def __init__(self, code: int, message: str = ""):
        super().__init__(message)
        self.code = code


class AreaWatch:
    def __init__(self, area: Path, out_fd: int = 1):
        self.area_path = area
        self.out_fd = out_fd
        self.ino: Inotify | None = None
        self._complained = False
        try:
            self.ino = Inotify()
        except OSError as exc:       # no instance left: the sweep alone still tells, slower
            self.complain(exc)
        self.area: SafeDir | None = None
        self.area_wd = -1
        self.outbox: SafeDir | None = None
        self.outbox_wd = -1
        self.wanted: frozenset[str] = frozenset()
        self.wd_of: dict[str, int] = {}          # "<id>" or "<id>/logs" -> watch descriptor
        self.key_of: dict[int, str] = {}         # and back
        self.signatures: dict[str, Signature] = {}
        self.pending: set[str] = set()
        self.first_pending = 0.0
        self.last_line = 0.0
        self.last_log_line = 0.0
        self.last_read = 0.0

    # --- opening, through handles --------------------------------------------------------
    def open_area(self) -> None:
        """The pinned directory and ``outbox/`` under it (which may not exist yet)."""
        self.close_dirs()
        try:
            self.area = SafeDir.open(self.area_path)
        except OSError as exc:
            raise Stop(1, f"ailabber-gate: cannot open {self.area_path}: {exc.strerror}") from None
        self.area_wd = self._watch(self.area.fd, DIR_EVENTS)
        self.open_outbox()

    def open_outbox(self) -> None:
        if self.outbox is not None:
            self.outbox.close()
            self.outbox = None
        self._unwatch(self.outbox_wd)
        self.outbox_wd = -1
        for key in list(self.wd_of):
            self._drop(key)
        assert self.area is not None
        try:
            self.outbox = self.area.sub(OUTBOX)
        except OSError:
            return            # not there yet, or not a directory: the area's watch says when it is
        self.outbox_wd = self._watch(self.outbox.fd, DIR_EVENTS)
        for task_id in sorted(self.wanted):
            self.watch_task(task_id)

    def watch_task(self, task_id: str) -> None:
        """Watch ``outbox/<id>/`` and its ``logs/``, where they exist."""
        if self.outbox is None:
            return
        for key, parts in ((task_id, (task_id,)), (task_id + LOGS_SUFFIX, (task_id, LOGS))):
            if key in self.wd_of:
                continue
            d = self._open(parts)
            if d is None:
                return
            try:
                wd = self._watch(d.fd, LOG_EVENTS if key.endswith(LOGS_SUFFIX) else TASK_EVENTS)
            finally:
                d.close()
            if wd >= 0:
                self._add(key, wd)

    def _open(self, parts: tuple[str, ...]) -> SafeDir | None:
        assert self.outbox is not None
        d: SafeDir | None = None
        try:
            for name in parts:
                nxt = (d or self.outbox).sub(name)
                if d is not None:
                    d.close()
                d = nxt
            return d
        except OSError:
            if d is not None:
                d.close()
            return None

    def _add(self, key: str, wd: int) -> None:
        old = self.key_of.get(wd)
        if old is not None and old != key:      # the same directory under two names: keep one
            self.wd_of.pop(old, None)
        self.wd_of[key] = wd
        self.key_of[wd] = key

    def _drop(self, key: str) -> None:
        wd = self.wd_of.pop(key, None)
        if wd is not None:
            self.key_of.pop(wd, None)
            self._unwatch(wd)

    def _watch(self, dir_fd: int, mask: int) -> int:
        """A watch on the directory open on ``dir_fd``; -1 when the kernel refuses one
        (``fs.inotify.max_user_watches``): that directory is then seen by the sweep only."""
        if self.ino is None:
            return -1
        try:
            return self.ino.watch_fd(dir_fd, mask)
        except OSError as exc:
            self.complain(exc)
            return -1

    def complain(self, exc: OSError) -> None:
        """Once, on the session's error output, which spoold logs."""
        if not self._complained:
            self._complained = True
            print(f"ailabber-gate: watch: {exc.strerror or exc}; comparing files every {SWEEP_EVERY:g} s instead",
                  file=sys.stderr, flush=True)

    def _unwatch(self, wd: int) -> None:
        if wd >= 0 and self.ino is not None:
            self.ino.unwatch(wd)

    def close_dirs(self) -> None:
        for d in (self.outbox, self.area):
            if d is not None:
                d.close()
        self.outbox = self.area = None
        for wd in (self.outbox_wd, self.area_wd):
            self._unwatch(wd)
        self.outbox_wd = self.area_wd = -1
        for key in list(self.wd_of):
            self._drop(key)

    # --- the set spoold asks for ---------------------------------------------------------
    def take(self, line: bytes) -> None:
        try:
            wanted = parse_ids(line)
        except ValueError as exc:
            raise Stop(2, f"ailabber-gate: watch: {exc}") from None
        for task_id in self.wanted - wanted:
            self._drop(task_id)
            self._drop(task_id + LOGS_SUFFIX)
            self.forget(task_id)
        added = wanted - self.wanted
        self.wanted = wanted
        for task_id in sorted(added):
            self.watch_task(task_id)
            self.note(task_id, task_id + LOGS_SUFFIX)    # whatever happened before the watch
        self.write(f"watching {len(wanted)}\n".encode())

    # --- events --------------------------------------------------------------------------
    def note(self, *tokens: str) -> None:
        if not self.pending:
            self.first_pending = time.monotonic()
        self.pending.update(tokens)

    def handle(self, events: list[inotify.Event]) -> None:
        for ev in events:
            if ev.mask & inotify.IN_Q_OVERFLOW:
                self.note(ALL)
            elif ev.wd == self.area_wd:
                self.area_event(ev)
            elif ev.wd == self.outbox_wd:
                self.outbox_event(ev)
            elif ev.wd in self.key_of:
                self.task_event(self.key_of[ev.wd], ev)

    def area_event(self, ev: inotify.Event) -> None:
        if ev.mask & GONE:
            self.open_area()          # the pinned directory itself was replaced: start over
            self.note(ALL)
        elif ev.name == LIMITS_FILE:
            self.note(LIMITS)
        elif ev.name == REMOTED_BEAT:
            self.send_beat()
        elif ev.name == OUTBOX:
            self.open_outbox()
            self.note(ALL)

    def outbox_event(self, ev: inotify.Event) -> None:
        if ev.mask & GONE:
            self.open_outbox()
            self.note(ALL)
        elif ev.name == QUEUE_FILE:
            self.note(QUEUE)
        elif ev.name in self.wanted:
            if ev.mask & (inotify.IN_DELETE | inotify.IN_MOVED_FROM):
                self._drop(ev.name)
                self._drop(ev.name + LOGS_SUFFIX)
            else:
                self.watch_task(ev.name)
            self.note(ev.name, ev.name + LOGS_SUFFIX)

    def task_event(self, key: str, ev: inotify.Event) -> None:
        if ev.mask & GONE:
            self._drop(key)
            self.watch_task(key.split("/", 1)[0])
            self.note(key)
        elif key.endswith(LOGS_SUFFIX):
            self.note(key)
        elif ev.name == LOGS:
            self.watch_task(key)
            self.note(key + LOGS_SUFFIX)
        elif not ev.name.startswith("."):        # not a temporary file of an atomic write
            self.note(key)

    # --- the sweep: what inotify cannot see (another host's writes) ----------------------
    def sweep(self, report: bool = True) -> None:
        """Compare every watched file with the last look; note what changed (``report``)."""
        if self.area is None:
            return
        self.look(LIMITS, report)
        if self.compare(REMOTED_BEAT, self.area, REMOTED_BEAT) and report:
            self.send_beat()
        if self.outbox is None:       # made since, or a link or file in its place: no news
            self.open_outbox()
            if self.outbox is not None:
                self.note(ALL)
            return
        self.look(QUEUE, report)
        for task_id in sorted(self.wanted):
            if task_id not in self.wd_of or task_id + LOGS_SUFFIX not in self.wd_of:
                self.watch_task(task_id)
            self.look(task_id, report)
            self.look(task_id + LOGS_SUFFIX, report)

    def look(self, token: str, report: bool) -> None:
        """Compare the files behind ``token`` with the last look, and note ``token`` if
        one changed and ``report``: the sweep reports, a line just printed only records
        (so that the next sweep does not announce the same change again)."""
        names: tuple[str, ...]
        if token == LIMITS:
            where, names, d = self.area, (LIMITS_FILE,), None
        elif token == QUEUE:
            where, names, d = self.outbox, (QUEUE_FILE,), None
        elif self.outbox is None:
            return
        else:
            task_id, _, logs = token.partition("/")
            d = self._open((task_id, LOGS) if logs else (task_id,))
            where, names = d, (LOG_FILES if logs else TASK_FILES)
        try:
            changed = [self.compare(f"{token}:{name}", where, name) for name in names]
        finally:
            if d is not None:
                d.close()
        if report and any(changed):
            self.note(token)

    def forget(self, task_id: str) -> None:
        for token, names in ((task_id, TASK_FILES), (task_id + LOGS_SUFFIX, LOG_FILES)):
            for name in names:
                self.signatures.pop(f"{token}:{name}", None)

    def compare(self, key: str, d: SafeDir | None, name: str) -> bool:
        """Whether ``name`` in ``d`` (inode, size, mtime) changed since the last look."""
        sig: Signature = None
        if d is not None:
            try:
                st = d.lstat(name)
                sig = (st.st_ino, st.st_size, st.st_mtime_ns)
            except OSError:
                pass
        before = self.signatures.get(key, sig)        # the first look only records
        self.signatures[key] = sig
        return before != sig

    # --- output --------------------------------------------------------------------------
    def send_beat(self) -> None:
        """The heartbeat, as one line: a regular file, opened without following a link."""
        if self.area is None:
            return
        import json

        self.compare(REMOTED_BEAT, self.area, REMOTED_BEAT)
        try:
            data = json.loads(self.area.read_regular(REMOTED_BEAT, BEAT_MAX_BYTES))
        except (OSError, ValueError):
            return
        if isinstance(data, dict):
            self.write(beat_line(data))

    def write(self, data: bytes) -> None:
        try:
            while data:
                data = data[os.write(self.out_fd, data):]
        except OSError:
            raise Stop(0) from None      # nobody reads any more: the session is over

    def flush_due(self, now: float) -> float | None:
        """Print what is pending if it may go now; else how long until it may."""
        if not self.pending:
            return None
        logs_only = all(t.endswith(LOGS_SUFFIX) for t in self.pending)
        due = max(self.first_pending + SETTLE, self.last_line + MIN_GAP)
        if logs_only:
            due = max(due, self.last_log_line + LOG_GAP)
        if now < due:
            return due - now
        tokens, self.pending = self.pending, set()
        if ALL in tokens:
            self.sweep(report=False)
        else:
            for token in tokens:
                self.look(token, report=False)
        if any(t.endswith(LOGS_SUFFIX) for t in tokens) or ALL in tokens:
            self.last_log_line = now
        self.last_line = now
        self.write(changed_line(tokens))
        return None

    # --- the loop ------------------------------------------------------------------------
    def run(self, in_fd: int = 0) -> int:
        try:
            self.open_area()
            self.sweep(report=False)          # the first look only records what is there
            self.pending.clear()
            self.write(b"ready\n")
            self.send_beat()
            buf = b""
            heard = next_sweep = time.monotonic()
            while True:
                now = time.monotonic()
                if now - heard > SILENCE_LIMIT:
                    raise Stop(0)
                if now >= next_sweep:
                    self.sweep()
                    next_sweep = now + SWEEP_EVERY
                wait = self.flush_due(now)
                timeout = next_sweep - now if wait is None else min(next_sweep - now, wait)
                # Events wait in the kernel between two reads, which merges repeats of the
                # same change meanwhile: a job writing its log all the time costs at most
                # ten wake-ups a second, and a state change waits READ_GAP at most.
                read_at = self.last_read + READ_GAP
                ino_fd = self.ino.fd if self.ino is not None else -1
                fds = [in_fd, ino_fd] if now >= read_at and ino_fd >= 0 else [in_fd]
                if now < read_at:
                    timeout = min(timeout, read_at - now)
                ready, _, _ = select.select(fds, [], [], max(0.0, timeout))
                if self.ino is not None and ino_fd in ready:
                    self.last_read = time.monotonic()
                    self.handle(self.ino.read())
                if in_fd in ready:
                    chunk = os.read(in_fd, 65536)
                    if not chunk:
                        raise Stop(0)         # the session ended
                    heard = time.monotonic()
                    buf += chunk
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        self.take(line)
                    if len(buf) > MAX_LINE:
                        raise Stop(2, f"ailabber-gate: watch: a line longer than {MAX_LINE} bytes")
        except Stop as stop:
            if str(stop):
                print(str(stop), file=sys.stderr)
            return stop.code
        finally:
            self.close_dirs()
            if self.ino is not None:
                self.ino.close()
