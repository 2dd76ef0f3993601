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

What the cluster is made of (binaries, ports, the text of its configuration files) is
in ``slurm_conf``; munge, signals and /proc scans in ``slurm_processes``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType

from testbed import slurm_conf, slurm_processes
from testbed.slurm_conf import available, find_binary
from testbed.slurm_processes import SlurmClusterError

# Inherited variables with these prefixes change what Slurm's clients do (output formats,
# defaults, "already inside a job"); a test cluster must not see the caller's.
_CLIENT_ENV_PREFIXES = ("SLURM_", "SBATCH_", "SQUEUE_", "SINFO_", "SALLOC_", "SRUN_",
                        "SCANCEL_", "SACCT_")
_READY_NODE_STATES = {"idle"}
_BUSY_NODE_STATES = {"idle", "mixed", "allocated", "completing"}
_ACTIVE_JOB_STATES = "PENDING,RUNNING,SUSPENDED,COMPLETING,CONFIGURING,REQUEUED,RESIZING"


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
        self.host = slurm_conf.short_hostname()
        self.started_munge = False
        self._munge_pid: int | None = None
        self._running = False
        self.start_seconds: float | None = None
        self.want_cgroups = cgroups
        #: (ProctrackType, TaskPlugin) of the running cluster.
        self.tracking = slurm_conf.TREE_TRACKING
        self.cgroup_problem: str | None = None

    @property
    def tracks_in_cgroups(self) -> bool:
        """True when the end of a job takes every process of it along, detached or not."""
        return self.tracking == slurm_conf.CGROUP_TRACKING

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
        return slurm_processes.pid_started_with(self._pid_file(daemon), self.conf)

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
            parts.append(f"--- {daemon}.log (tail)\n{slurm_processes.tail(self._log(daemon), 15)}")
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
                self.cgroup_problem = f"slurmd refused cgroups: {slurm_processes.fatal_line(str(e))}"
                for daemon in ("slurmd", "slurmctld"):
                    self._stop_daemon(daemon)
                self._write_conf(slurm_conf.TREE_TRACKING)
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

    def kill_node(self) -> None:
        """The node goes away: slurmd is killed, and with it every job step and job
        process of this cluster (slurmd alone would leave them running), and the node is
        declared down, as an admin (or slurmctld, after ``SlurmdTimeout``) does with a
        node that stopped answering: Slurm requeues or fails its jobs."""
        pid = self.daemon_pid("slurmd")
        if pid is not None and not slurm_processes.terminate(pid, timeout=0.0):
            raise SlurmClusterError(self._failure("slurmd", f"(pid {pid}) survived SIGKILL"))
        self._pid_file("slurmd").unlink(missing_ok=True)
        slurm_processes.kill_leftover_processes(self.conf)
        self.run("scontrol", "update", f"nodename={self.host}", "state=down", "reason=node lost")

    def start_node(self) -> None:
        """Start slurmd again after ``kill_node`` and wait until the node is usable."""
        self._start_daemon("slurmd")
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
            if not slurm_processes.terminate(self._munge_pid, timeout=5.0):
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
        slurm_processes.make_fake_gpus(self.gpu_devices)
        self.cgroup_problem = slurm_conf.cgroup_tracking_problem() if self.want_cgroups else None
        wanted = self.want_cgroups and self.cgroup_problem is None
        self._write_conf(slurm_conf.CGROUP_TRACKING if wanted else slurm_conf.TREE_TRACKING)
        self._path("etc", "gres.conf").write_text(
            slurm_conf.render_gres_conf(host=self.host, devices=self.gpu_devices))

    def _write_conf(self, tracking: tuple[str, str]) -> None:
        """slurm.conf (fresh ports) and, for cgroup tracking, cgroup.conf beside it."""
        self.tracking = tracking
        slurm_conf.write_conf(self.conf, host=self.host, base=self._path(), cpus=self.cpus,
                              memory_mb=self.memory_mb, gpus=self.gpus, tracking=tracking)

    def _ensure_munge(self) -> None:
        """Start munged unless one already answers; it is shared with anything else here."""
        if slurm_processes.munge_answers():
            return
        self._munge_pid = slurm_processes.start_munged()
        self.started_munge = True

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
                f"--- tail of {self._log(daemon)}:\n{slurm_processes.tail(self._log(daemon))}")

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
        if not slurm_processes.terminate(pid, timeout=15.0):
            raise SlurmClusterError(
                self._failure(daemon, f"(pid {pid}) ignored SIGTERM and SIGKILL"))
        self._pid_file(daemon).unlink(missing_ok=True)

    def _kill_leftover_processes(self) -> None:
        """Kill slurmstepd and job processes of this cluster that outlived slurmd."""
        if self.base is None:
            return
        slurm_processes.kill_leftover_processes(self.conf)
