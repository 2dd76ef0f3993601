"""The processes around a test cluster, as the operating system sees them: munge, pid
liveness, termination, job processes that outlive slurmd, and log tails.

These read /proc, send signals and start the one system-wide munged; none needs a
``SlurmCluster``, so they live apart from its lifecycle (``slurm_cluster``) and from the
configuration it writes (``slurm_conf``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from testbed.slurm_conf import find_binary

MUNGE_DIR = Path("/run/munge")
_MUNGE_KEY = Path("/etc/munge/munge.key")


class SlurmClusterError(RuntimeError):
    """The cluster could not be started, reached or stopped; the text says why."""


def process_alive(pid: int) -> bool:
    """True if *pid* runs and is not a zombie.

    ``kill -0`` succeeds on zombies, and daemonized slurm processes are reparented to a
    PID 1 that may reap them late, so the state letter in /proc is what counts.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X", "x")


def tail(path: Path, lines: int = 30) -> str:
    """Last lines of a log, for error messages that explain themselves."""
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"(no log at {path}: {e.strerror})"
    return "\n".join(text.splitlines()[-lines:]) or f"({path} is empty)"


def pid_started_with(pid_file: Path, conf: Path) -> int | None:
    """Live pid from *pid_file* if that process was started with *conf* on its command
    line: a pid file left by a dead daemon may name a pid reused by something else."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if not process_alive(pid):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return None
    return pid if str(conf).encode() in cmdline else None


def fatal_line(failure: str) -> str:
    """The line of a start failure (with its log tail) that says why, else its first."""
    lines = failure.splitlines()
    fatal = next((ln.split("fatal:", 1)[1].strip() for ln in lines if "fatal:" in ln), None)
    return fatal or (lines[0] if lines else failure)


def make_fake_gpus(devices: Iterable[Path]) -> None:
    """Device nodes for gres.conf to name, with the same major/minor as /dev/null: harmless
    if a job opens one.  Jobs run as their submitter, so anyone may open them."""
    for dev in devices:
        if not dev.exists():
            os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))
            dev.chmod(0o666)


def terminate(pid: int, timeout: float) -> bool:
    """SIGTERM, then SIGKILL after *timeout*; True once the process is gone (or a zombie)."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not process_alive(pid):
                return True
            time.sleep(0.02)
    return not process_alive(pid)


def munge_answers() -> bool:
    """A credential made by ``munge -n`` is accepted by ``unmunge``: munged is up."""
    munge, unmunge = find_binary("munge"), find_binary("unmunge")
    if not munge or not unmunge:
        return False
    try:
        cred = subprocess.run([munge, "-n"], check=False, capture_output=True, timeout=5)
        if cred.returncode != 0:
            return False
        back = subprocess.run([unmunge], check=False, input=cred.stdout,
                              capture_output=True, timeout=5)
    except subprocess.TimeoutExpired:
        return False
    return back.returncode == 0


def start_munged() -> int | None:
    """Start the system's munged as the munge user and wait until it answers; its pid if
    the pid file tells.  Only when none answers: it is shared with anything else here."""
    if not _MUNGE_KEY.exists():
        subprocess.run([find_binary("mungekey") or "mungekey", "--create"],
                       check=True, capture_output=True)
    shutil.chown(_MUNGE_KEY, "munge", "munge")
    _MUNGE_KEY.chmod(0o400)
    MUNGE_DIR.mkdir(parents=True, exist_ok=True)
    shutil.chown(MUNGE_DIR, "munge", "munge")
    MUNGE_DIR.chmod(0o755)
    r = subprocess.run([find_binary("runuser") or "runuser", "-u", "munge", "--",
                        find_binary("munged") or "munged"],
                       check=False, capture_output=True, text=True, timeout=15)
    if r.returncode != 0:
        raise SlurmClusterError(f"munged failed to start (exit {r.returncode}): "
                                f"{r.stderr.strip()}\n"
                                f"{tail(Path('/var/log/munge/munged.log'))}")
    deadline = time.monotonic() + 5
    while not munge_answers():
        if time.monotonic() > deadline:
            raise SlurmClusterError("munged started but `munge -n | unmunge` fails:\n"
                                    f"{tail(Path('/var/log/munge/munged.log'))}")
        time.sleep(0.02)
    try:
        return int((MUNGE_DIR / "munged.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def kill_leftover_processes(conf: Path) -> None:
    """Kill slurmstepd and job processes of the cluster configured by *conf* that
    outlived slurmd.

    slurmd does not take its job steps down with it. They are recognised by the
    ``SLURM_CONF`` of the cluster (inherited from slurmd or the submitter) together with
    being a slurmstepd or carrying ``SLURM_JOB_ID``, so other users of its ``env()`` survive.
    """
    marker = f"SLURM_CONF={conf}".encode()
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        fields = environ.split(b"\0")
        if marker not in fields:
            continue
        is_job = any(f.startswith(b"SLURM_JOB_ID=") for f in fields)
        try:
            is_stepd = (entry / "comm").read_text().strip() == "slurmstepd"
        except OSError:
            is_stepd = False
        if is_job or is_stepd:
            terminate(int(entry.name), timeout=2.0)
