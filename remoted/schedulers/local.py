"""The ``local`` scheduler: each task is a job-wrapper subprocess on this machine.

The embedded default for a single GPU workstation.  GPUs are handed out whole, one task
per GPU, through ``CUDA_VISIBLE_DEVICES``; a task waits while too few are free.

Exactly-once across remoted crashes rests on one flock: remoted locks ``run/job.lock``
and lets the wrapper inherit the locked descriptor at fork.  So the lock is held exactly
while the wrapper lives, whether or not remoted does, and "launched?" is a question the
kernel answers.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from ailabber import fsutil, proctree
from ailabber.task import CANCELED, COMPLETED, FAILED, PENDING, RUNNING, TERMINATED
from remoted import identity
from remoted.jobspec import LOCK_FILE, RESULT_FILE, STARTED_FILE, JobSpec
from remoted.schedulers.base import Blocked, JobHandle, JobState

log = logging.getLogger(__name__)


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


class LocalScheduler:
    name = "local"

    def __init__(self, gpus: int | None = None, kill_grace: float = 10.0):
        self.total_gpus = detect_gpus() if gpus is None else gpus
        self.kill_grace = kill_grace

    # --- capacity ------------------------------------------------------------------------
    def _busy_gpus(self, active: list[JobHandle]) -> set[int]:
        busy: set[int] = set()
        for h in active:
            busy.update(int(g) for g in h.data.get("gpus", []))
        return busy

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
        run_dir = Path(spec.run_dir)
        env = dict(os.environ, PATH=identity.job_path())
        env.update(identity.user_env(spec.uid))
        env["AILABBER_GPUS"] = ",".join(map(str, gpus))
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            errfd = os.open(Path(spec.log_dir) / "wrapper.log",
                            os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
            with os.fdopen(errfd, "ab") as errlog:
                proc = subprocess.Popen(
                    [spec.python or sys.executable, "-I", "-m", "remoted.jobwrap", str(spec.job_file)],
                    cwd=spec.run_dir, env=env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=errlog,
                    start_new_session=True, pass_fds=(fd,),
                    **identity.popen_kwargs(spec.uid, spec.gid),
                )
        finally:
            os.close(fd)
        threading.Thread(target=proc.wait, daemon=True).start()  # reap; results come from files
        return JobHandle(job_id=f"local-{proc.pid}", data=self._identity(proc.pid, spec, gpus))

    @staticmethod
    def _identity(pid: int, spec: JobSpec, gpus: list[int]) -> dict[str, object]:
        try:
            ctime = psutil.Process(pid).create_time()
        except psutil.NoSuchProcess:
            ctime = None
        return {"pid": pid, "create_time": ctime, "gpus": gpus, "run_dir": spec.run_dir,
                "time_limit_s": spec.time_limit_s}

    def find(self, spec: JobSpec) -> JobHandle | None:
        run_dir = Path(spec.run_dir)
        started = fsutil.read_json_or_none(run_dir / STARTED_FILE)
        held = _lock_held(run_dir)
        if not held and not (run_dir / RESULT_FILE).exists() and not started:
            return None
        deadline = time.monotonic() + 10
        while held and not isinstance(started, dict) and time.monotonic() < deadline:
            time.sleep(0.05)  # the wrapper is starting: it records itself within moments
            started = fsutil.read_json_or_none(run_dir / STARTED_FILE)
            held = _lock_held(run_dir)
        started = started if isinstance(started, dict) else {}
        pid = started.get("pid") if isinstance(started.get("pid"), int) and started["pid"] > 0 else 0
        # A pid read from the task's own directory is checked before we ever signal it.
        if pid and not _is_our_wrapper(pid, spec.job_file):
            pid = 0
        gpus = [int(g) for g in started.get("gpus", []) if isinstance(g, int)]
        data = self._identity(pid, spec, gpus) if pid else {"pid": 0, "gpus": gpus, "run_dir": spec.run_dir}
        return JobHandle(job_id=f"local-{pid}", data=data)

    # --- tracking ------------------------------------------------------------------------
    def poll(self, handles: list[JobHandle]) -> dict[str, JobState]:
        out: dict[str, JobState] = {}
        for h in handles:
            out[h.job_id] = self._poll_one(h)
        return out

    def _poll_one(self, h: JobHandle) -> JobState:
        run_dir = Path(h.data["run_dir"])
        held = _lock_held(run_dir)
        # The result counts only once the wrapper has exited (its lock is free): a result
        # file written by anyone else meanwhile cannot end a job that still runs.
        result = None if held else fsutil.read_json_or_none(run_dir / RESULT_FILE)
        if isinstance(result, dict) and result.get("state") in (COMPLETED, FAILED, TERMINATED, CANCELED):
            return JobState(
                state=result["state"], reason=result.get("reason"), exit_code=result.get("exit_code"),
                message=result.get("message"), started_at=result.get("started_at"),
                finished_at=result.get("finished_at"),
            )
        started = fsutil.read_json_or_none(run_dir / STARTED_FILE)
        if held:
            if isinstance(started, dict):
                reason = "setting_up" if started.get("phase") == "setup" else None
                return JobState(state=RUNNING, reason=reason, started_at=started.get("started_at"))
            return JobState(state=PENDING, reason="launching")
        # The wrapper is gone and left no result: killed hard (OOM killer, SIGKILL).
        if h.data.get("cancel_sent"):
            if isinstance(started, dict):
                return JobState(state=TERMINATED, reason="canceled_by_user")
            return JobState(state=CANCELED, reason="canceled_by_user")
        return JobState(state=FAILED, reason="lost",
                        message="the job wrapper ended without writing a result (killed?)")

    def cancel(self, handle: JobHandle) -> None:
        handle.data["cancel_sent"] = True
        pid = int(handle.data.get("pid") or 0)
        if not pid or not proctree.same_process(pid, handle.data.get("create_time")):
            return
        threading.Thread(target=self._end, args=(pid,), daemon=True).start()

    def _end(self, pid: int) -> None:
        """TERM the wrapper (it stops its commands and records the result); if it has not
        ended after twice the grace period, kill what is left of the tree."""
        try:
            proc = psutil.Process(pid)
            proc.terminate()
            proc.wait(timeout=2 * self.kill_grace + 5)
        except psutil.NoSuchProcess:
            return
        except psutil.TimeoutExpired:
            log.warning("job wrapper %d ignored TERM; killing its process tree", pid)
            proctree.kill_tree(pid, 0.0, sig=9)

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


def _lock_held(run_dir: Path) -> bool:
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
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


def _is_our_wrapper(pid: int, job_file: Path) -> bool:
    try:
        cmd = psutil.Process(pid).cmdline()
    except (psutil.Error, ValueError, OverflowError):
        return False
    return "remoted.jobwrap" in cmd and str(job_file) in cmd


def create(gpus: int | None = None, kill_grace: float = 10.0, **_: object) -> LocalScheduler:
    return LocalScheduler(gpus=gpus, kill_grace=kill_grace)
