"""One driver per scheduler backend, the same for every contract test.

Each driver is a workstation (a ``Pipeline``'s home: the real CLI and spool) and a cluster
side behind one backend:

- ``local``: real spoold and remoted processes, the local scheduler.
- ``slurm``: real spoold and remoted processes, the session's real Slurm (missing Slurm
  fails under ``--require-infra``, through the ``slurm_cluster`` fixture).
- ``fake``: the product's ``Spoold`` and ``Remoted`` in this process, over a
  ``FakeScheduler``, each pass made by the driver while it waits (no daemon thread races
  the test).  Tasks travel as in production: the CLI's ``submit`` writes the spool,
  spoold's rsync transport uploads them (files first, then the commit marker).

What differs between backends is data on the driver (how many GPUs, which reason a
waiting task shows, what an impossible request says), never a skipped assertion.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

from ailabber.cli.common import task_json
from ailabber.daemonkit.remoted_settings import load_remoted_settings
from ailabber.daemonkit.spoold_settings import load_spoold_settings
from ailabber.storage.spool import Spool
from ailabber.workstation import taskview
from spoold.daemon import Spoold
from testbed.fake_scheduler import FakeScheduler, InProcessRemoted
from testbed.pipeline import TERMINAL, Pipeline
from testbed.slurm_cluster import SlurmCluster
from tests.integration.conftest import student_python  # noqa: F401
from tests.slurm_fixture import slurm_cluster  # noqa: F401

T = TypeVar("T")
BACKENDS = ["fake", "local", "slurm"]


class Backend:
    name = ""
    #: GPUs the backend hands out.
    gpus = 1
    #: What a task waiting for a GPU shows: its reason, and words of ``ailabber status``.
    waiting_reason = "waiting_for_gpu"
    waiting_text = "waiting for a free GPU"
    #: How a request for more GPUs than exist ends: its reason and words of its message.
    impossible_reason = "unsatisfiable"
    impossible_words: tuple[str, ...] = ("this machine has 1",)
    #: Who says when a waiting task starts: remoted's bound from the time limits, or the
    #: scheduler's own estimate (``start_estimate_kind``).
    start_estimate_kind = "upper_bound"
    #: Whether every process of a task has ended by the time its final state is published
    #: (else: soon after, within the backend's kill timeout).
    ends_processes_first = True
    #: A time limit long enough for SIGUSR1 (``signal_before_timeout``) to come well before it.
    usr1_time_limit = "0:06"
    signal_before = 3
    #: The exit code of a task whose command the time limit stopped (128 + SIGTERM).
    timeout_exit_code = 143

    def __init__(self, p: Pipeline):
        self.p = p

    # --- the workstation -----------------------------------------------------------------
    def project(self, commands: list[str], **kw: Any) -> Path:
        return self.p.project(commands, **kw)

    def submit(self, project: Path) -> str:
        return self.p.submit(project)

    def cli(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.p.cli(*args, **kw)

    def status(self, task_id: str) -> dict[str, Any]:
        return self.p.status(task_id)

    def logs(self, task_id: str) -> str:
        return self.cli("logs", task_id).stdout

    # --- waiting -------------------------------------------------------------------------
    def pump(self) -> None:
        """Let the daemons make progress (real daemons need nothing)."""

    def wait_until(self, probe: Callable[[], T | None], timeout: float, what: str) -> T:
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: timed out waiting for {what}\n{self.diagnostics()}")
            time.sleep(0.1)

    def wait_for(self, task_id: str, pred: Callable[[dict[str, Any]], bool], timeout: float = 60,
                 what: str = "") -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def probe() -> dict[str, Any] | None:
            seen.update(self.status(task_id))
            return dict(seen) if pred(seen) else None

        try:
            return self.wait_until(probe, timeout, what or f"{task_id} to match {pred}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nlast status of {task_id}: {seen}") from None

    def wait_terminal(self, task_id: str, timeout: float = 60) -> dict[str, Any]:
        return self.wait_for(task_id, lambda s: s["state"] in TERMINAL and s["stage"] == "done", timeout,
                             f"{task_id} to reach a final state in done/")

    def diagnostics(self) -> str:
        return self.p.daemon_logs()

    # --- the cluster side ----------------------------------------------------------------
    def jobs_made(self, task_id: str) -> int | None:
        """How many jobs the scheduler holds for the task, where it can say (None: it keeps
        no such ledger)."""
        return None

    def arm_crash(self, point: str) -> None:
        """The next time remoted reaches ``point`` it dies as if SIGKILLed."""
        self.p.kill("remoted", signal.SIGTERM)
        self.crashing = self.p.start("remoted", AILABBER_CRASH_AT=point)

    def recover_from_crash(self) -> None:
        """Wait for the armed crash, then start remoted again on the same root."""
        assert self.crashing.wait(120) == -9, f"remoted did not reach its crash point\n{self.diagnostics()}"
        self.p.start("remoted")

    def close(self) -> None:
        self.p.stop_all()


class LocalBackend(Backend):
    name = "local"

    def __init__(self, base: Path):
        super().__init__(Pipeline(base, gpus=self.gpus, remoted_extra={"signal_before_timeout": self.signal_before}))
        self.p.start_all()


class SlurmBackend(Backend):
    name = "slurm"
    gpus = 2                      # the session cluster's fake GPUs
    waiting_reason = "Resources"
    waiting_text = "waiting for a free GPU/CPU"
    impossible_reason = "launch_failed"
    impossible_words = ("sbatch", "not available")
    start_estimate_kind = "scheduler"
    ends_processes_first = False  # Slurm reports CANCELLED while its kill is under way
    # Slurm's time limits are whole minutes, and slurmctld sends the warning from a periodic
    # check (every 30 s or so, later on a loaded machine): due 20 s in, with 100 s to arrive.
    usr1_time_limit = "2:00"
    signal_before = 100

    def __init__(self, base: Path, cluster: SlurmCluster):
        self.cluster = cluster
        super().__init__(Pipeline(base, scheduler="slurm", kill_grace=2.0, remoted_env={"SLURM_CONF": str(cluster.conf)},
                                  remoted_extra={"signal_before_timeout": self.signal_before}))
        self.p.start_all()

    def jobs_made(self, task_id: str) -> int | None:
        r = self.cluster.run("squeue", "-h", "-t", "all", f"--name=ailabber-{task_id}", "-o", "%i", check=False)
        return len(r.stdout.split())

    def close(self) -> None:
        super().close()
        if self.p.submitted:
            self.cluster.run("scancel", "--name=" + ",".join(f"ailabber-{t}" for t in self.p.submitted),
                             check=False)


class FakeBackend(Backend):
    name = "fake"
    #: remoted's crash points, and where in ``submit`` the fake stages each.
    CRASHES: ClassVar[dict[str, str]] = {"remoted:before_submit": "before", "remoted:after_submit": "after"}

    def __init__(self, base: Path):
        super().__init__(Pipeline(base, gpus=self.gpus, remoted_extra={"signal_before_timeout": self.signal_before}))
        settings = load_remoted_settings(self.p.remoted_cfg)
        self.scheduler = FakeScheduler(gpus=self.gpus, kill_grace=settings.kill_grace)
        self.remote = InProcessRemoted(settings, self.scheduler)
        self.spool = Spool(self.p.home / "spool")
        self.spoold = Spoold(load_spoold_settings(self.p.spoold_cfg))
        self.spoold.prepare()
        self._crashes_before = 0

    def pump(self) -> None:
        self.spoold.step()
        self.remote.step()
        self.spoold.step()

    def status(self, task_id: str) -> dict[str, Any]:
        loc, st = self.spool.locate(task_id), self.spool.read_status(task_id)
        assert loc is not None and st is not None, f"{task_id} is not in the spool"
        return taskview.with_queue(task_json(st, loc[0]), st, taskview.queue_entries(self.spool).get(task_id))

    def diagnostics(self) -> str:
        jobs = {t: self.scheduler.submits[t] for t in self.p.submitted}
        return f"fake scheduler: jobs made per task {jobs}; remoted passes {self.remote.passes}"

    def jobs_made(self, task_id: str) -> int | None:
        return self.scheduler.submits[task_id]

    def arm_crash(self, point: str) -> None:
        self.scheduler.crash_in_submit = self.CRASHES[point]
        self._crashes_before = self.remote.crashes

    def recover_from_crash(self) -> None:
        # InProcessRemoted replaces the crashed daemon itself; wait until that happened.
        self.wait_until(lambda: self.remote.crashes > self._crashes_before, 60, "remoted to crash in submit")

    def close(self) -> None:
        self.remote.close()
        self.spoold.transport.close()
        assert self.remote.errors == [], f"remoted passes failed: {self.remote.errors}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    b: Backend
    if request.param == "slurm":
        b = SlurmBackend(tmp_path, request.getfixturevalue("slurm_cluster"))
    elif request.param == "local":
        b = LocalBackend(tmp_path)
    else:
        b = FakeBackend(tmp_path)
    try:
        yield b
    finally:
        b.close()
