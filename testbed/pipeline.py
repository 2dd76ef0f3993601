"""Real daemons in temporary directories, driven through the real CLI.

Each ``Pipeline`` is one workstation user (a home with a spool) and one remote root; the
daemons are separate processes started exactly as systemd or ``ailabber up`` would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

from testbed.unix_users import chown_tree

TERMINAL = {"completed", "failed", "canceled", "terminated"}


class Pipeline:
    def __init__(self, base: Path, gpus: int = 1, kill_grace: float = 2.0, scheduler: str = "local",
                 remoted_env: dict[str, str] | None = None, remoted_extra: dict[str, Any] | None = None,
                 client_user: str | None = None, client_python: str | None = None,
                 root: Path | None = None, home: Path | None = None,
                 spoold_extra: dict[str, Any] | None = None, spoold_prefix: list[str] | None = None):
        """``client_user``: run spoold and the CLI as that Unix user (with ``client_python``),
        as a student on the workstation would; remoted stays with the test's own account."""
        self.base = base
        self.home = home or base / "home"
        self.root = root or base / "remote"
        self.client_user = client_user
        self.spoold_prefix = spoold_prefix or []   # e.g. ip netns exec NS setpriv ... (run as root)
        self.client_python = client_python or sys.executable
        self.logdir = base / "daemon-logs"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        self.spoold_cfg = self.home / "spoold.yaml"
        self.remoted_cfg = base / "remoted.yaml"
        self.home.mkdir(parents=True, exist_ok=True)
        self.spoold_cfg.write_text(yaml.safe_dump({
            "spool": str(self.home / "spool"), "remote": str(self.root),
            "poll_interval": 0.2, "rescan_interval": 1.0, **(spoold_extra or {})}))
        self.remoted_env = remoted_env or {}
        self.remoted_cfg.write_text(yaml.safe_dump({
            "root": str(self.root), "scheduler": scheduler, "gpus": gpus,
            "poll_interval": 0.2, "rescan_interval": 1.0, "kill_grace": kill_grace,
            "env_cache": str(base / "envs"), **(remoted_extra or {})}))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.submitted: list[str] = []
        self._n = 0

    # --- processes -----------------------------------------------------------------------
    def _as_client(self, which: str) -> dict[str, Any]:
        if which == "remoted" or not self.client_user:
            return {}
        import pwd

        pw = pwd.getpwnam(self.client_user)
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ, AILABBER_HOME=str(self.home), AILABBER_FSYNC="0")
        if self.client_user:
            import pwd

            pw = pwd.getpwnam(self.client_user)
            env.update(HOME=pw.pw_dir, USER=pw.pw_name, LOGNAME=pw.pw_name)
        env.pop("AILABBER_CRASH_AT", None)
        env.pop("DBUS_SESSION_BUS_ADDRESS", None)    # no desktop notifications unless a test asks
        env.update(extra)
        return env

    def start(self, which: str, **env: str) -> subprocess.Popen[bytes]:
        cfg = self.spoold_cfg if which == "spoold" else self.remoted_cfg
        self._n += 1
        log = open(self.logdir / f"{which}-{self._n}.log", "wb")
        python = sys.executable
        if which == "remoted":
            env = {**self.remoted_env, **env}
        else:
            python = self.client_python
        argv = [python, "-m", which, "--config", str(cfg), "--verbose"]
        as_client = self._as_client(which)
        if which == "spoold" and self.spoold_prefix:
            argv, as_client = [*self.spoold_prefix, *argv], {}
        p = subprocess.Popen(argv, env=self.env(**env), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             **as_client)
        self.procs[which] = p
        return p

    def start_all(self) -> None:
        self.start("remoted")
        self.start("spoold")

    def kill(self, which: str, sig: int = signal.SIGKILL) -> None:
        p = self.procs.get(which)
        if p and p.poll() is None:
            p.send_signal(sig)
            p.wait(30)

    def stop_all(self) -> None:
        """SIGTERM to each daemon; one that has not stopped 30 s later is killed (so a test
        that failed on a hung daemon leaves no process behind) and the failure raised."""
        hung = []
        for which in list(self.procs):
            try:
                self.kill(which, signal.SIGTERM)
            except subprocess.TimeoutExpired:
                self.kill(which, signal.SIGKILL)
                hung.append(which)
        if hung:
            raise AssertionError(f"{', '.join(hung)} did not stop within 30 s of SIGTERM\n{self.daemon_logs()[-3000:]}")

    def daemon_logs(self) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')}" for p in sorted(self.logdir.iterdir()))

    # --- CLI -----------------------------------------------------------------------------
    def cli(self, *args: str, cwd: Path | None = None, check: bool = False, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``env``: variables to change for this run (e.g. a ``PATH`` without uv)."""
        r = subprocess.run([self.client_python, "-m", "ailabber", *args], env=self.env(**(env or {})), cwd=cwd,
                           text=True, capture_output=True, timeout=timeout, **self._as_client("cli"))
        if check and r.returncode != 0:
            raise AssertionError(f"ailabber {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def project(self, commands: list[str], *, files: dict[str, str] | None = None,
                extra_toml: str = "", gpus: int = 0, time_limit: str = "10:00", memory: str = "1G",
                results: list[str] | None = None, name: str | None = None) -> Path:
        self._n += 1
        d = self.base / (name or f"project{self._n}")
        d.mkdir(parents=True, exist_ok=True)
        for rel, text in (files or {}).items():
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_text(text)
        cmds = ", ".join(json.dumps(c) for c in commands)
        res = ", ".join(json.dumps(r) for r in (results or []))
        (d / "task_config.toml").write_text(textwrap.dedent(f"""\
            [resources]
            gpus = {gpus}
            memory = "{memory}"
            time_limit = "{time_limit}"
            """) + extra_toml + f"\n[run]\ncommands = [{cmds}]\nresults = [{res}]\n")
        return d

    def submit(self, project: Path, env: dict[str, str] | None = None) -> str:
        r = self.cli("submit", "--json", cwd=project, check=True, env=env)
        task_id = str(json.loads(r.stdout)["id"])
        self.submitted.append(task_id)
        return task_id

    def status(self, task_id: str) -> dict[str, Any]:
        r = self.cli("status", "--json", task_id, check=True)
        return dict(json.loads(r.stdout))

    def wait_for(self, task_id: str, pred: Any, timeout: float = 60, what: str = "") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        st: dict[str, Any] = {}
        while time.monotonic() < deadline:
            st = self.status(task_id)
            if pred(st):
                return st
            time.sleep(0.2)
        raise AssertionError(f"{task_id}: timed out waiting for {what or pred}; last status {st}\n{self.daemon_logs()}")

    def wait_terminal(self, task_id: str, timeout: float = 60) -> dict[str, Any]:
        return self.wait_for(task_id, lambda s: s["state"] in TERMINAL and s["stage"] == "done",
                             timeout, "a final state in done/")

    def remote_task(self, task_id: str) -> Path:
        return self.root / "users" / (self.client_user or _me()) / "tasks" / task_id


def wait_until(check: Any, what: str, timeout: float = 60.0) -> Any:
    """Poll ``check`` until it returns something true; bounded, never a timed assertion."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _me() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def task_processes(task_id: str) -> list[psutil.Process]:
    """Every process that belongs to the task (carries its ``AILABBER_TASK_ID``)."""
    out = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("AILABBER_TASK_ID") == task_id:
                out.append(p)
        except (psutil.Error, OSError):
            continue
    return out


def count_runs(project: Path, runs: Path) -> Path:
    """Make every run of ``project`` first append ``ran`` to ``runs/count`` (a directory any
    job's user may write to); returns that file."""
    runs.mkdir(mode=0o777)
    os.chmod(runs, 0o777)
    cfg = project / "task_config.toml"
    cfg.write_text(cfg.read_text().replace('commands = [', f'commands = ["echo ran >> {runs}/count", '))
    return runs / "count"


# --- several students on one machine (as root) --------------------------------------------
def shared_root(base: Path) -> Path:
    """An empty remote root whose ``users/`` every account may pass through."""
    root = base / "remote"
    (root / "users").mkdir(parents=True)
    for d in (root, root / "users"):
        os.chmod(d, 0o755)
    return root


def student_area(root: Path, user: str) -> Path:
    """The student's directory under ``users/``, made by the admin and owned by the student."""
    area = root / "users" / user
    area.mkdir(mode=0o700)
    chown_tree(area, user)
    return area


def student_pipeline(base: Path, user: str, python: Path, root: Path, home: Path,
                     remoted_extra: dict[str, Any] | None = None, **kw: Any) -> Pipeline:
    """A ``Pipeline`` in ``base`` whose spoold and CLI run as ``user`` (with ``python``) on
    the shared ``root``; jobs run with the same interpreter."""
    p = Pipeline(base, client_user=user, client_python=str(python), root=root, home=home,
                 remoted_extra={"job_python": str(python), "signal_before_timeout": 0, **(remoted_extra or {})},
                 **kw)
    os.chmod(base, 0o755)
    chown_tree(home, user)
    return p


def owned_project(p: Pipeline, name: str, cmd: str, *, gpus: int = 0, files: dict[str, str] | None = None) -> Path:
    """A one-command project with ``output`` as its results, owned by the pipeline's client."""
    d = p.project([cmd], name=name, results=["output"], gpus=gpus, files=files)
    chown_tree(d, p.client_user or "root")
    return d


def students_on_one_root(base: Path, students: tuple[str, ...], python: Path, scheduler: str = "local",
                         remoted_env: dict[str, str] | None = None, extra: dict[str, Any] | None = None,
                         gpus: int = 1) -> dict[str, Pipeline]:
    """One ``student_pipeline`` per name, all on one shared root (each with its own area)."""
    root = shared_root(base)
    pipes: dict[str, Pipeline] = {}
    for name in students:
        student_area(root, name)
        pipes[name] = student_pipeline(base / name, name, python, root, base / f"home-{name}", extra,
                                       scheduler=scheduler, remoted_env=remoted_env, gpus=gpus)
    return pipes
