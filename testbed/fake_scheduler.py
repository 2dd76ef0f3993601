"""An honest in-process scheduler, and remoted driven by hand around it.

``FakeScheduler`` implements the whole scheduler contract (``remoted.schedulers.base``)
inside the test process.  Each job's commands really run, one after another, as
``/bin/bash -c`` subprocesses in the task's working directory, so exit codes, the time
limit, SIGUSR1 before it, cancels and GPU accounting are real outcomes, not scripted
ones.  What it does not do, and says so: it never switches users (every command runs as
the test's own account), it uses no cgroup (``containment()``: the job's processes are
found by the ``AILABBER_TASK_ID`` marker in their environment and killed by it), and it
runs no job wrapper: it writes the task's logs itself, with the wrapper's log writer, and
reports every outcome through ``poll()`` only (no ``started.json``/``result.json``).

Its "cluster" is the object itself: a test simulates a crash of remoted by dropping the
``Remoted`` and building a new one over the same root with the same scheduler, which
still knows its jobs (``find``), as a real cluster would.  Test controls the real
backends cannot offer cheaply: ``unreachable``, a one-shot ``fail_next_submit``, a crash
of remoted inside ``submit`` (``crash_in_submit``), and ``submits``/``started`` to count
and order the jobs made.

``InProcessRemoted`` is remoted itself (``remoted.daemon.Remoted``) over a fake, stepped
by the test with ``step()``: no daemon thread races the test.
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import psutil

from ailabber.daemonkit.remoted_settings import RemotedSettings, UserLimits
from ailabber.model.task import CANCELED, COMPLETED, FAILED, PENDING, RUNNING, TERMINATED, now_iso
from remoted import proctree
from remoted.daemon import Remoted
from remoted.joblogs import Logs
from remoted.jobmetrics import METRICS_VAR, metrics_path
from remoted.jobspec import JobSpec
from remoted.schedulers.base import Blocked, JobHandle, JobState, Scheduler, SchedulerUnavailable

log = logging.getLogger(__name__)
#: The environment marker every process of a job carries (as under the real backends).
MARKER = "AILABBER_TASK_ID"
TICK = 0.05
FINAL = (COMPLETED, FAILED, CANCELED, TERMINATED)


class RemotedCrashed(BaseException):
    """Raised by ``FakeScheduler.submit`` to stop remoted's pass dead, as a SIGKILL would:
    a BaseException, so no ``except Exception`` in remoted records anything after it."""


@dataclass
class FakeJob:
    job_id: str
    spec: JobSpec
    gpus: list[int]
    state: JobState = field(default_factory=lambda: JobState(PENDING, "launching"))
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def over(self) -> bool:
        return self.state.state in FINAL


class FakeScheduler(Scheduler):
    """The whole contract, in this process; see the module's docstring for what it leaves out."""

    name = "fake"
    queues = False
    concurrent_submits = 1

    def __init__(self, gpus: int = 1, kill_grace: float = 2.0):
        self.total_gpus = gpus
        self.kill_grace = kill_grace
        #: True: every call that would reach a real scheduler raises SchedulerUnavailable.
        self.unreachable = False
        #: Raised by the next ``submit`` instead of making a job (once).
        self.fail_next_submit: Exception | None = None
        #: "before": the next ``submit`` kills remoted before it makes the job; "after":
        #: once the job is made, before remoted hears of it (once).
        self.crash_in_submit: str | None = None
        #: Jobs made per task id, and the task ids in the order their jobs were made.
        self.submits: Counter[str] = Counter()
        self.started: list[str] = []
        self._jobs: dict[str, FakeJob] = {}
        self._by_task: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._n = 0

    def _reachable(self) -> None:
        if self.unreachable:
            raise SchedulerUnavailable("the fake scheduler is unreachable (test control)")

    # --- capacity ------------------------------------------------------------------------
    def gpu_slots(self) -> int | None:
        return self.total_gpus

    def check(self, spec: JobSpec, active: list[JobHandle]) -> None:
        """Bookkeeping on the handles remoted passes in: asks nothing of the cluster, so it
        never raises SchedulerUnavailable (the contract allows only Blocked here)."""
        if spec.gpus > self.total_gpus:
            raise Blocked("unsatisfiable", f"asks for {spec.gpus} GPU(s); this machine has {self.total_gpus}")
        free = self.total_gpus - len(_busy(active))
        if spec.gpus > free:
            raise Blocked("waiting_for_gpu", f"needs {spec.gpus} GPU(s); {free} of {self.total_gpus} free")

    # --- launch --------------------------------------------------------------------------
    def submit(self, spec: JobSpec, active: list[JobHandle]) -> JobHandle:
        self._reachable()
        crash, self.crash_in_submit = self.crash_in_submit, None
        if crash == "before":
            raise RemotedCrashed("remoted crashed before the job was made")
        failure, self.fail_next_submit = self.fail_next_submit, None
        if failure is not None:
            raise failure
        self.check(spec, active)
        busy = _busy(active)
        gpus = [g for g in range(self.total_gpus) if g not in busy][: spec.gpus]
        with self._lock:
            self._n += 1
            job = FakeJob(f"fake-{self._n}", spec, gpus)
            self._jobs[job.job_id] = job
            self._by_task[(spec.user, spec.task_id)] = job.job_id
            self.submits[spec.task_id] += 1
            self.started.append(spec.task_id)
        job.thread = threading.Thread(target=self._run, args=(job,), name=job.job_id, daemon=True)
        job.thread.start()
        if crash == "after":
            raise RemotedCrashed("remoted crashed right after the job was made")
        return self._handle(job)

    @staticmethod
    def _handle(job: FakeJob) -> JobHandle:
        return JobHandle(job.job_id, {"gpus": list(job.gpus), "user": job.spec.user, "task_id": job.spec.task_id})

    def find(self, spec: JobSpec) -> JobHandle | None:
        self._reachable()
        job_id = self._by_task.get((spec.user, spec.task_id))
        return self._handle(self._jobs[job_id]) if job_id else None

    # --- tracking ------------------------------------------------------------------------
    def poll(self, handles: list[JobHandle]) -> dict[str, JobState]:
        self._reachable()
        out: dict[str, JobState] = {}
        for h in handles:
            job = self._jobs.get(h.job_id)
            out[h.job_id] = (replace(job.state) if job is not None else
                             JobState(FAILED, "lost", message="the fake scheduler knows no such job"))
        return out

    def cancel(self, handle: JobHandle) -> None:
        self._reachable()
        handle.data["cancel_sent"] = True
        job = self._jobs.get(handle.job_id)
        if job is not None:
            job.cancel.set()

    def containment(self) -> str:
        return f"processes (each job's processes carry {MARKER} and are killed by it; no cgroup, no user switch)"

    def health(self) -> str | None:
        return "unreachable (test control)" if self.unreachable else None

    # --- for tests -----------------------------------------------------------------------
    def job_of(self, task_id: str) -> FakeJob | None:
        for (_user, tid), job_id in self._by_task.items():
            if tid == task_id:
                return self._jobs[job_id]
        return None

    def close(self, timeout: float = 60) -> None:
        """End every job still running and wait for them (test teardown)."""
        for job in list(self._jobs.values()):
            job.cancel.set()
        for job in list(self._jobs.values()):
            if job.thread is not None:
                job.thread.join(timeout)

    # --- the job -------------------------------------------------------------------------
    def _run(self, job: FakeJob) -> None:
        spec = job.spec
        started = time.time()
        deadline = started + spec.time_limit_s
        warn_at = deadline - spec.signal_before if spec.signal_before else None
        logs = Logs(Path(spec.log_dir), spec.max_log_bytes)
        env = {"PATH": spec.path or "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/"),
               "LANG": os.environ.get("LANG", "C.UTF-8"), "PYTHONUNBUFFERED": "1",
               "CUDA_VISIBLE_DEVICES": ",".join(map(str, job.gpus)), MARKER: spec.task_id,
               "AILABBER_DEADLINE": str(int(deadline)), "AILABBER_LOG_DIR": spec.log_dir,
               METRICS_VAR: metrics_path(spec.log_dir),
               "AILABBER_SIGNAL_BEFORE_TIMEOUT": str(spec.signal_before)}
        at = now_iso(started)
        job.state = JobState(RUNNING, started_at=at)
        logs.note(f"task {spec.task_id} started by the fake scheduler")
        final = JobState(COMPLETED, exit_code=0)
        warned = False
        for i, cmd in enumerate(spec.commands):
            logs.note(f"$ {cmd}")
            try:
                proc = subprocess.Popen(["/bin/bash", "-c", cmd], cwd=spec.workdir, env=env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        start_new_session=True)
            except OSError as exc:
                final = JobState(FAILED, "setup_failed", message=f"cannot start command {i + 1}: {exc}")
                break
            stop, exited_at = None, None
            with selectors.DefaultSelector() as sel:
                assert proc.stdout is not None and proc.stderr is not None
                sel.register(proc.stdout, selectors.EVENT_READ, logs.stdout)
                sel.register(proc.stderr, selectors.EVENT_READ, logs.stderr)
                while sel.get_map() or proc.poll() is None:
                    for key, _ in sel.select(TICK) if sel.get_map() else ():
                        data = os.read(key.fd, 65536)
                        if data:
                            key.data.write(data)
                        else:
                            sel.unregister(key.fileobj)
                    if not sel.get_map():
                        time.sleep(TICK)
                    now = time.time()
                    if warn_at is not None and not warned and now >= warn_at:
                        warned = True
                        logs.note(f"{max(0, round(deadline - now))}s before the time limit: SIGUSR1 sent to "
                                  f"{self._usr1(spec.task_id)} process(es) of the command that handle it")
                    if stop is None and (now >= deadline or job.cancel.is_set()):
                        stop = "timeout" if now >= deadline else "canceled"
                        self._kill(spec.task_id, proc)
                    if exited_at is None and proc.poll() is not None:
                        exited_at = now
                    elif exited_at is not None and now - exited_at > 0.5 and sel.get_map():
                        self._kill(spec.task_id, proc)     # what it left running holds its output open
                        exited_at = now
            proc.stdout.close()
            proc.stderr.close()
            rc = proc.wait()
            code = rc if rc >= 0 else 128 - rc
            if stop == "timeout":
                final = JobState(FAILED, "timeout", code,
                                 f"time limit of {spec.time_limit_s}s reached during command {i + 1}")
            elif stop == "canceled":
                final = JobState(TERMINATED, "canceled_by_user")
            elif rc < 0:
                final = JobState(FAILED, "killed", code, f"command {i + 1} was killed by {signal.Signals(-rc).name}")
            elif code != 0:
                final = JobState(FAILED, "nonzero_exit", code, f"command {i + 1} exited with {code}: {cmd[:200]}")
            if final.state != COMPLETED:
                break
        self._kill(spec.task_id)
        logs.note(f"task {final.state}" + (f" ({final.reason})" if final.reason else ""))
        logs.close()
        job.state = replace(final, started_at=at, finished_at=now_iso())

    def _usr1(self, task_id: str) -> int:
        """The warning goes only to the job's processes that handle SIGUSR1 (it would end
        any other), as the job wrapper sends it; returns how many got it."""
        sent = 0
        for p in proctree.processes_with_env(MARKER, task_id):
            if proctree.catches(p.pid, signal.SIGUSR1):
                try:
                    p.send_signal(signal.SIGUSR1)
                    sent += 1
                except psutil.NoSuchProcess:
                    pass          # gone meanwhile
        return sent

    def _kill(self, task_id: str, command: subprocess.Popen[bytes] | None = None) -> None:
        """TERM, grace, KILL every process carrying the job's marker, until none is left.
        The kill's wait reaps ``command`` (our child), whose own poll() would then say 0:
        it keeps the status that wait saw, as the job wrapper does."""
        reaped: dict[int, int] = {}
        for _ in range(10):
            procs = proctree.processes_with_env(MARKER, task_id)
            if not procs:
                break
            proctree.kill_procs(procs, self.kill_grace, statuses=reaped)
        if command is not None and command.returncode is None and command.pid in reaped:
            command.returncode = reaped[command.pid]


def _busy(active: list[JobHandle]) -> set[int]:
    return {int(g) for h in active for g in h.data.get("gpus", [])}


class InProcessRemoted:
    """remoted (the product's ``Remoted``) over a ``FakeScheduler``, in this process.

    ``step()`` is one pass, made when the test says so.  ``crash()`` drops the daemon
    object without closing it and builds a new one on the same root with the same
    scheduler (the cluster outlives remoted)."""

    def __init__(self, settings: RemotedSettings, scheduler: FakeScheduler):
        self.settings = settings
        self.scheduler = scheduler
        self.passes = 0
        self.crashes = 0
        self.errors: list[Exception] = []
        self.remoted = self._start()

    @classmethod
    def at(cls, root: Path, *, gpus: int = 1, kill_grace: float = 2.0, signal_before: int = 0,
           limits: UserLimits | None = None, transport_account: str | None = None) -> InProcessRemoted:
        settings = RemotedSettings(root=root, scheduler="local", gpus=gpus, kill_grace=kill_grace,
                                   env_cache=root.parent / "envs", signal_before_timeout=signal_before,
                                   transport_account=transport_account, limits=limits or UserLimits())
        return cls(settings, FakeScheduler(gpus=gpus, kill_grace=kill_grace))

    def _start(self) -> Remoted:
        d = Remoted(self.settings, scheduler=self.scheduler)
        d.prepare()
        d.load()
        return d

    def step(self) -> None:
        """One pass.  A pass that raises is logged and counted in ``errors`` and the next
        pass goes on, as remoted's daemon loop does.  A crash the scheduler staged
        (``crash_in_submit``) ends the pass like a SIGKILL: the daemon object is dropped
        and a new one started."""
        self.passes += 1
        try:
            self.remoted.step()
        except RemotedCrashed:
            self.crash()
        except Exception as exc:  # the daemon loop retries a failed pass
            log.exception("remoted: pass failed; retrying")
            self.errors.append(exc)

    def crash(self) -> None:
        self.crashes += 1
        self.remoted = self._start()

    def close(self) -> None:
        self.remoted.close()
        self.scheduler.close()
