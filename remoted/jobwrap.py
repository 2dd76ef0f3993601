"""The job wrapper: what runs inside the job, under any scheduler.

It records the start, prepares the Python environment, runs the commands one after another
in the workdir, keeps stdout/stderr (separately and interleaved as a terminal would show
them), enforces the time limit, and writes a result record before it exits.  The result
file, not the wrapper's exit status, is the truth: it survives remoted restarts.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from ailabber import fsutil, proctree
from ailabber.task import now_iso
from remoted.jobspec import RESULT_FILE, STARTED_FILE, JobSpec

#: Variables passed through from the wrapper's environment; everything else is dropped so
#: a daemon's own settings never leak into students' jobs.
PASSTHROUGH = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "SHELL", "TERM")
PASSTHROUGH_PREFIXES = ("LC_", "UV_", "SLURM_", "CUDA_", "NVIDIA_")
TICK = 0.2


def _append_fd(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)


def _append(path: Path) -> IO[bytes]:
    return open(_append_fd(path), "ab", buffering=0)


class Logs:
    """output.log gets everything in arrival order; stdout.log / stderr.log one stream each."""

    def __init__(self, log_dir: Path):
        log_dir.mkdir(parents=True, exist_ok=True)
        self.output = _append(log_dir / "output.log")
        self.stdout = _append(log_dir / "stdout.log")
        self.stderr = _append(log_dir / "stderr.log")
        self.setup = open(_append_fd(log_dir / "setup.log"), "a", buffering=1, encoding="utf-8")

    def note(self, text: str) -> None:
        line = f"[ailabber] {text}\n".encode()
        self.output.write(line)

    def close(self) -> None:
        for f in (self.output, self.stdout, self.stderr, self.setup):
            f.close()


class Wrapper:
    def __init__(self, spec: JobSpec):
        self.spec = spec
        self.run_dir = Path(spec.run_dir)
        self.logs = Logs(Path(spec.log_dir))
        self.stop_signal: int | None = None
        self.started = time.time()
        self.deadline = self.started + spec.time_limit_s
        self.child: subprocess.Popen[bytes] | None = None
        self.warned = False
        self.usr1_pending = False
        # Under Slurm, --signal=B:USR1@N delivers the warning; elsewhere the wrapper does.
        self.warn_at = (self.deadline - spec.signal_before
                        if spec.signal_before and "SLURM_JOB_ID" not in os.environ else None)

    # --- signals -------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.stop_signal = signum

    def install_signals(self) -> None:
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, self._on_signal)
        # Slurm's pre-timeout warning (--signal=B:USR1@N) is forwarded to the commands.
        signal.signal(signal.SIGUSR1, self._forward_usr1)

    def _forward_usr1(self, _signum: int, _frame: Any) -> None:
        """Deliver the pre-timeout warning to the commands' processes that handle SIGUSR1.

        SIGUSR1 ends a program that does not handle it, so it goes only to processes that
        catch it (their SigCgt mask says so); a warning that arrives while no command runs
        (environment setup) is delivered when the next command starts."""
        self.warned = True
        if self.child is None:
            self.usr1_pending = True
            return
        self.usr1_pending = False
        for proc in proctree.tree(self.child.pid):
            if proctree.catches(proc.pid, signal.SIGUSR1):
                try:
                    proc.send_signal(signal.SIGUSR1)
                except Exception:  # gone meanwhile
                    pass

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
        self.logs.note("preparing the Python environment (uv sync --frozen); details in setup.log")
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
        self.child = subprocess.Popen(
            ["/bin/bash", "-c", cmd], cwd=self.spec.workdir, env=env,
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
        pending_warning_at = time.time() + 0.5 if self.usr1_pending else None
        while True:
            if pending_warning_at is not None and time.time() >= pending_warning_at:
                pending_warning_at = None   # give the command a moment to install its handler
                self._forward_usr1(signal.SIGUSR1, None)
            if open_streams and exited_at is None and self.child.poll() is not None:
                exited_at = time.time()
            if open_streams and exited_at is not None and time.time() - exited_at > 2.0:
                # The command is over but left background processes holding its output
                # open: they belong to the task and end with it.
                proctree.kill_tree(os.getpid(), self.spec.kill_grace, include_root=False)
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
                    dest: IO[bytes] = key.data
                    dest.write(data)
                    self.logs.output.write(data)
            elif self.child.poll() is not None:
                break
            else:
                time.sleep(TICK / 4)
            if self.warn_at is not None and not self.warned and time.time() >= self.warn_at:
                self.logs.note(f"{self.spec.signal_before}s before the time limit: sending SIGUSR1 to the commands")
                self._forward_usr1(signal.SIGUSR1, None)
            if stop is None:
                if time.time() >= self.deadline:
                    stop = "timeout"          # also when the TERM came from a time-limit backstop
                elif self.stop_signal is not None:
                    stop = "canceled"
                if stop is not None:
                    self.logs.note("time limit reached; stopping the commands" if stop == "timeout"
                                   else "stop requested; stopping the commands")
                    proctree.kill_tree(self.child.pid, self.spec.kill_grace, include_root=True)
                    # Descendants that escaped the process group were re-parented to us.
                    proctree.kill_tree(os.getpid(), self.spec.kill_grace, include_root=False)
        sel.close()
        rc = self.child.wait()
        self.child = None
        return rc, stop

    def run(self) -> int:
        os.umask(0o022)    # results must be readable by whoever pulls them back
        self.install_signals()
        proctree.become_subreaper()
        needs_env = bool(self.spec.pyproject and self.spec.uv_lock)
        self.record_start("setup" if needs_env else "commands")
        env = self.base_env()
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m remoted.jobwrap JOB_JSON", file=sys.stderr)
        return 2
    spec = JobSpec.read(Path(argv[0]))
    return Wrapper(spec).run()


if __name__ == "__main__":
    sys.exit(main())
