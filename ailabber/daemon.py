"""The loop both daemons share: single-instance lock, signals, rescan cadence, logging.

spoold and remoted only supply ``step()`` (one full pass over their directories) and the
directories worth watching; everything about *when* to run a pass lives here.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from ailabber.daemonlock import AlreadyRunning, SingleInstance
from ailabber.watch import Waker

log = logging.getLogger("ailabber")


def setup_logging(name: str, verbose: bool = False) -> None:
    """Log to stderr; under systemd (JOURNAL_STREAM set) leave timestamps to the journal."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        fmt = "%(message)s"
    else:
        fmt = f"%(asctime)s {name}[%(process)d] %(levelname)s %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
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
    ):
        """``step`` does one full pass and returns how soon (seconds) it wants the next one."""
        self.what = what
        self.lock = SingleInstance(lock_path, what)
        self.step = step
        self.watch_dirs = watch_dirs
        self.rescan_interval = rescan_interval
        self.waker = Waker()
        self._stop = False

    def request_stop(self, signum: int = 0, _frame: FrameType | None = None) -> None:
        self._stop = True
        self.waker.poke()

    def run(self) -> int:
        try:
            self.lock.acquire()
        except AlreadyRunning as exc:
            log.error("%s", exc)
            return 3
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        try:
            for d in self.watch_dirs():
                self.waker.watch(d)
            self.waker.start()
            log.info("%s started (pid %d)", self.what, os.getpid())
            while not self._stop:
                started = time.monotonic()
                try:
                    wanted = self.step()
                except Exception:  # one bad pass must not kill the service; next pass retries
                    log.exception("%s: pass failed; retrying", self.what)
                    wanted = min(self.rescan_interval, 2.0)
                for d in self.watch_dirs():
                    self.waker.watch(d)
                if not self.waker.alive():
                    log.error("%s: the file watcher died; continuing with periodic rescans", self.what)
                if self._stop:
                    break
                timeout = max(0.0, min(wanted, self.rescan_interval))
                log.debug("%s: pass took %.3fs; next in %.2fs", self.what, time.monotonic() - started, timeout)
                self.waker.wait(timeout)
            log.info("%s stopping", self.what)
            return 0
        finally:
            self.waker.stop()
            self.lock.release()
