"""The job wrapper: what runs inside the job, under any scheduler.

It records the start, prepares the Python environment, runs the commands one after another
in the workdir, keeps stdout/stderr (interleaved as a terminal would show them, each chunk
tagged with its stream, capped: remoted/joblogs.py), enforces the time limit, and writes a result record before it exits.  The result
file, not the wrapper's exit status, is the truth: it survives remoted restarts.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ailabber.model.task import now_iso
from ailabber.storage import fsutil
from remoted import proctree
from remoted.identity import NETWORK_VARS
from remoted.joblogs import Logs
from remoted.jobmetrics import METRICS_VAR, SizeWatch, metrics_path
from remoted.jobspec import RESULT_FILE, STARTED_FILE, JobSpec

#: Variables passed through from the wrapper's environment; everything else is dropped so
#: a daemon's own settings never leak into students' jobs.
PASSTHROUGH = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "SHELL", "TERM",
               *NETWORK_VARS)
#: ``UV_`` settings are the admin's, for building the environment (they may hold an
#: index's credentials): the commands do not get them.
PASSTHROUGH_PREFIXES = ("LC_", "SLURM_", "CUDA_", "NVIDIA_")
TICK = 0.2
COMMAND_VAR = "AILABBER_COMMAND"
#: A job spec is at most this big (100 commands of 10,000 characters and the rest).
MAX_SPEC_BYTES = 4 << 20
#: Runs the command from the environment as ``bash -c`` would, and leaves no copy of it
#: in the environment of what the command starts.
COMMAND_RUNNER = f'__ailabber_cmd=${COMMAND_VAR}; unset {COMMAND_VAR}; eval "$__ailabber_cmd"'


class Wrapper:
    def __init__(self, spec: JobSpec):
        self.spec = spec
        self.run_dir = Path(spec.run_dir)
        self.logs = Logs(Path(spec.log_dir), spec.max_log_bytes)
        self.metrics = SizeWatch(spec.log_dir, spec.max_log_bytes)
        self.stop_signal: int | None = None
        self.started = time.time()
        self.deadline = self.started + spec.time_limit_s
        self.child: subprocess.Popen[bytes] | None = None
        self.warned = False
        self.usr1_received = False     # Slurm's warning came (set by the signal handler only)
        # Under Slurm, --signal=B:USR1@N delivers the warning; elsewhere the wrapper does.
        self.warn_at = (self.deadline - spec.signal_before
                        if spec.signal_before and "SLURM_JOB_ID" not in os.environ else None)

    # --- signals -------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.stop_signal = signum

    def install_signals(self) -> None:
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, self._on_signal)
        # Slurm's pre-timeout warning (--signal=B:USR1@N) is passed on by the main loop.
        signal.signal(signal.SIGUSR1, self._on_usr1)

    def _on_usr1(self, _signum: int, _frame: Any) -> None:
        self.usr1_received = True

    def warning_due(self, command_started: float) -> bool:
        """Whether to pass the pre-timeout warning on now: once, when it is due (our own
        moment, or Slurm's signal) and the command has had half a second to install its
        handler (a warning due during environment setup waits for the first command)."""
        now = time.time()
        due = self.usr1_received or (self.warn_at is not None and now >= self.warn_at)
        return due and not self.warned and now - command_started >= 0.5

    def warn(self) -> None:
        """Deliver the warning to the command's processes that handle SIGUSR1, and say when
        and to how many: the seconds really left (a limit shorter than
        ``signal_before_timeout`` is warned of at its start), not the setting.

        SIGUSR1 ends a program that does not handle it, and a job that did not ask for the
        warning must not die of it before its limit: it goes only to processes that catch
        it (their SigCgt mask says so)."""
        assert self.child is not None
        self.warned = True
        left = max(0, round(self.deadline - time.time()))
        sent = 0
        for proc in proctree.tree(self.child.pid):
            if proctree.catches(proc.pid, signal.SIGUSR1):
                try:
                    proc.send_signal(signal.SIGUSR1)
                    sent += 1
                except Exception:  # gone meanwhile
                    pass
        self.logs.note(f"{left}s before the time limit: SIGUSR1 sent to {sent} process(es) of the command "
                       "that handle it")

    # --- records -------------------------------------------------------------------------
    def record_start(self, phase: str = "commands") -> None:
        """``phase`` "setup" while the environment is prepared, then "commands"."""
        fsutil.atomic_write_json(
            self.run_dir / STARTED_FILE,
            {"pid": os.getpid(), "host": socket.gethostname(), "started_at": now_iso(self.started),
             "phase": phase,
             "deadline": self.deadline,
             "gpus": [int(g) for g in os.environ.get("AILABBER_GPUS", "").split(",") if g.isdigit()],
             "slurm_job_id": os.environ.get("SLURM_JOB_ID")},
        )

    def finish(self, state: str, reason: str | None, exit_code: int | None, message: str | None,
               commands: list[dict[str, Any]]) -> int:
        self.end_strays()
        fsutil.atomic_write_json(
            self.run_dir / RESULT_FILE,
            {"state": state, "reason": reason, "exit_code": exit_code, "message": message,
             "started_at": now_iso(self.started), "finished_at": now_iso(), "commands": commands},
        )
        self.logs.note(f"task {state}" + (f" ({reason})" if reason else "") + (f": {message}" if message else ""))
        self.logs.close()
        return 0

    # --- environment ---------------------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k in PASSTHROUGH or k.startswith(PASSTHROUGH_PREFIXES)}
        if self.spec.path:
            env["PATH"] = self.spec.path
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        gpus = os.environ.get("AILABBER_GPUS")
        if gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpus
        elif self.spec.gpus == 0 and "SLURM_JOB_ID" not in os.environ:
            env["CUDA_VISIBLE_DEVICES"] = ""   # a task that asked for no GPU gets none
        env.update({
            "PYTHONUNBUFFERED": "1",
            "AILABBER_TASK_ID": self.spec.task_id,
            "AILABBER_DEADLINE": str(int(self.deadline)),
            "AILABBER_LOG_DIR": self.spec.log_dir,
            METRICS_VAR: metrics_path(self.spec.log_dir),
            "AILABBER_SIGNAL_BEFORE_TIMEOUT": str(self.spec.signal_before),
        })
        return env

    def prepare_env(self, env: dict[str, str]) -> str | None:
        """Build or reuse the uv environment; returns an error message on failure."""
        if not (self.spec.pyproject and self.spec.uv_lock):
            return None
        from remoted.envs import EnvBuildError, EnvSpec, ensure_env

        spec = EnvSpec(Path(self.spec.pyproject), Path(self.spec.uv_lock), tuple(Path(w) for w in self.spec.wheels))
        cache = Path(self.spec.env_cache or (Path(self.spec.run_dir) / "env-cache"))
        self.logs.note("preparing the Python environment (uv sync --locked); details in setup.log")
        try:
            result = ensure_env(spec, cache, self.logs.setup, uv=self.spec.uv or "uv")
        except EnvBuildError as exc:
            return str(exc)
        except Exception as exc:  # a bug or an I/O error is still a setup failure, said plainly
            return f"environment setup crashed: {exc}"
        verb = "built" if result.built else "reused"
        self.logs.note(f"environment {result.key[:12]} {verb} in {result.seconds:.1f}s")
        venv = str(result.venv)
        env["VIRTUAL_ENV"] = venv
        env["PATH"] = f"{venv}/bin:{env['PATH']}"
        env.pop("PYTHONHOME", None)
        return None

    # --- commands ------------------------------------------------------------------------
    def run_command(self, cmd: str, env: dict[str, str]) -> tuple[int | None, str | None]:
        """Run one command; returns (returncode, stop reason or None)."""
        # The command travels in the environment (readable by its owner and root only),
        # not in argv, which every user of the machine sees in ``ps``.
        self.child = subprocess.Popen(
            ["/bin/bash", "-c", COMMAND_RUNNER], cwd=self.spec.workdir, env={**env, COMMAND_VAR: cmd},
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        sel = selectors.DefaultSelector()
        assert self.child.stdout and self.child.stderr
        sel.register(self.child.stdout, selectors.EVENT_READ, self.logs.stdout)
        sel.register(self.child.stderr, selectors.EVENT_READ, self.logs.stderr)
        stop: str | None = None
        open_streams = 2
        exited_at: float | None = None
        command_started = time.time()
        while True:
            if open_streams and exited_at is None and self.child.poll() is not None:
                exited_at = time.time()
            if open_streams and exited_at is not None and time.time() - exited_at > 2.0:
                # The command is over but left background processes holding its output
                # open: they belong to the task and end with it.
                self.kill_tree(os.getpid(), include_root=False)
                for key in list(sel.get_map().values()):
                    sel.unregister(key.fileobj)
                open_streams = 0
            if open_streams:
                for key, _ in sel.select(TICK):
                    data = os.read(key.fd, 65536)
                    if not data:
                        sel.unregister(key.fileobj)
                        open_streams -= 1
                        continue
                    key.data.write(data)      # into output.log once, its stream in output.idx
            elif self.child.poll() is not None:
                break
            else:
                time.sleep(TICK / 4)
            if self.warning_due(command_started):
                self.warn()
            if (note := self.metrics.note(time.time())) is not None:
                self.logs.note(note)
            if stop is None:
                if time.time() >= self.deadline:
                    stop = "timeout"          # also when the TERM came from a time-limit backstop
                elif self.stop_signal is not None:
                    stop = "canceled"
                if stop is not None:
                    self.logs.note("time limit reached; stopping the commands" if stop == "timeout"
                                   else "stop requested; stopping the commands")
                    self.kill_tree(self.child.pid, include_root=True)
                    # Descendants that escaped the process group were re-parented to us.
                    self.kill_tree(os.getpid(), include_root=False)
        sel.close()
        rc = self.child.wait()
        self.child = None
        return rc, stop

    def kill_tree(self, pid: int, include_root: bool) -> None:
        """End a process tree.  Its wait reaps the command too when it is in the tree, and
        a reaped child's ``Popen.poll()``/``wait()`` find nothing and say 0 (a timed-out
        command would "exit 0"): the status that wait saw becomes the command's."""
        reaped: dict[int, int] = {}
        proctree.kill_tree(pid, self.spec.kill_grace, include_root=include_root, statuses=reaped)
        child = self.child
        if child is not None and child.returncode is None and child.pid in reaped:
            child.returncode = reaped[child.pid]

    def end_strays(self) -> None:
        """Whatever the commands left running (``nohup ... &``, double forks: re-parented
        to us, the subreaper) ends with the task, before its result says it is over.
        Under the local scheduler remoted also kills the job's cgroup when we exit."""
        self.kill_tree(os.getpid(), include_root=False)

    def run(self) -> int:
        try:
            return self._run()
        finally:
            self.end_strays()

    def _run(self) -> int:
        os.umask(0o022)    # results must be readable by whoever pulls them back
        self.install_signals()
        proctree.become_subreaper()
        needs_env = bool(self.spec.pyproject and self.spec.uv_lock)
        self.record_start("setup" if needs_env else "commands")
        env = self.base_env()
        if not os.path.isdir(self.spec.workdir):
            # remoted checks no path in the student's upload (it may be root); the
            # wrapper, running as the student, finds what submit would have refused.
            return self.finish("failed", "setup_failed", None,
                               "the upload has no working directory (files.workdir); submit it again", [])
        self.logs.note(f"task {self.spec.task_id} started on {socket.gethostname()}"
                       + (f" with GPU(s) {env['CUDA_VISIBLE_DEVICES']}" if env.get("CUDA_VISIBLE_DEVICES") else ""))
        error = self.prepare_env(env)
        if error is not None:
            self.logs.setup.write(f"[ailabber] {error}\n")
            return self.finish("failed", "setup_failed", None, error, [])
        if time.time() >= self.deadline:
            return self.finish("failed", "timeout", None, "time limit reached during environment setup", [])
        if self.stop_signal is not None:
            return self.finish("terminated", "canceled_by_user", None, None, [])
        if needs_env:
            self.record_start("commands")
        done: list[dict[str, Any]] = []
        for i, cmd in enumerate(self.spec.commands):
            t0 = time.time()
            self.logs.note(f"$ {cmd}")
            rc, stop = self.run_command(cmd, env)
            code = rc if rc is not None and rc >= 0 else 128 + (-(rc or 0))
            done.append({"index": i, "command": cmd, "exit_code": code, "seconds": round(time.time() - t0, 3)})
            if stop == "timeout":
                return self.finish("failed", "timeout", code, f"time limit of {self.spec.time_limit_s}s reached during command {i + 1}", done)
            if stop == "canceled":
                return self.finish("terminated", "canceled_by_user", None, None, done)
            if rc is not None and rc < 0:
                name = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
                return self.finish("failed", "killed", code, f"command {i + 1} was killed by {name}", done)
            if code != 0:
                return self.finish("failed", "nonzero_exit", code, f"command {i + 1} exited with {code}: {cmd[:200]}", done)
        return self.finish("completed", None, 0, None, done)


def drop_privileges(uid: int, gid: int, groups: list[int]) -> None:
    """Become the task's user for good (real, effective and saved ids), and check that
    root cannot be regained."""
    os.setgroups(groups)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise SystemExit("jobwrap: could not switch to the task's user")
    if uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            return
        raise SystemExit("jobwrap: root could be regained after switching users")


def enter_cgroups(procs_files: list[str]) -> None:
    """Join the job's cgroups while still root: a process cannot leave a cgroup whose
    ``cgroup.procs`` only root may write, so nothing the job starts can escape the kill."""
    for path in procs_files:
        with open(path, "w") as fh:
            fh.write(str(os.getpid()))


def _redirect_stderr(log_dir: str) -> None:
    """The wrapper's own errors go to ``wrapper.log`` beside the task's logs, created as
    the task's user (never by root inside the student's directory)."""
    fd = os.open(os.path.join(log_dir, "wrapper.log"),
                 os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    os.dup2(fd, 2)
    os.close(fd)


def parse_args(argv: list[str]) -> tuple[list[str], tuple[int, int, list[int]] | None]:
    """``[--cgroup PROCS_FILE]... [--run-as UID:GID:G1,G2] -``: the job spec comes as
    JSON on standard input, from remoted (local) or the batch script Slurm keeps."""
    cgroups: list[str] = []
    run_as: tuple[int, int, list[int]] | None = None
    rest = list(argv)
    while len(rest) > 1 and rest[0] in ("--cgroup", "--run-as"):
        flag, value = rest.pop(0), rest.pop(0)
        if flag == "--cgroup":
            cgroups.append(value)
        else:
            uid, gid, groups = value.split(":")
            run_as = (int(uid), int(gid), [int(g) for g in groups.split(",") if g])
    if rest != ["-"]:
        raise ValueError("usage: python -m remoted.jobwrap [--cgroup FILE]... [--run-as UID:GID:GROUPS] -")
    return cgroups, run_as


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        cgroups, run_as = parse_args(argv)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    # As root, only what remoted handed us is touched: our own cgroups and the spec on
    # our standard input (read whole while the student cannot yet stop us, so remoted's
    # write never waits on a process the student controls); then root is dropped before
    # anything in the student's directories is opened.
    enter_cgroups(cgroups)
    spec = JobSpec.from_dict(json.loads(sys.stdin.buffer.read(MAX_SPEC_BYTES)))
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    if run_as is not None:
        drop_privileges(*run_as)
    if run_as is not None:
        _redirect_stderr(spec.log_dir)
    os.chdir(spec.run_dir)
    return Wrapper(spec).run()


if __name__ == "__main__":
    sys.exit(main())
