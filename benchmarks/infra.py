"""The real infrastructure the benchmarks run on, started on first use and stopped once.

* a single-node Slurm (``testbed/slurm_cluster.SlurmCluster``), with enough slots that the
  short benchmark jobs never wait for each other;
* Unix accounts ``ailabber-bench1..5`` and a world-usable interpreter with ailabber in it
  (``testbed/unix_users``), so remoted runs as root and each task as its student;
* an sshd on loopback whose keys are pinned with rrsync or ailabber's gate
  (``testbed/sshd.Sshd``), a fresh one per site so that a lingering ssh ControlMaster can
  never reach another site's area.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import BenchPipeline
from testbed import slurm_cluster, slurm_processes, unix_users
from testbed import sshd as sshd_mod

BENCH_USERS = tuple(f"ailabber-bench{i}" for i in range(1, 6))
#: The simulated course of the scale group: one account per student.
SCALE_USERS = tuple(f"ailabber-scale{i:02d}" for i in range(1, 51))


class Unavailable(RuntimeError):
    """This machine cannot provide what a benchmark needs; the text says what is missing."""


class Infra:
    def __init__(self) -> None:
        self._slurm: slurm_cluster.SlurmCluster | None = None
        self._slurm_error: str | None = None
        self._python: Path | None = None
        self._python_error: str | None = None
        self._users: list[str] = []

    # --- Slurm ---------------------------------------------------------------------------
    def slurm(self) -> slurm_cluster.SlurmCluster:
        if self._slurm is not None:
            return self._slurm
        if self._slurm_error:
            raise Unavailable(self._slurm_error)
        ok, why = slurm_cluster.available()
        if not ok:
            self._slurm_error = f"no Slurm here: needs {why}"
            raise Unavailable(self._slurm_error)
        cluster = slurm_cluster.SlurmCluster(cpus=16, memory_mb=16000, gpus=2)
        try:
            cluster.start()
        except slurm_processes.SlurmClusterError as exc:
            self._slurm_error = f"Slurm did not start: {str(exc).splitlines()[0]}"
            raise Unavailable(self._slurm_error) from None
        self._slurm = cluster
        return cluster

    def slurm_version(self) -> str:
        exe = slurm_cluster.find_binary("slurmctld")
        if not exe:
            return "not installed"
        r = subprocess.run([exe, "-V"], capture_output=True, text=True, check=False)
        return r.stdout.strip() or "unknown"

    def cancel_all_jobs(self) -> None:
        if self._slurm is not None:
            self._slurm.run("scancel", "--state=PENDING", check=False)
            self._slurm.run("scancel", "--state=RUNNING", check=False)

    # --- accounts ------------------------------------------------------------------------
    def student_python(self) -> Path:
        if self._python is not None:
            return self._python
        if self._python_error:
            raise Unavailable(self._python_error)
        ok, why = unix_users.can_make_users()
        if not ok:
            self._python_error = f"cannot create Unix accounts: needs {why}"
            raise Unavailable(self._python_error)
        try:
            self._python = unix_users.shared_python()
        except subprocess.CalledProcessError as exc:
            self._python_error = f"could not build the shared interpreter: {exc}"
            raise Unavailable(self._python_error) from None
        return self._python

    def users(self, n: int, names: tuple[str, ...] = BENCH_USERS) -> list[str]:
        """The first ``n`` of ``names`` as Unix accounts (made once, kept for later runs)."""
        if n > len(names):
            raise Unavailable(f"only {len(names)} benchmark accounts are defined, {n} asked for")
        self.student_python()
        for name in names[:n]:
            unix_users.ensure_user(name)
            if name not in self._users:
                self._users.append(name)
        return list(names[:n])

    # --- sshd ----------------------------------------------------------------------------
    def new_sshd(self, gate: Path | None = None) -> sshd_mod.Sshd:
        """A loopback sshd whose keys are pinned with rrsync, or with ``gate``."""
        ok, why = sshd_mod.available()
        if not ok:
            raise Unavailable(f"no sshd here: needs {why}")
        d = sshd_mod.Sshd(gate=gate)
        d.start()
        return d

    def stop(self) -> None:
        if self._slurm is not None:
            try:
                self._slurm.stop()
            except slurm_processes.SlurmClusterError:
                pass
            self._slurm = None
        if self._python is not None:
            shutil.rmtree(self._python.parent.parent.parent, ignore_errors=True)
            self._python = None
        for name in self._users:     # spoold's ssh ControlPath directories, once empty
            try:
                os.rmdir(f"/tmp/ailabber-ssh-{pwd.getpwnam(name).pw_uid}")
            except (KeyError, OSError):
                pass


class StudentPipeline(BenchPipeline):
    """A student's pipeline: no root-only runtime directory leaks into their processes."""

    def env(self, **extra: str) -> dict[str, str]:
        env = super().env(**extra)
        env.pop("XDG_RUNTIME_DIR", None)
        return env


@dataclass
class Site:
    """One remote root served by one remoted (as root), and one pipeline per student."""

    base: Path
    root: Path
    pipes: dict[str, BenchPipeline]
    sshd: sshd_mod.Sshd | None = None
    keys: dict[str, Path] = field(default_factory=dict)

    @property
    def first(self) -> BenchPipeline:
        return next(iter(self.pipes.values()))

    def start(self, spoold: bool = True) -> None:
        self.first.start("remoted")
        if spoold:
            for p in self.pipes.values():
                p.start("spoold")

    def stop(self) -> None:
        for p in self.pipes.values():
            p.stop_all()
        if self.sshd is not None:
            for user, key in self.keys.items():
                _close_master(user, key, self.sshd)
            self.sshd.stop()
            self.sshd = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def make_site(infra: Infra, prefix: str, users: list[str], *, transport: str, scheduler: str = "local",
              remoted_extra: dict[str, Any] | None = None, gpus: int = 0,
              spoold_extra: dict[str, Any] | None = None, gate: bool = False) -> Site:
    """The deployment the admin guide describes: ``users/<name>`` made by the admin and
    owned by the student; over ssh each student's key is pinned to it with rrsync, or
    with ailabber's gate (``gate``: the ``ailabber-gate`` of the students' interpreter)."""
    py = infra.student_python()
    base = unix_users.world_dir(f"ailabber-bench-{prefix}-")
    root = base / "remote"
    (root / "users").mkdir(parents=True)
    for d in (root, root / "users"):
        os.chmod(d, 0o755)
    remoted_env: dict[str, str] = {}
    if scheduler == "slurm":
        remoted_env["SLURM_CONF"] = str(infra.slurm().conf)
    site = Site(base, root, {})
    if transport == "ssh":
        site.sshd = infra.new_sshd(py.parent / "ailabber-gate" if gate else None)
    for name in users:
        area = root / "users" / name
        area.mkdir(mode=0o700)
        unix_users.chown_tree(area, name)
        extra = {"connect_timeout": 5, **(spoold_extra or {})}
        if site.sshd is not None:
            keydir = base / f"keys-{name}"
            keydir.mkdir(mode=0o700)
            unix_users.chown_tree(keydir, name)
            key = keydir / "id_ed25519"
            site.sshd.authorize(name, sshd_mod.keygen(key, owner=name), rrsync_dir=area)
            site.keys[name] = key
            extra.update({"remote": site.sshd.url(name, "/"), "identity_file": str(key),
                          "ssh_options": site.sshd.client_options()})
        home = base / f"home-{name}"
        p = StudentPipeline(base / name, scheduler=scheduler, client_user=name, client_python=str(py),
                            root=root, home=home, gpus=gpus, remoted_env=remoted_env,
                            remoted_extra={"job_python": str(py), "signal_before_timeout": 0,
                                           **(remoted_extra or {})},
                            spoold_extra=extra)
        os.chmod(base / name, 0o755)
        unix_users.chown_tree(home, name)
        site.pipes[name] = p
    return site


def _close_master(user: str, key: Path, sshd: sshd_mod.Sshd) -> None:
    """End the student's multiplexed ssh connection, if spoold left one behind."""
    pw = pwd.getpwnam(user)
    control = Path(f"/tmp/ailabber-ssh-{pw.pw_uid}")      # spoold.ssh.control_dir() for that uid
    if not control.is_dir():
        return
    for socket in control.iterdir():        # named by spoold.ssh: one per key and options
        subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-p", str(sshd.port), "-O", "exit",
                        f"{user}@{sshd.listen}"], capture_output=True, timeout=10, check=False,
                       user=pw.pw_uid, group=pw.pw_gid, extra_groups=[],
                       env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": pw.pw_dir})
