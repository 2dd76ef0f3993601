"""The ``local`` scheduler: each task is a job-wrapper subprocess on this machine.

The embedded default for a single GPU workstation.  GPUs are handed out whole, one task
per GPU, through ``CUDA_VISIBLE_DEVICES``; a task waits while too few are free.

Exactly-once across remoted crashes rests on one flock: remoted locks the job's lock file
(``state/jobs/<user>/<id>.lock``, out of the student's reach) and lets the wrapper
inherit the locked descriptor at fork.  So the lock is held exactly while the wrapper
lives, whether or not remoted does, and "launched?" is a question the kernel answers.

Every process of a job ends with it: the wrapper joins the job's own cgroup before it
drops root (``remoted.containment``), and remoted kills that cgroup when the wrapper
exits, on cancel and at the time-limit backstop.  The wrapper is started as root only
to do that; its first act after joining is to become the task's user for good.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from ailabber.daemonkit.remoted_settings import RemotedSettings
from ailabber.model.task import CANCELED, COMPLETED, FAILED, PENDING, RUNNING, TERMINATED
from remoted import identity, proctree
from remoted.containment import Containment, JobGroup
from remoted.jobfiles import JobFiles
from remoted.jobspec import RESULT_FILE, JobSpec
from remoted.schedulers.base import Blocked, JobHandle, JobState, Scheduler

log = logging.getLogger(__name__)
#: The environment variable that marks every process of a job (the wrapper sets it for
#: the commands): the last sweep for escapees where no cgroup holds the job.
TASK_MARKER = "AILABBER_TASK_ID"
#: What the wrapper keeps of remoted's environment: locale and time zone, the network
#: settings, the GPU stack's, and the test suite's switch for fsync.  Not ``UV_``: uv
#: runs as the student, who can read its environment, so an admin's uv settings (an
#: index with a password) belong in uv's system configuration (``/etc/uv/uv.toml``),
#: which is as readable to students, and says so.
WRAPPER_PASSTHROUGH = ("LANG", "LANGUAGE", "TZ", "TMPDIR", "AILABBER_FSYNC", *identity.NETWORK_VARS)
WRAPPER_PREFIXES = ("LC_", "CUDA_", "NVIDIA_")


def detect_gpus() -> int:
    """Count GPUs with ``nvidia-smi -L``; no driver means no GPU."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return 0
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


class LocalScheduler(Scheduler):
    name = "local"

    def __init__(self, root: Path, gpus: int | None = None, kill_grace: float = 10.0,
                 containment: Containment | None = None):
        self.total_gpus = detect_gpus() if gpus is None else gpus
        self.kill_grace = kill_grace
        self.files = JobFiles(root)
        self._containment = containment

    @property
    def job_cgroups(self) -> Containment:
        """Set up on first use (creating the jobs' cgroup base), not when ``doctor``
        merely constructs the scheduler to ask about it."""
        if self._containment is None:
            self._containment = Containment.detect()
            log.info("local jobs are contained by: %s", self._containment.mode)
        return self._containment

    # --- capacity ------------------------------------------------------------------------
    def _busy_gpus(self, active: list[JobHandle]) -> set[int]:
        busy: set[int] = set()
        for h in active:
            busy.update(int(g) for g in h.data.get("gpus", []))
        return busy

    def gpu_slots(self) -> int | None:
        return self.total_gpus

    def check(self, spec: JobSpec, active: list[JobHandle]) -> None:
        if spec.gpus > self.total_gpus:
            raise Blocked("unsatisfiable", f"asks for {spec.gpus} GPU(s); this machine has {self.total_gpus}")
        free = self.total_gpus - len(self._busy_gpus(active))
        if spec.gpus > free:
            raise Blocked("waiting_for_gpu", f"needs {spec.gpus} GPU(s); {free} of {self.total_gpus} free")

    # --- launch --------------------------------------------------------------------------
    def submit(self, spec: JobSpec, active: list[JobHandle]) -> JobHandle:
        self.check(spec, active)
        busy = self._busy_gpus(active)
        gpus = [g for g in range(self.total_gpus) if g not in busy][: spec.gpus]
        # The wrapper's environment is made, not inherited: root's variables (tokens,
        # credentials, its own PATH) never reach a student's process.
        env = {k: v for k, v in os.environ.items() if k in WRAPPER_PASSTHROUGH or k.startswith(WRAPPER_PREFIXES)}
        env["PATH"] = spec.path or identity.job_path()
        env.update(identity.user_env(spec.uid))
        env["AILABBER_GPUS"] = ",".join(map(str, gpus))
        env[TASK_MARKER] = spec.task_id
        group = self.job_cgroups.create(_cgroup_name(spec), spec.memory_mb)
        argv = [spec.python or sys.executable, "-I", "-m", "remoted.jobwrap"]
        for procs in group.procs_files() if group else []:
            argv += ["--cgroup", procs]
        run_as = identity.run_as_arg(spec.uid, spec.gid)
        if run_as:
            argv += ["--run-as", run_as]
        argv.append("-")
        fd = os.open(self.files.lock_path(spec.user, spec.task_id, create=True),
                     os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Started as root only to join its cgroup; it drops to the task's user before
            # it opens anything of the student's (see remoted.jobwrap.main).
            proc = subprocess.Popen(argv, cwd="/", env=env, stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, start_new_session=True, pass_fds=(fd,))
        finally:
            os.close(fd)
        assert proc.stdin is not None
        try:
            proc.stdin.write(spec.to_json())
            proc.stdin.close()
        except BrokenPipeError:
            pass                      # it died at once; its lock tells the poll
        threading.Thread(target=self._reap, args=(proc, group, spec), daemon=True).start()
        return JobHandle(job_id=f"local-{proc.pid}", data=self._identity(proc.pid, spec, gpus, group))

    def _reap(self, proc: subprocess.Popen[bytes], group: JobGroup | None, spec: JobSpec) -> None:
        """The moment the wrapper exits, whatever it left running is killed."""
        proc.wait()
        self._end_strays(group, spec.task_id, spec.uid)

    def _end_strays(self, group: JobGroup | None, task_id: str, uid: int | None) -> None:
        if group is not None:
            self.job_cgroups.kill(group)
            return
        # No cgroup: processes that left the wrapper's tree but kept the task's marker.
        strays = [p for p in proctree.processes_with_env(TASK_MARKER, task_id) if _owned_by(p, uid)]
        if strays:
            proctree.kill_procs(strays, 0.0, sig=signal.SIGKILL)

    @staticmethod
    def _identity(pid: int, spec: JobSpec, gpus: list[int], group: JobGroup | None) -> dict[str, object]:
        try:
            ctime = psutil.Process(pid).create_time()
        except psutil.NoSuchProcess:
            ctime = None
        return {"pid": pid, "create_time": ctime, "gpus": gpus, "run_dir": spec.run_dir,
                "time_limit_s": spec.time_limit_s, "user": spec.user, "task_id": spec.task_id,
                "uid": spec.uid, "memory_mb": spec.memory_mb,
                "cgroup": group.to_dict() if group else None}

    def find(self, spec: JobSpec) -> JobHandle | None:
        lock = self.files.lock_path(spec.user, spec.task_id)
        started = self.files.started(spec.run_dir, spec.uid)
        held = _lock_held(lock)
        if not held and not self.files.exists(spec.run_dir, RESULT_FILE) and not started:
            return None
        deadline = time.monotonic() + 10
        while held and started is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the wrapper is starting: it records itself within moments
            started = self.files.started(spec.run_dir, spec.uid)
            held = _lock_held(lock)
        started = started or {}
        pid = started.get("pid") if isinstance(started.get("pid"), int) and started["pid"] > 0 else 0
        group = self._group_named(spec)
        # A pid read from the task's own directory is checked before we ever signal it.
        if pid and not _is_our_wrapper(pid, spec, group):
            pid = 0
        gpus = [int(g) for g in started.get("gpus", []) if isinstance(g, int)]
        data = (self._identity(pid, spec, gpus, group) if pid else
                {"pid": 0, "gpus": gpus, "run_dir": spec.run_dir, "user": spec.user, "task_id": spec.task_id,
                 "uid": spec.uid, "memory_mb": spec.memory_mb, "cgroup": group.to_dict() if group else None})
        return JobHandle(job_id=f"local-{pid}", data=data)

    def containment(self) -> str:
        return self.job_cgroups.mode

    def _group_named(self, spec: JobSpec) -> JobGroup | None:
        """The cgroups a job launched before a restart was given (same names)."""
        if not self.job_cgroups.cgroups:
            return None
        name = _cgroup_name(spec)
        base = lambda b: str(b / name) if b is not None else None  # noqa: E731
        return JobGroup(name, base(self.job_cgroups.kill_base), base(self.job_cgroups.memory_base),
                        tuple(str(b / name) for b in self.job_cgroups.extra_bases))

    # --- tracking ------------------------------------------------------------------------
    def poll(self, handles: list[JobHandle]) -> dict[str, JobState]:
        out: dict[str, JobState] = {}
        for h in handles:
            out[h.job_id] = self._poll_one(h)
        return out

    def _poll_one(self, h: JobHandle) -> JobState:
        run_dir, uid = str(h.data["run_dir"]), h.data.get("uid")
        user, task_id = _job_name(h)
        held = _lock_held(self.files.lock_path(user, task_id))
        result = None
        if not held:
            # The wrapper has exited: nothing it started may outlive it (already killed
            # by the reaper unless remoted restarted meanwhile), and only now does the
            # result count; a result written by anyone else while the job ran ends nothing.
            group = JobGroup.from_dict(h.data.get("cgroup"))
            oom = self.job_cgroups.oom_killed(group)
            self._end_strays(group, task_id, uid)
            self.job_cgroups.remove(group)
            _unlink_quietly(self.files.lock_path(user, task_id))   # its work is done
            result = self.files.result(run_dir, uid)
            if oom and (result is None or result.get("state") == FAILED):
                limit = h.data.get("memory_mb")
                return JobState(state=FAILED, reason="oom", exit_code=(result or {}).get("exit_code"),
                                message=f"the job used more than its memory limit ({limit} MiB) and was killed",
                                started_at=(result or {}).get("started_at"),
                                finished_at=(result or {}).get("finished_at"))
        if result is not None and result.get("state") in (COMPLETED, FAILED, TERMINATED, CANCELED):
            return JobState(
                state=result["state"], reason=result.get("reason"), exit_code=result.get("exit_code"),
                message=result.get("message"), started_at=result.get("started_at"),
                finished_at=result.get("finished_at"),
            )
        started = self.files.started(run_dir, uid)
        if held:
            if started is not None:
                reason = "setting_up" if started.get("phase") == "setup" else None
                return JobState(state=RUNNING, reason=reason, started_at=started.get("started_at"))
            return JobState(state=PENDING, reason="launching")
        # The wrapper is gone and left no result: killed hard (OOM killer, SIGKILL).
        if h.data.get("cancel_sent"):
            if started is not None:
                return JobState(state=TERMINATED, reason="canceled_by_user")
            return JobState(state=CANCELED, reason="canceled_by_user")
        return JobState(state=FAILED, reason="lost",
                        message="the job wrapper ended without writing a result (killed?)")

    def cancel(self, handle: JobHandle) -> None:
        handle.data["cancel_sent"] = True
        pid = int(handle.data.get("pid") or 0)
        group = JobGroup.from_dict(handle.data.get("cgroup"))
        if not pid or not proctree.same_process(pid, handle.data.get("create_time")):
            if group is not None:
                self.job_cgroups.kill(group)     # whatever is left of it
            return
        threading.Thread(target=self._end, args=(pid, group), daemon=True).start()

    def _end(self, pid: int, group: JobGroup | None) -> None:
        """TERM the wrapper (it stops its commands and records the result); if the job
        has not ended after twice the grace period (the student can stop their own
        wrapper, or have pointed us at a decoy), kill the whole job: with a cgroup, what
        counts is that the cgroup is empty, not that one pid is gone."""
        deadline = time.monotonic() + 2 * self.kill_grace + 5
        try:
            proc = psutil.Process(pid)
            proc.terminate()
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            log.warning("job wrapper %d ignored TERM; killing the whole job", pid)
            if group is None:
                proctree.kill_tree(pid, 0.0, sig=signal.SIGKILL)
        if group is None:
            return
        while self.job_cgroups.alive(group) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.job_cgroups.kill(group)

    def enforce_limits(self, handles: list[JobHandle], now: float) -> None:
        """Backstop for a wrapper that cannot enforce the time limit itself."""
        for h in handles:
            pid = int(h.data.get("pid") or 0)
            limit = h.data.get("time_limit_s")
            ctime = h.data.get("create_time")
            if pid and limit and ctime and now - ctime > limit + 2 * self.kill_grace + 60:
                if proctree.same_process(pid, ctime) and not h.data.get("cancel_sent"):
                    log.warning("job %s is far past its time limit; killing it", h.job_id)
                    self.cancel(h)


def _cgroup_name(spec: JobSpec) -> str:
    """The job's cgroup name: one per task, the same after a restart (``find`` relies on it)."""
    return f"{spec.user}.{spec.task_id}"


def _lock_held(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _job_name(h: JobHandle) -> tuple[str, str]:
    """(user, task id) of a handle; handles written before they carried them name the
    job by its run directory, ``.../users/<user>/tasks/<id>/run``."""
    user, task_id = h.data.get("user"), h.data.get("task_id")
    if isinstance(user, str) and isinstance(task_id, str):
        return user, task_id
    run = Path(str(h.data.get("run_dir", "")))
    return run.parents[2].name, run.parent.name


def _owned_by(p: psutil.Process, uid: int | None) -> bool:
    try:
        return uid is None or p.uids().real == uid
    except psutil.Error:
        return False


def _is_our_wrapper(pid: int, spec: JobSpec, group: JobGroup | None = None) -> bool:
    """Whether ``pid`` (read from the student's started.json) is this task's wrapper: in
    the job's cgroup where there is one (which the student cannot forge), else by its
    command line, owner and task marker."""
    if group is not None and group.kill_dir is not None:
        try:
            members = (Path(group.kill_dir) / "cgroup.procs").read_text().split()
        except OSError:
            return False
        if str(pid) not in members:
            return False
    try:
        proc = psutil.Process(pid)
        cmd = proc.cmdline()
        env_task = proc.environ().get(TASK_MARKER)
    except (psutil.Error, ValueError, OverflowError):
        return False
    return "remoted.jobwrap" in cmd and _owned_by(proc, spec.uid) and env_task == spec.task_id


def create(settings: RemotedSettings) -> LocalScheduler:
    """The local scheduler as remoted.yaml describes it.  ``containment``: "auto" (the
    best this machine offers), "cgroup" (refuse to run without a writable cgroup) or
    "processes" (never use cgroups)."""
    chosen = None
    if settings.containment == "processes":
        chosen = Containment.processes_only()
    elif settings.containment == "cgroup":
        chosen = Containment.detect()
        if not chosen.cgroups:
            raise ValueError("containment: cgroup, but no writable cgroup hierarchy is available "
                             "(remoted must be root, with cgroup v2 or a v1 freezer mounted)")
    return LocalScheduler(settings.root, gpus=settings.gpus, kill_grace=settings.kill_grace, containment=chosen)
