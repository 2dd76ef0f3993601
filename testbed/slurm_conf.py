"""What a test cluster is made of before anything runs: where the Slurm binaries are,
whether this machine can run one, which ports and tracking it gets, and the text of its
slurm.conf, cgroup.conf and gres.conf.

Kept apart from the lifecycle in ``slurm_cluster`` because it is (nearly) pure: the
rendering can be read and checked without starting a daemon, and ``available`` /
``find_binary`` answer "can Slurm run here?" for callers that never start a cluster.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
from collections.abc import Iterable
from pathlib import Path

SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
REQUIRED_BINARIES = ("slurmctld", "slurmd", "munged", "munge", "unmunge",
                     "sbatch", "squeue", "scontrol", "scancel", "sinfo", "sdiag")
_CGROUP_ROOT = Path("/sys/fs/cgroup")
#: Tracking that keeps a job's processes in a cgroup, and the fallback that follows the
#: process tree (and so loses whatever re-parents to init).
CGROUP_TRACKING = ("proctrack/cgroup", "task/cgroup")
TREE_TRACKING = ("proctrack/linuxproc", "task/none")


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


def write_conf(conf: Path, *, host: str, base: Path, cpus: int, memory_mb: int, gpus: int,
               tracking: tuple[str, str]) -> None:
    """slurm.conf at *conf* (fresh ports, a random first job id) and, for cgroup tracking,
    cgroup.conf beside it; without cgroups an earlier cgroup.conf is removed."""
    cgroup_conf = conf.with_name("cgroup.conf")
    if tracking == CGROUP_TRACKING:
        cgroup_conf.write_text(render_cgroup_conf())
    else:
        cgroup_conf.unlink(missing_ok=True)
    conf.write_text(render_slurm_conf(
        host=host, base=base, ctld_port=free_port(), slurmd_port=free_port(),
        cpus=cpus, memory_mb=memory_mb, gpus=gpus, tracking=tracking,
        first_job_id=random.randrange(1_000, 60_000_000)))
