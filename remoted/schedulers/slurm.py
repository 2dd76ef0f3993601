"""The ``slurm`` scheduler: sbatch, one squeue per poll, scancel.

Slurm owns the GPUs, fair share and accounting; this module only translates.  sbatch is
run with an argument list (never a shell) and a fixed batch script, so nothing a task
contains can become an ``#SBATCH`` line or a shell word: the job spec travels inside the
script as one line of JSON on the wrapper's standard input (Slurm keeps the script; the
student cannot change it), and the wrapper runs the commands.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ailabber.daemonkit.remoted_settings import RemotedSettings, SlurmOptions
from ailabber.model.task import RUNNING
from remoted import identity
from remoted.jobfiles import JobFiles
from remoted.jobspec import RESULT_FILE, STARTED_FILE, JobSpec
from remoted.schedulers.base import JobHandle, JobState, Scheduler, SchedulerUnavailable, SubmitError
from remoted.schedulers.slurm_states import ACTIVE_PENDING, map_state, slurm_time, time_limit

log = logging.getLogger(__name__)
TRANSIENT = ("unable to contact slurm controller", "socket timed out", "temporarily unable",
             "connection refused", "slurm_persist_conn", "zero bytes were transmitted",
             "communications connection failure", "try again",
             # munged down or restarting: Slurm cannot sign the request, so nobody answers
             "munge", "protocol authentication error", "auth_g_create")


def transient(stderr: str) -> bool:
    low = stderr.lower()
    return any(t in low for t in TRANSIENT)


#: Job id, state, reason, nodes, start time (a pending job's: the start Slurm expects, as
#: ``squeue --start`` shows it; in UTC, see ``_run``), name last (it may hold a ``|``).
SQUEUE_FORMAT = "%i|%T|%r|%N|%S|%j"
SPEC_END = "AILABBER_JOB_SPEC_END"


def job_name(task_id: str) -> str:
    return f"ailabber-{task_id}"


class SlurmScheduler(Scheduler):
    name = "slurm"
    queues = True    # never blocks: remoted may launch a whole batch at once
    #: sbatch runs remoted may have in flight (worker threads): each mostly waits for
    #: slurmctld, so a few overlap with each other and with remoted's own work.
    concurrent_submits = 4

    def __init__(self, options: SlurmOptions | None = None, kill_grace: float = 10.0, root: Path | None = None):
        self.opts = options or SlurmOptions()
        self.kill_grace = kill_grace
        #: The wrapper's records, read through handles below the remote root only.
        self.files = JobFiles(root) if root is not None else None
        self._missing_since: dict[str, float] = {}

    # --- plumbing ------------------------------------------------------------------------
    def _bin(self, name: str) -> str:
        return str(Path(self.opts.bin_dir) / name) if self.opts.bin_dir else name

    def _run(self, args: list[str], uid: int | None = None, gid: int | None = None,
             timeout: float = 60, stdin_text: str | None = None) -> subprocess.CompletedProcess[str]:
        # TZ: the times Slurm prints (a pending job's expected start) are read as UTC.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": "UTC",
               **identity.user_env(uid)}
        if "SLURM_CONF" in os.environ:
            env["SLURM_CONF"] = os.environ["SLURM_CONF"]
        try:
            stdin = {"input": stdin_text} if stdin_text is not None else {"stdin": subprocess.DEVNULL}
            return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout,
                                  **stdin, **identity.popen_kwargs(uid, gid))
        except FileNotFoundError:
            raise SubmitError(f"{args[0]} not found: is Slurm installed here?") from None
        except subprocess.TimeoutExpired:
            raise SchedulerUnavailable(f"{Path(args[0]).name} did not answer within {timeout:g}s") from None

    # --- the contract --------------------------------------------------------------------
    def check(self, spec: JobSpec, active: list[JobHandle]) -> None:
        """Slurm queues by itself: nothing is ever blocked here."""

    def sbatch_args(self, spec: JobSpec) -> list[str]:
        o = self.opts
        # What the commands need travels in the job spec; --export carries only names, the
        # account's home and the wrapper's own PATH (uv looks for interpreters there), the
        # same one as the commands', never remoted's.  Values with a comma are left out.
        export = {"LANG": "C.UTF-8", "PATH": spec.path or identity.job_path(), **identity.user_env(spec.uid)}
        exports = ",".join(f"{k}={v}" for k, v in export.items() if "," not in v)
        args = [
            self._bin("sbatch"), "--parsable",
            f"--job-name={job_name(spec.task_id)}", f"--comment={job_name(spec.task_id)}",
            f"--chdir={spec.run_dir}",
            f"--output={spec.log_dir}/slurm-%j.out", f"--error={spec.log_dir}/slurm-%j.out",
            f"--export=NONE,{exports}",
            f"--cpus-per-task={spec.cpus}", f"--mem={spec.memory_mb}M", f"--time={time_limit(spec.time_limit_s)}",
        ]
        if spec.gpus:
            args.append(f"--gres=gpu:{spec.gpus}" if o.gpu_option == "gres" else f"--gpus={spec.gpus}")
        if spec.signal_before:
            args.append(f"--signal=B:USR1@{spec.signal_before}")
        for flag, value in (("--partition", o.partition), ("--account", o.account), ("--qos", o.qos)):
            if value:
                args.append(f"{flag}={value}")
        args += list(o.extra_args)
        return args     # no script file: sbatch reads batch_script() from its stdin

    @staticmethod
    def batch_script(spec: JobSpec) -> str:
        """The batch script, handed to sbatch on stdin.  Never written into the task's
        run directory: that belongs to the student, who could otherwise add ``#SBATCH``
        lines (say, GPUs remoted does not count) or change the job spec before it is read.
        The spec is one line of JSON (no raw newline can occur in it), so it can never
        end the here-document early, and its ``#`` are escaped, so no line of the script
        but the first starts a comment Slurm could read as a directive."""
        line = spec.to_json().decode().replace("#", "\\u0023")
        return ("#!/bin/bash\n"
                f"exec {shlex.quote(spec.python or sys.executable)} -I -m remoted.jobwrap - <<'{SPEC_END}'\n"
                f"{line}\n{SPEC_END}\n")

    def submit(self, spec: JobSpec, active: list[JobHandle]) -> JobHandle:
        proc = self._run(self.sbatch_args(spec), spec.uid, spec.gid, stdin_text=self.batch_script(spec))
        if proc.returncode != 0:
            lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
            message = lines[-1] if lines else f"sbatch exited with {proc.returncode}"
            if transient(proc.stderr):
                raise SchedulerUnavailable(message)
            raise SubmitError(message)
        job_id = proc.stdout.strip().split(";")[0]
        if not job_id.isdigit():
            raise SubmitError(f"sbatch printed no job id: {proc.stdout.strip()[:200]!r}")
        return JobHandle(job_id=job_id, data={"run_dir": spec.run_dir, "uid": spec.uid, "gid": spec.gid,
                                              "submitted": time.time()})

    def find(self, spec: JobSpec) -> JobHandle | None:
        """The job remoted submitted for ``spec`` before a crash, or None if there is none.

        Only a job of the task's own account (sbatch ran as it) is ever adopted: any user
        can name a job ``ailabber-<id>``, and the student writes ``started.json``, so
        adopting on a name or on that file alone could tie the task to someone else's job
        and mirror its state into the student's status.  First ``squeue --name --user``
        (the uid checked again in each row); then the job id in ``started.json``, only
        if Slurm confirms that job is the account's and carries the task's name: squeue
        while the controller remembers it, then sacct, then the jobcomp log.

        When none of them can say (the controller forgot the job, and there is no
        accounting), the id is not adopted and the task is queued again.  That can run a
        task twice, but only after a crash between sbatch and remoted's record *and* an
        outage longer than the controller keeps finished jobs (``MinJobAge``) on a cluster
        without accounting; adopting an unconfirmed id instead would let any student point
        their task at any job id, even one not handed out yet, and watch that job.  A
        Slurm that cannot be asked (squeue or sacct failing) raises SchedulerUnavailable:
        not knowing is never "no such job"."""
        name, uid = job_name(spec.task_id), spec.uid if spec.uid is not None else os.geteuid()
        proc = self._run([self._bin("squeue"), "-h", "-t", "all", f"--name={name}", f"--user={uid}",
                          "-o", "%i|%U|%j"])
        if proc.returncode != 0 or "invalid user" in proc.stderr.lower():
            # Not knowing is not "no such job": submitting again could run it twice.
            # (squeue says "Invalid user" about an unknown uid, yet exits 0 with no rows.)
            raise SchedulerUnavailable(f"squeue: {proc.stderr.strip()[:200]}")
        for job_id in named_jobs(proc.stdout, uid, name):
            return JobHandle(job_id=job_id, data={"run_dir": spec.run_dir, "uid": spec.uid,
                                                  "gid": spec.gid, "submitted": time.time()})
        started = self._record(spec.run_dir, STARTED_FILE, spec.uid)
        claimed = str(started.get("slurm_job_id") or "") if started else ""
        if not claimed.isdigit():
            return None
        if not owned_by(self.job_owners(claimed), uid, name):
            log.warning("%s/%s: started.json names Slurm job %s, which Slurm does not show as this "
                        "account's job %s; not adopted", spec.user, spec.task_id, claimed, name)
            return None
        return JobHandle(job_id=claimed, data={"run_dir": spec.run_dir, "uid": spec.uid, "gid": spec.gid,
                                               "submitted": time.time()})

    def job_owners(self, job_id: str) -> list[tuple[str, str]]:
        """``(uid, job name)`` of each record Slurm keeps of ``job_id``: from squeue while
        the controller remembers the job, else sacct, else the jobcomp log; [] when none
        of them knows it.  Raises SchedulerUnavailable when squeue or sacct cannot be
        asked (an unknown id is an answer, an unreachable controller or database is not)."""
        proc = self._run([self._bin("squeue"), "-h", "-t", "all", f"--jobs={job_id}", "-o", "%U|%j"])
        if proc.returncode == 0:
            rows = owner_rows(proc.stdout)
            if rows:
                return rows
        elif "invalid job id" not in proc.stderr.lower():
            raise SchedulerUnavailable(f"squeue: {proc.stderr.strip()[:200]}")
        proc = self._run([self._bin("sacct"), "-n", "-P", "-X", "-j", job_id, "-o", "UID,JobName"])
        if proc.returncode == 0:
            rows = owner_rows(proc.stdout)
            if rows:
                return rows
        elif transient(proc.stderr):
            raise SchedulerUnavailable(f"sacct: {proc.stderr.strip()[:200]}")
        if self.opts.jobcomp_log:
            return jobcomp_owners(Path(self.opts.jobcomp_log), job_id)
        return []

    def poll(self, handles: list[JobHandle]) -> dict[str, JobState]:
        if not handles:
            return {}
        ids = ",".join(h.job_id for h in handles)
        proc = self._run([self._bin("squeue"), "-h", "-t", "all", f"--jobs={ids}", "-o", SQUEUE_FORMAT])
        rows: dict[str, list[str]] = {}
        if proc.returncode != 0 and "invalid job id" not in proc.stderr.lower():
            # The controller is unreachable (restarting?): no news is not bad news.
            log.warning("squeue failed: %s", proc.stderr.strip()[:200])
            return {}
        if proc.returncode == 0:
            for line in proc.stdout.splitlines():
                parts = line.split("|")
                if len(parts) >= 4:
                    rows[parts[0]] = parts
        elif len(handles) > 1:
            # squeue refuses the whole list when one id has aged out: ask one by one.
            for h in handles:
                one = self._run([self._bin("squeue"), "-h", "-t", "all", f"--jobs={h.job_id}", "-o", SQUEUE_FORMAT])
                for line in one.stdout.splitlines():
                    parts = line.split("|")
                    if len(parts) >= 4:
                        rows[parts[0]] = parts
        out: dict[str, JobState] = {}
        for h in handles:
            out_state = self._state(h, rows.get(h.job_id))
            if out_state is not None:
                out[h.job_id] = out_state
        return out

    def _state(self, h: JobHandle, row: list[str] | None) -> JobState | None:
        run_dir, uid = str(h.data.get("run_dir", "")), h.data.get("uid")
        was_running = bool(h.data.get("seen_running"))
        if row is None:
            # Gone from squeue (MinJobAge passed, or controller lost it): trust the wrapper's
            # record first; call it lost only after a grace period.
            result = self._record(run_dir, RESULT_FILE, uid)
            if result and result.get("state"):
                self._missing_since.pop(h.job_id, None)
                return map_state("COMPLETED" if result["state"] == "completed" else "FAILED",
                                 None, "node", None, result, True)
            acct = self.accounting(h.job_id)
            if acct is not None:
                self._missing_since.pop(h.job_id, None)
                return map_state(acct["state"], None, acct.get("nodes"), acct.get("exit_code"), None, was_running)
            first = self._missing_since.setdefault(h.job_id, time.time())
            if time.time() - first > self.opts.lost_after:
                return JobState("failed", "lost", message="Slurm no longer knows the job and it left no result")
            return None
        self._missing_since.pop(h.job_id, None)
        _jid, state, reason, nodes = row[0], row[1], row[2], row[3]
        if state in ACTIVE_PENDING:
            # Waiting in Slurm's queue: the wrapper has not run, so there is nothing to read
            # (a burst of hundreds of queued jobs costs no file reads per poll).
            pending = map_state(state, reason, nodes, None, None, was_running)
            pending.expected_start = slurm_time(row[4]) if len(row) > 5 else None
            return pending
        result = self._record(run_dir, RESULT_FILE, uid)
        exit_code = None
        if state in ("FAILED", "TIMEOUT", "OUT_OF_MEMORY") and not result:
            # Only these states report an exit code (a cancelled or lost job has none worth an
            # scontrol per job: an admin cancelling a student's 500 jobs would cost 500).
            exit_code = self._exit_code(h.job_id)
        js = map_state(state, reason, nodes, exit_code, result, was_running)
        if js.state == RUNNING:
            h.data["seen_running"] = True
            if nodes and nodes not in ("(null)", "None"):
                h.data["nodes"] = nodes      # kept with the record's next write: staff see where it runs
            started = self._record(run_dir, STARTED_FILE, uid)
            if started:
                js.started_at = started.get("started_at")
                if started.get("phase") == "setup" and not result:
                    js.reason = "setting_up"
        return js

    def _record(self, run_dir: str, name: str, uid: int | None) -> dict[str, Any] | None:
        """A record the job wrapper wrote (as the student: only their word about their
        own job), read through handles that follow no symlink; None if unusable."""
        if self.files is None:
            return None
        return self.files.result(run_dir, uid) if name == RESULT_FILE else self.files.started(run_dir, uid)

    def accounting(self, job_id: str) -> dict[str, str] | None:
        """How a job that left squeue ended: sacct when slurmdbd exists, else the
        jobcomp/filetxt log the admin named."""
        proc = self._run([self._bin("sacct"), "-n", "-P", "-X", "-j", job_id, "-o", "State,ExitCode,NodeList"])
        if proc.returncode == 0:
            for line in proc.stdout.splitlines():
                parts = line.split("|")
                if len(parts) >= 3 and parts[0]:
                    return {"state": parts[0], "exit_code": parts[1], "nodes": parts[2]}
        if self.opts.jobcomp_log:
            return jobcomp_record(Path(self.opts.jobcomp_log), job_id)
        return None

    def _exit_code(self, job_id: str) -> str | None:
        proc = self._run([self._bin("scontrol"), "-o", "show", "job", job_id])
        for token in proc.stdout.split():
            if token.startswith("ExitCode="):
                return token.split("=", 1)[1]
        return None

    def health(self) -> str | None:
        """None when the controller answers; otherwise what is wrong, in one line."""
        try:
            proc = self._run([self._bin("sinfo"), "-h", "-o", "%P %a"], timeout=15)
        except (SubmitError, SchedulerUnavailable) as exc:
            return str(exc)
        if proc.returncode != 0:
            return f"sinfo failed: {proc.stderr.strip()[:200] or proc.returncode}"
        return None

    def show_config(self) -> str:
        """``scontrol show config`` as remoted's own Slurm commands see it (same bin_dir
        and SLURM_CONF), for ``doctor``; raises SchedulerUnavailable if it cannot be read."""
        proc = self._run([self._bin("scontrol"), "show", "config"], timeout=15)
        if proc.returncode != 0:
            raise SchedulerUnavailable(f"scontrol show config: {proc.stderr.strip()[:200] or proc.returncode}")
        return proc.stdout

    def containment(self) -> str:
        return "Slurm's proctrack and task plugins (doctor checks they are the cgroup ones)"

    def cancel(self, handle: JobHandle) -> None:
        """scancel as the job's owner.  A job Slurm no longer knows or is already ending needs
        nothing more, and a refusal would be refused again; anything else (the controller
        down, munge failing) means Slurm was not asked, so remoted asks again later."""
        proc = self._run([self._bin("scancel"), handle.job_id], handle.data.get("uid"), handle.data.get("gid"))
        if proc.returncode != 0:
            err = proc.stderr.strip()
            if not any(s in err.lower() for s in _SCANCEL_SETTLED):
                raise SchedulerUnavailable(f"scancel {handle.job_id}: {err[:200] or proc.returncode}")
            log.warning("scancel %s: %s", handle.job_id, err)
        handle.data["cancel_sent"] = True


#: What scancel says when there is nothing (more) it could do: the job is gone or ending,
#: or this account may not cancel it.
_SCANCEL_SETTLED = ("invalid job id", "already completing or completed", "access/permission denied",
                    "permission denied", "not owner")


def named_jobs(stdout: str, uid: int, name: str) -> list[str]:
    """Job ids in ``squeue -o %i|%U|%j`` output whose owner is ``uid`` and whose name is
    ``name`` exactly (the name comes last: another user's may contain ``|``)."""
    out = []
    for line in stdout.splitlines():
        parts = line.strip().split("|", 2)
        if len(parts) == 3 and parts[0].isdigit() and parts[1] == str(uid) and parts[2] == name:
            out.append(parts[0])
    return out


def owner_rows(stdout: str) -> list[tuple[str, str]]:
    """``(uid, name)`` rows of ``squeue -o %U|%j`` or ``sacct -P -o UID,JobName`` output."""
    rows = []
    for line in stdout.splitlines():
        uid, sep, name = line.strip().partition("|")
        if sep and uid.isdigit():
            rows.append((uid, name))
    return rows


def owned_by(rows: list[tuple[str, str]], uid: int, name: str) -> bool:
    """Whether Slurm's records of a job show it as ``uid``'s job named ``name``: a record
    must say so (no record, no adoption), and none may say otherwise (a job id that
    accounting lists twice, say after the id counter was reset, is not trusted)."""
    return bool(rows) and all(row == (str(uid), name) for row in rows)


def jobcomp_lines(path: Path, job_id: str) -> list[dict[str, str]]:
    """The ``key=value`` fields of every ``JobId=<id>`` line of a jobcomp/filetxt log
    (none when the log cannot be read)."""
    out = []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(f"JobId={job_id} "):
                    out.append(dict(tok.split("=", 1) for tok in line.split() if "=" in tok))
    except OSError:
        return []
    return out


def jobcomp_owners(path: Path, job_id: str) -> list[tuple[str, str]]:
    """``(uid, name)`` from the job's jobcomp lines, whose ``UserId=`` reads ``name(uid)``."""
    rows = []
    for fields in jobcomp_lines(path, job_id):
        user = fields.get("UserId", "")
        uid = user[user.rfind("(") + 1:-1] if user.endswith(")") and "(" in user else user
        rows.append((uid if uid.isdigit() else "?", fields.get("Name", "")))
    return rows


def jobcomp_record(path: Path, job_id: str) -> dict[str, str] | None:
    """The job's last jobcomp line, as state/exit_code/nodes."""
    lines = jobcomp_lines(path, job_id)
    if not lines:
        return None
    last = lines[-1]
    return {"state": last.get("JobState", ""), "exit_code": last.get("ExitCode", ""), "nodes": last.get("NodeList", "")}


def create(settings: RemotedSettings) -> SlurmScheduler:
    """The Slurm scheduler as remoted.yaml describes it."""
    return SlurmScheduler(settings.slurm, settings.kill_grace, settings.root)
