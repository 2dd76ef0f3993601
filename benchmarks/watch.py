"""Observers that note *when* something changes: Slurm's view of jobs, and a task's status
as ``ailabber status`` would show it."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TypeVar

from ailabber.storage.spool import Spool
from testbed.slurm_cluster import SlurmCluster

STARTED = ("RUNNING", "COMPLETING", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")

_W = TypeVar("_W", bound="_Poller")


class _Poller:
    """Calls ``_poll`` every ``interval`` seconds on a daemon thread, from ``__enter__``
    until ``__exit__``."""

    def __init__(self, interval: float):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self: _W) -> _W:  # noqa: PYI019 (typing.Self needs 3.11)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._poll()
            self._stop.wait(self.interval)

    def _poll(self) -> None:
        raise NotImplementedError


class SqueueWatch(_Poller):
    """Polls ``squeue -t all`` every ``interval`` seconds and keeps, per job, the first
    moment (``time.monotonic()``) each state was seen.  Both sides of a comparison are
    observed by the same watcher, so its sampling delay cancels out."""

    def __init__(self, cluster: SlurmCluster, interval: float = 0.05):
        super().__init__(interval)
        self.cluster = cluster
        self.first: dict[str, dict[str, float]] = {}   # job id -> state -> first seen
        self.names: dict[str, str] = {}                # job name -> job id
        self._lock = threading.Lock()

    def _poll(self) -> None:
        r = self.cluster.run("squeue", "-h", "-t", "all", "-o", "%i|%j|%T", check=False)
        now = time.monotonic()
        with self._lock:
            for line in r.stdout.splitlines():
                parts = line.split("|")
                if len(parts) != 3:
                    continue
                job, name, state = parts
                self.names.setdefault(name, job)
                self.first.setdefault(job, {}).setdefault(state, now)

    def seen(self, *, job: str | None = None, name: str | None = None, states: tuple[str, ...] = STARTED
             ) -> float | None:
        """The first moment the job was seen in any of ``states``."""
        with self._lock:
            if job is None and name is not None:
                job = self.names.get(name)
            if job is None:
                return None
            times = [t for s, t in self.first.get(job, {}).items() if s in states]
        return min(times) if times else None

    def wait(self, timeout: float, **kw: object) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t = self.seen(**kw)  # type: ignore[arg-type]
            if t is not None:
                return t
            time.sleep(0.01)
        raise TimeoutError(f"squeue never showed {kw} within {timeout:.0f}s")


class StatusWatch(_Poller):
    """Reads a task's status the way ``ailabber status`` does (``Spool.read_status`` on
    the spool spoold serves) every ``interval`` seconds; notes when each state appeared."""

    def __init__(self, spool_root: Path, task_id: str, interval: float = 0.01):
        super().__init__(interval)
        self.spool = Spool(spool_root)
        self.task_id = task_id
        self.first: dict[str, float] = {}

    def _poll(self) -> None:
        st = self.spool.read_status(self.task_id)
        if st is not None:
            self.first.setdefault(st.state, time.monotonic())

    def wait(self, state: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if state in self.first:
                return self.first[state]
            time.sleep(0.01)
        raise TimeoutError(f"{self.task_id} never showed {state!r} within {timeout:.0f}s")
