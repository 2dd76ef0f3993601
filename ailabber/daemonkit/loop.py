"""The loop both daemons share: single-instance lock, signals, rescan cadence, systemd
notifications, logging.

spoold and remoted only supply ``step()`` (one full pass over their directories), the
directories worth watching, a one-line status and a reload; everything about *when* to run
a pass, and what to tell systemd, lives here.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from ailabber.daemonkit.lock import AlreadyRunning, SingleInstance
from ailabber.daemonkit.notify import Notifier
from ailabber.daemonkit.watch import Waker

log = logging.getLogger("ailabber")

#: A pass may legitimately take long (a big upload); past this, the watchdog stops
#: vouching for it and systemd may restart the daemon.
MAX_PASS_SECONDS = 24 * 3600.0   # as long as one transfer may take (spoold.transport)
MIN_PASS_GAP = 0.02              # seconds between two passes at least, however many events
MAX_PASS_GAP = 1.0               # ... and at most, after a long pass

_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


class _JournalFormatter(logging.Formatter):
    """``<N>message``: journald reads the priority from the prefix; it adds its own time."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def setup_logging(name: str, verbose: bool = False) -> None:
    """Log to stderr; under systemd (JOURNAL_STREAM set) with priorities and no timestamps."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {name}[%(process)d] %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("watchdog").setLevel(logging.WARNING)


class DaemonLoop:
    def __init__(
        self,
        what: str,
        lock_path: Path,
        step: Callable[[], float],
        watch_dirs: Callable[[], list[Path]],
        rescan_interval: float,
        status: Callable[[], str] | None = None,
        reload: Callable[[], None] | None = None,
        on_stop: Callable[[], None] | None = None,
        idle: Callable[[], bool] | None = None,
    ):
        """``step`` does one full pass and returns how soon (seconds) it wants the next one.
        ``idle``, for a daemon whose watched directories others can write: whether the
        last pass found nothing to do, after which the next one waits (``_rest_after``)."""
        self.what = what
        self.lock = SingleInstance(lock_path, what)
        self.step = step
        self.watch_dirs = watch_dirs
        self.rescan_interval = rescan_interval
        self.status = status or (lambda: "")
        self.reload = reload
        self.on_stop = on_stop
        self.idle = idle
        self.waker = Waker()
        self.notify = Notifier()
        self._stop = False
        self._reload = False
        self._pass_started: float | None = None
        self._last_pass_end = time.monotonic()

    def request_stop(self, signum: int = 0, _frame: FrameType | None = None) -> None:
        self._stop = True
        self.waker.poke()
        if self.on_stop is not None:
            self.on_stop()

    def request_reload(self, signum: int = 0, _frame: FrameType | None = None) -> None:
        self._reload = True
        self.waker.poke()

    def healthy(self) -> bool:
        """Both threads alive and the main loop making progress."""
        if not self.waker.alive():
            return False
        now = time.monotonic()
        if self._pass_started is not None:
            return now - self._pass_started < MAX_PASS_SECONDS
        return now - self._last_pass_end < max(3 * self.rescan_interval, 60.0)

    def _watchdog(self) -> None:
        interval = self.notify.watchdog_interval
        if not interval:
            return
        while not self._stop:
            if self.healthy():
                self.notify.watchdog()
            time.sleep(interval / 3)

    def _rest_after(self, last_took: float) -> None:
        """Events are hints anyone with a watched directory can make: after a pass that
        found nothing to do, the next starts no sooner than that one took, so a student
        making events in a loop keeps the daemon at most half busy (never closer than
        ``MIN_PASS_GAP``); passes that work follow each other at once."""
        if self.idle is None or not self.idle():
            return
        rest = min(MAX_PASS_GAP, max(MIN_PASS_GAP, last_took)) - (time.monotonic() - self._last_pass_end)
        if rest > 0 and not self._stop:
            time.sleep(rest)

    def run(self) -> int:
        try:
            self.lock.acquire()
        except AlreadyRunning as exc:
            log.error("%s", exc)
            return 3
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)
        first = True
        last_took = 0.0
        try:
            for d in self.watch_dirs():
                self.waker.watch(d)
            self.waker.start()
            threading.Thread(target=self._watchdog, name="watchdog", daemon=True).start()
            log.info("%s started (pid %d)", self.what, os.getpid())
            while not self._stop:
                if self._reload:
                    self._reload = False
                    self.notify.reloading()
                    try:
                        if self.reload:
                            self.reload()
                        log.info("%s: configuration reloaded", self.what)
                    except Exception as exc:  # a bad new config keeps the old one running
                        log.error("%s: reload failed, keeping the previous configuration: %s", self.what, exc)
                    self.notify.ready(self.status())   # the reload is over, either way
                self._rest_after(last_took)
                started = time.monotonic()
                rested = started - self._last_pass_end
                self._pass_started = started
                try:
                    wanted = self.step()
                except Exception:  # one bad pass must not kill the service; next pass retries
                    log.exception("%s: pass failed; retrying", self.what)
                    wanted = min(self.rescan_interval, 2.0)
                finally:
                    self._pass_started = None
                    self._last_pass_end = time.monotonic()
                status = self.status()
                if first:
                    self.notify.ready(status)   # the first full rescan is done
                    first = False
                elif status:
                    self.notify.status(status)
                for d in self.watch_dirs():
                    self.waker.watch(d)
                if not self.waker.alive():
                    log.error("%s: the file watcher died; continuing with periodic rescans", self.what)
                if self._stop:
                    break
                timeout = max(0.0, min(wanted, self.rescan_interval))
                # The pass, watches and status included, ends here: the rest before the
                # next one is counted from now.
                self._last_pass_end = time.monotonic()
                last_took = self._last_pass_end - started
                log.debug("%s: pass took %.3fs after a rest of %.4fs; next in %.2fs%s", self.what, last_took, rested,
                          timeout, " (found nothing to do)" if self.idle is not None and self.idle() else "")
                self.waker.wait(timeout)
            log.info("%s stopping", self.what)
            self.notify.stopping()
            return 0
        finally:
            self.waker.stop()
            self.lock.release()
