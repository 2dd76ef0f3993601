"""A real single-node Slurm (slurmctld + slurmd + munge) living in a temporary directory.

Mocks of sbatch/squeue cannot tell us how Slurm really reports pending reasons, GPU
allocation or a controller restart, so integration tests and benchmarks run against the
genuine daemons instead. Everything the cluster writes (config, state, spool, logs, pid
files, fake GPU devices) sits in one temporary directory it owns; only munge, which has a
single system-wide socket, is started the ordinary way when it is not already answering.

The module imports nothing from pytest so a benchmark script can use it as well::

    with SlurmCluster() as cluster:
        job = cluster.sbatch("--wrap", "true")

Requires root (slurmd launches jobs as their owner and ``mknod`` needs CAP_MKNOD) and the
Debian packages ``slurm-wlm`` and ``munge``.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType

SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
REQUIRED_BINARIES = ("slurmctld", "slurmd", "munged", "munge", "unmunge",
                     "sbatch", "squeue", "scontrol", "scancel", "sinfo", "sdiag")
# Inherited variables with these prefixes change what Slurm's clients do (output formats,
# defaults, "already inside a job"); a test cluster must not see the caller's.
_CLIENT_ENV_PREFIXES = ("SLURM_", "SBATCH_", "SQUEUE_", "SINFO_", "SALLOC_", "SRUN_",
                        "SCANCEL_", "SACCT_")
_MUNGE_DIR = Path("/run/munge")
_MUNGE_KEY = Path("/etc/munge/munge.key")
_READY_NODE_STATES = {"idle"}
_BUSY_NODE_STATES = {"idle", "mixed", "allocated", "completing"}
_ACTIVE_JOB_STATES = "PENDING,RUNNING,SUSPENDED,COMPLETING,CONFIGURING,REQUEUED,RESIZING"
_CGROUP_ROOT = Path("/sys/fs/cgroup")
#: Tracking that keeps a job's processes in a cgroup, and the fallback that follows the
#: process tree (and so loses whatever re-parents to init).
CGROUP_TRACKING = ("proctrack/cgroup", "task/cgroup")
TREE_TRACKING = ("proctrack/linuxproc", "task/none")


class SlurmClusterError(RuntimeError):
    """The cluster could not be started, reached or stopped; the text says why."""


def find_binary(name: str) -> str | None:
    """Daemons live in sbin, which is not on a non-login PATH, so look there too."""
    found = shutil.which(name)
    if found:
        return found
    for d in SBIN_DIRS:
        candidate = Path(d) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def available() -> tuple[bool, str]:
    """Whether this machine can run the cluster, and if not, what is missing."""
    if os.name != "posix" or os.geteuid() != 0:
        return False, "root (slurmd and mknod need it)"
    missing = [b for b in REQUIRED_BINARIES if find_binary(b) is None]
    if missing:
        return False, f"binaries {', '.join(missing)} (apt-get install slurm-wlm munge)"
    if find_binary("runuser") is None:
        return False, "runuser (to start munged as the munge user)"
    host = short_hostname()
    try:
        socket.gethostbyname(host)
    except OSError:
        return False, f"a resolvable hostname ({host!r} does not resolve; Slurm needs it)"
    return True, "root, slurm-wlm and munge present"


def short_hostname() -> str:
    """Slurm matches NodeName/SlurmctldHost against the short host name."""
    return socket.gethostname().split(".")[0]


def free_port() -> int:
    """A port nobody listens on now; private ports let the cluster coexist with others."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


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


def _mounts() -> dict[str, tuple[str, set[str]]]:
    """Mount point -> (file system type, options), from /proc/self/mounts."""
    out: dict[str, tuple[str, set[str]]] = {}
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        fields = line.split()
        if len(fields) >= 4:
            out[fields[1]] = (fields[2], set(fields[3].split(",")))
    return out


def cgroup_tracking_problem() -> str | None:
    """None if slurmd can keep jobs in cgroups here (cgroup v1 with a writable freezer);
    otherwise why not, in one line.

    Only cgroup v1 is attempted.  Slurm 22.05's cgroup/v2 refuses a hybrid layout, and on a
    pure cgroup v2 machine it wants systemd (over dbus) to delegate a scope to slurmstepd,
    or ``IgnoreSystemd=yes`` with controllers enabled by hand in a shared system.slice: no
    private test cluster should reach into either.
    """
    mounts = _mounts()
    top = mounts.get(str(_CGROUP_ROOT))
    if top is not None and top[0] == "cgroup2":
        return ("only cgroup v2 is mounted, and Slurm 22.05's cgroup/v2 needs systemd to "
                "delegate a scope to slurmstepd")
    freezer = mounts.get(str(_CGROUP_ROOT / "freezer"))
    if freezer is None or freezer[0] != "cgroup" or "freezer" not in freezer[1]:
        return f"no cgroup v1 freezer hierarchy at {_CGROUP_ROOT / 'freezer'}"
    if "ro" in freezer[1] or not os.access(_CGROUP_ROOT / "freezer", os.W_OK):
        return f"{_CGROUP_ROOT / 'freezer'} is not writable (a read-only cgroup mount?)"
    return None


def render_cgroup_conf() -> str:
    """cgroup.conf for tracking only: the cgroups hold a job's processes, nothing more.

    Confinement stays off: the node declares more CPUs than the machine has (a cpuset
    would not fit), memory is policed by jobacct_gather as before, and the fake GPUs share
    /dev/null's device numbers, which a device cgroup would take away from every GPU job.
    """
    return f"""\
# The freezer hierarchy holds every process of a job, also those that re-parent to init.
CgroupPlugin=cgroup/v1
CgroupMountpoint={_CGROUP_ROOT}
CgroupAutomount=no
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainSwapSpace=no
ConstrainDevices=no
"""


def render_slurm_conf(*, host: str, base: Path, ctld_port: int, slurmd_port: int,
                      cpus: int, memory_mb: int, gpus: int,
                      tracking: tuple[str, str] = TREE_TRACKING, first_job_id: int = 1) -> str:
    """slurm.conf for one node; every path points into *base* so /etc and /var stay as-is.

    *tracking* is (ProctrackType, TaskPlugin).  *first_job_id* matters with cgroups: every
    test cluster on a machine shares one cgroup tree (``slurm_<node>/uid_<u>/job_<id>``),
    so two clusters must not hand out the same job ids at once.
    """
    proctrack, task_plugin = tracking
    return f"""\
# Single-node test cluster: all state, spool, logs and pid files under {base}
ClusterName=ailabbertest
SlurmctldHost={host}
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/run/slurmctld.pid
SlurmdPidFile={base}/run/slurmd.pid
SlurmctldLogFile={base}/log/slurmctld.log
SlurmdLogFile={base}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
MpiDefault=none
ProctrackType={proctrack}
TaskPlugin={task_plugin}
FirstJobId={first_job_id}
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherParams=OverMemoryKill
# Start jobs as soon as they are submitted instead of on the default 1-2 s cadence.
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
GresTypes=gpu
# The node may declare more CPUs/memory than this machine has.
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
# Finished jobs stay visible to squeue -t all / scontrol for the whole session.
MinJobAge=86400
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={base}/log/jobcomp.log
NodeName={host} CPUs={cpus} Sockets=1 CoresPerSocket={cpus} ThreadsPerCore=1 \
RealMemory={memory_mb} Gres=gpu:{gpus} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def render_gres_conf(*, host: str, devices: Iterable[Path]) -> str:
    """gres.conf naming each fake GPU; Slurm 22.05 drops a GPU that has no File=."""
    lines = ["AutoDetect=off"]
    lines += [f"NodeName={host} Name=gpu File={d}" for d in devices]
    return "\n".join(lines) + "\n"


class SlurmCluster:
    """Start, probe and stop a private slurmctld + slurmd pair (and munge if needed).

    Clients reach it through ``env()``, whose ``SLURM_CONF`` points at this cluster's
    slurm.conf; the daemons are launched with ``-f`` on the same file.

    Jobs are tracked in cgroups (``proctrack/cgroup``, ``task/cgroup``) where the machine
    allows it, as a production cluster should be, so that what a test sees of a job's
    stray processes is what a student's would do; ``cgroups=False`` tracks by process tree
    (``proctrack/linuxproc``) instead.  Where cgroups were wanted but cannot work,
    ``cgroup_problem`` says why and the cluster runs with process-tree tracking.
    """

    def __init__(self, *, cpus: int = 4, memory_mb: int = 8000, gpus: int = 2,
                 base: Path | None = None, keep: bool = False,
                 start_timeout: float = 30.0, cgroups: bool = True) -> None:
        self.cpus = cpus
        self.memory_mb = memory_mb
        self.gpus = gpus
        self.keep = keep or os.environ.get("AILABBER_KEEP_SLURM") == "1"
        self.start_timeout = start_timeout
        self._given_base = base
        self.base: Path | None = None
        self.host = short_hostname()
        self.started_munge = False
        self._munge_pid: int | None = None
        self._running = False
        self.start_seconds: float | None = None
        self.want_cgroups = cgroups
        #: (ProctrackType, TaskPlugin) of the running cluster.
        self.tracking = TREE_TRACKING
        self.cgroup_problem: str | None = None

    @property
    def tracks_in_cgroups(self) -> bool:
        """True when the end of a job takes every process of it along, detached or not."""
        return self.tracking == CGROUP_TRACKING

    # --- paths -------------------------------------------------------------------------
    def _path(self, *parts: str) -> Path:
        if self.base is None:
            raise SlurmClusterError("cluster not started")
        return self.base.joinpath(*parts)

    @property
    def conf(self) -> Path:
        return self._path("etc", "slurm.conf")

    @property
    def log_dir(self) -> Path:
        return self._path("log")

    @property
    def jobcomp_log(self) -> Path:
        return self._path("log", "jobcomp.log")

    @property
    def gpu_devices(self) -> list[Path]:
        return [self._path("dev", f"gpu{i}") for i in range(self.gpus)]

    def _pid_file(self, daemon: str) -> Path:
        return self._path("run", f"{daemon}.pid")

    def _log(self, daemon: str) -> Path:
        return self._path("log", f"{daemon}.log")

    # --- client side -------------------------------------------------------------------
    def env(self, base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
        """Environment for Slurm clients (and jobs submitted with it) aimed at this cluster."""
        source = os.environ if base is None else base
        env = {k: v for k, v in source.items() if not k.startswith(_CLIENT_ENV_PREFIXES)}
        env["SLURM_CONF"] = str(self.conf)
        env.update(extra)
        return env

    def run(self, *argv: str, check: bool = True, timeout: float = 30.0,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command (``sbatch``, ``squeue`` ...) against this cluster."""
        exe = find_binary(argv[0]) or argv[0]
        r = subprocess.run([exe, *argv[1:]], check=False,
                           env=dict(env) if env is not None else self.env(),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise SlurmClusterError(f"{' '.join(argv)} exited {r.returncode}: "
                                    f"{r.stderr.strip() or r.stdout.strip()}")
        return r

    def sbatch(self, *args: str, env: Mapping[str, str] | None = None) -> int:
        """Submit with ``--parsable`` and return the job id."""
        out = self.run("sbatch", "--parsable", *args, env=env).stdout.strip()
        return int(out.split(";")[0])

    def job_state(self, job_id: int) -> tuple[str, str]:
        """(state, reason) as squeue shows them, finished jobs included; ("", "") if unknown."""
        r = self.run("squeue", "-h", "-t", "all", "-j", str(job_id), "-o", "%T|%r", check=False)
        line = r.stdout.strip().splitlines()[0] if r.returncode == 0 and r.stdout.strip() else ""
        if not line:
            return "", ""
        state, _, reason = line.partition("|")
        return state, reason

    def wait_job(self, job_id: int, states: Iterable[str], timeout: float = 30.0) -> str:
        """Poll until the job is in one of *states*; return it, or raise with the last seen."""
        wanted = set(states)
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state, _ = self.job_state(job_id)
            if state in wanted:
                return state
            time.sleep(0.1)
        raise SlurmClusterError(f"job {job_id} still {state or 'unknown'} after {timeout}s, "
                                f"wanted {sorted(wanted)}\n{self.diagnostics()}")

    # --- health ------------------------------------------------------------------------
    def ping(self) -> bool:
        """slurmctld answers (``scontrol ping`` says UP)."""
        try:
            r = self.run("scontrol", "ping", check=False, timeout=10)
        except subprocess.TimeoutExpired:
            return False
        return r.returncode == 0 and "is UP" in r.stdout

    def node_state(self) -> str:
        """Node state as sinfo prints it, e.g. ``idle``, ``mixed``, ``drained``, ``idle*``."""
        r = self.run("sinfo", "-h", "-n", self.host, "-o", "%T", check=False, timeout=10)
        return r.stdout.strip().splitlines()[0] if r.returncode == 0 and r.stdout.strip() else ""

    def schedule_cycles(self) -> int:
        """Main scheduler passes since slurmctld started; jobs wait until the first one."""
        r = self.run("sdiag", check=False, timeout=10)
        m = re.search(r"Main schedule statistics.*?Total cycles:\s*(\d+)", r.stdout, re.DOTALL)
        return int(m.group(1)) if m else 0

    def daemon_pid(self, daemon: str) -> int | None:
        """Live pid of ``slurmctld``/``slurmd`` from its pid file, if it belongs to us."""
        try:
            pid = int(self._pid_file(daemon).read_text().strip())
        except (OSError, ValueError):
            return None
        if not process_alive(pid):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            return None
        return pid if str(self.conf).encode() in cmdline else None

    def healthy(self) -> bool:
        """Both daemons alive, the controller answers and the node is usable."""
        return (self.daemon_pid("slurmctld") is not None and self.daemon_pid("slurmd") is not None
                and self.ping() and self.node_state() in _BUSY_NODE_STATES)

    def diagnostics(self) -> str:
        """Daemon log tails, for assertion messages."""
        if self.base is None:
            return "(cluster not started)"
        parts = [f"node state: {self.node_state() or '?'}"]
        for daemon in ("slurmctld", "slurmd"):
            parts.append(f"--- {daemon}.log (tail)\n{tail(self._log(daemon), 15)}")
        return "\n".join(parts)

    # --- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> SlurmCluster:  # noqa: PYI034 (typing.Self needs 3.11)
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Bring the whole cluster up; return only once a submitted job would start at once."""
        if self._running:
            return
        ok, why = available()
        if not ok:
            raise SlurmClusterError(f"cannot run Slurm here: needs {why}")
        t0 = time.monotonic()
        try:
            self._prepare_dir()
            self._ensure_munge()
            try:
                self._start_daemons(t0 + self.start_timeout)
            except SlurmClusterError as e:
                if not self.tracks_in_cgroups:
                    raise
                # The machine looked able to run cgroups but slurmd disagrees: a cluster
                # without them is still worth more to the tests than no cluster.
                self.cgroup_problem = f"slurmd refused cgroups: {_fatal_line(str(e))}"
                for daemon in ("slurmd", "slurmctld"):
                    self._stop_daemon(daemon)
                self._write_conf(TREE_TRACKING)
                self._start_daemons(time.monotonic() + self.start_timeout)
        except BaseException:
            # The start error (with its log tail) matters more than a stop error after it.
            try:
                self.stop()
            except SlurmClusterError:
                pass
            raise
        self.start_seconds = time.monotonic() - t0

    def _start_daemons(self, deadline: float) -> None:
        self._start_daemon("slurmctld")
        self._start_daemon("slurmd")
        self._running = True
        self._wait_ready(deadline, require_idle=True)

    def restart_controller(self) -> None:
        """Stop and start slurmctld keeping its saved state; running jobs carry on."""
        self._stop_daemon("slurmctld")
        self._start_daemon("slurmctld")
        self._wait_ready(time.monotonic() + self.start_timeout, require_idle=False)

    def stop(self) -> None:
        """Cancel leftover jobs, stop the daemons (and munge if we started it), clean up."""
        if self.base is None:
            return
        errors: list[str] = []
        if self._running and self.ping():
            self._cancel_all_jobs()
        for daemon in ("slurmd", "slurmctld"):
            try:
                self._stop_daemon(daemon)
            except SlurmClusterError as e:
                errors.append(str(e))
        self._kill_leftover_processes()
        if self.started_munge and self._munge_pid is not None:
            if not _terminate(self._munge_pid, timeout=5.0):
                errors.append(f"munged {self._munge_pid} did not exit")
            self.started_munge = False
        self._running = False
        if not self.keep and self._given_base is None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None
        if errors:
            raise SlurmClusterError("; ".join(errors))

    # --- internals ---------------------------------------------------------------------
    def _prepare_dir(self) -> None:
        if self._given_base is not None:
            self.base = self._given_base
            self.base.mkdir(parents=True, exist_ok=True)
        else:
            self.base = Path(tempfile.mkdtemp(prefix="ailabber-slurm-"))
        # Jobs run as their submitter, who must be able to reach the spool and fake devices.
        self.base.chmod(0o755)
        for sub in ("etc", "state", "spool", "run", "log", "dev"):
            self._path(sub).mkdir(exist_ok=True)
        for dev in self.gpu_devices:
            if not dev.exists():
                # Same major/minor as /dev/null: harmless if a job opens it.
                os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))
                dev.chmod(0o666)
        self.cgroup_problem = cgroup_tracking_problem() if self.want_cgroups else None
        wanted = self.want_cgroups and self.cgroup_problem is None
        self._write_conf(CGROUP_TRACKING if wanted else TREE_TRACKING)
        self._path("etc", "gres.conf").write_text(
            render_gres_conf(host=self.host, devices=self.gpu_devices))

    def _write_conf(self, tracking: tuple[str, str]) -> None:
        """slurm.conf (fresh ports) and, for cgroup tracking, cgroup.conf beside it."""
        self.tracking = tracking
        cgroup_conf = self._path("etc", "cgroup.conf")
        if tracking == CGROUP_TRACKING:
            cgroup_conf.write_text(render_cgroup_conf())
        else:
            cgroup_conf.unlink(missing_ok=True)
        self.conf.write_text(render_slurm_conf(
            host=self.host, base=self._path(), ctld_port=free_port(), slurmd_port=free_port(),
            cpus=self.cpus, memory_mb=self.memory_mb, gpus=self.gpus, tracking=tracking,
            first_job_id=random.randrange(1_000, 60_000_000)))

    def _munge_answers(self) -> bool:
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

    def _ensure_munge(self) -> None:
        """Start munged unless one already answers; it is shared with anything else here."""
        if self._munge_answers():
            return
        if not _MUNGE_KEY.exists():
            subprocess.run([find_binary("mungekey") or "mungekey", "--create"],
                           check=True, capture_output=True)
        shutil.chown(_MUNGE_KEY, "munge", "munge")
        _MUNGE_KEY.chmod(0o400)
        _MUNGE_DIR.mkdir(parents=True, exist_ok=True)
        shutil.chown(_MUNGE_DIR, "munge", "munge")
        _MUNGE_DIR.chmod(0o755)
        r = subprocess.run([find_binary("runuser") or "runuser", "-u", "munge", "--",
                            find_binary("munged") or "munged"],
                           check=False, capture_output=True, text=True, timeout=15)
        if r.returncode != 0:
            raise SlurmClusterError(f"munged failed to start (exit {r.returncode}): "
                                    f"{r.stderr.strip()}\n"
                                    f"{tail(Path('/var/log/munge/munged.log'))}")
        deadline = time.monotonic() + 5
        while not self._munge_answers():
            if time.monotonic() > deadline:
                raise SlurmClusterError("munged started but `munge -n | unmunge` fails:\n"
                                        f"{tail(Path('/var/log/munge/munged.log'))}")
            time.sleep(0.02)
        self.started_munge = True
        try:
            self._munge_pid = int((_MUNGE_DIR / "munged.pid").read_text().strip())
        except (OSError, ValueError):
            self._munge_pid = None

    def _start_daemon(self, daemon: str) -> None:
        """Launch a daemon (it forks into the background) and wait for its pid file."""
        if self.daemon_pid(daemon) is not None:
            return
        self._pid_file(daemon).unlink(missing_ok=True)
        exe = find_binary(daemon) or daemon
        r = subprocess.run([exe, "-f", str(self.conf)], check=False, env=self.env(),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=30, cwd=self.base)
        if r.returncode != 0:
            raise SlurmClusterError(self._failure(daemon, f"exited {r.returncode}: "
                                                          f"{r.stderr.strip()}"))
        deadline = time.monotonic() + 10
        while self.daemon_pid(daemon) is None:
            if time.monotonic() > deadline:
                raise SlurmClusterError(self._failure(daemon, "did not stay up"))
            time.sleep(0.02)

    def _failure(self, daemon: str, what: str) -> str:
        return (f"{daemon} -f {self.conf} {what}\n"
                f"--- tail of {self._log(daemon)}:\n{tail(self._log(daemon))}")

    def _wait_ready(self, deadline: float, *, require_idle: bool) -> None:
        """Controller UP, node usable (resumed if drained) and the first schedule pass done.

        Without the last condition a job submitted right after start waits ~3 s for
        slurmctld's first scheduling pass, which would distort latency measurements.
        """
        good = _READY_NODE_STATES if require_idle else _BUSY_NODE_STATES
        last_resume = 0.0
        state = ""
        while True:
            for daemon in ("slurmctld", "slurmd"):
                if self.daemon_pid(daemon) is None:
                    raise SlurmClusterError(self._failure(daemon, "died during start-up"))
            if self.ping():
                state = self.node_state()
                if state == "inval":
                    raise SlurmClusterError(self._failure(
                        "slurmd", "registered a node that does not match slurm.conf (INVAL)"))
                if state in good and self.schedule_cycles() >= 1:
                    return
                # A node drained by an earlier failure stays drained across restarts.
                if (state in ("drained", "draining", "down")
                        and time.monotonic() - last_resume > 1.0):
                    self.run("scontrol", "update", f"nodename={self.host}", "state=resume",
                             check=False)
                    last_resume = time.monotonic()
            if time.monotonic() > deadline:
                raise SlurmClusterError(
                    f"cluster not ready in time (ping={'UP' if self.ping() else 'DOWN'}, "
                    f"node={state or '?'}, cycles={self.schedule_cycles()})\n"
                    f"{self.diagnostics()}")
            time.sleep(0.05)

    def _cancel_all_jobs(self) -> None:
        """Cancel jobs still queued or running so no job process outlives the cluster."""
        r = self.run("squeue", "-h", "-t", _ACTIVE_JOB_STATES, "-o", "%i", check=False)
        ids = r.stdout.split()
        if not ids:
            return
        self.run("scancel", *ids, check=False)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            r = self.run("squeue", "-h", "-t", _ACTIVE_JOB_STATES, "-o", "%i", check=False)
            if r.returncode != 0 or not r.stdout.strip():
                return
            time.sleep(0.1)

    def _stop_daemon(self, daemon: str) -> None:
        pid = self.daemon_pid(daemon)
        if pid is None:
            return
        if not _terminate(pid, timeout=15.0):
            raise SlurmClusterError(
                self._failure(daemon, f"(pid {pid}) ignored SIGTERM and SIGKILL"))
        self._pid_file(daemon).unlink(missing_ok=True)

    def _kill_leftover_processes(self) -> None:
        """Kill slurmstepd and job processes of this cluster that outlived slurmd.

        slurmd does not take its job steps down with it. They are recognised by the
        ``SLURM_CONF`` of this cluster (inherited from slurmd or the submitter) together with
        being a slurmstepd or carrying ``SLURM_JOB_ID``, so other users of ``env()`` survive.
        """
        if self.base is None:
            return
        marker = f"SLURM_CONF={self.conf}".encode()
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
                _terminate(int(entry.name), timeout=2.0)


def _fatal_line(failure: str) -> str:
    """The line of a start failure (with its log tail) that says why, else its first."""
    lines = failure.splitlines()
    fatal = next((ln.split("fatal:", 1)[1].strip() for ln in lines if "fatal:" in ln), None)
    return fatal or (lines[0] if lines else failure)


def _terminate(pid: int, timeout: float) -> bool:
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
