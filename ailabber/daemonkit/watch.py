"""Filesystem events as hints, never as the source of truth.

inotify drops events on overflow and watchdog's single dispatcher thread dies on a handler
exception, so the handler does nothing but set a flag.  The daemon rescans the directories
itself, at start-up, on every hint and at least every ``rescan_interval`` seconds.
"""

from __future__ import annotations

import logging
import os
import select
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

#: Only what can mean "new work": not the open/close events our own rescans cause, which
#: would wake the watcher thread on every pass for nothing.
EVENTS = [FileCreatedEvent, FileMovedEvent, FileDeletedEvent, FileClosedEvent,
          DirCreatedEvent, DirMovedEvent, DirDeletedEvent]
from watchdog.observers import Observer

log = logging.getLogger(__name__)


class _Hint(FileSystemEventHandler):
    def __init__(self, wake: Callable[[], None]):
        self._wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        self._wake()


class Waker:
    """Wakes the daemon loop early when something changes in a watched directory, or when
    a signal asks it to stop or reload.

    A self-pipe rather than a ``threading.Event``: the signal handlers poke it from the main
    thread, which may be inside ``Event.wait`` or ``clear`` holding the event's lock at that
    moment; ``set`` would then wait for that lock for ever and the daemon would hang.
    Writing to a pipe takes no lock."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._observer = Observer()
        self._observer.daemon = True
        self._watched: set[Path] = set()
        self._started = False

    def watch(self, path: Path) -> None:
        path = Path(path)
        if path in self._watched or not path.is_dir():
            return
        try:
            try:
                self._observer.schedule(_Hint(self.poke), str(path), recursive=False, event_filter=EVENTS)
            except TypeError:   # watchdog before 4.0 has no event filter
                self._observer.schedule(_Hint(self.poke), str(path), recursive=False)
            self._watched.add(path)
        except OSError as exc:  # inotify watch limit: periodic rescans still cover us
            log.warning("cannot watch %s (%s); relying on periodic rescans", path, exc)

    def start(self) -> None:
        self._observer.start()
        self._started = True

    def alive(self) -> bool:
        return not self._started or self._observer.is_alive()

    def wait(self, timeout: float) -> bool:
        """Until poked or ``timeout`` seconds; whether it was poked.  Every poke made so far
        is consumed: many events before one wait make one wake-up."""
        ready, _, _ = select.select([self._read], [], [], timeout)
        while True:
            try:
                if not os.read(self._read, 4096):
                    break
            except BlockingIOError:
                break
        return bool(ready)

    def poke(self) -> None:
        """Safe from a signal handler and from any thread."""
        try:
            os.write(self._write, b"!")
        except BlockingIOError:
            pass            # the pipe is full: a wake-up is pending already

    def stop(self) -> None:
        if self._started:
            self._observer.stop()
            self._observer.join(timeout=5)
