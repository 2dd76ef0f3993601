"""Every process a local job starts ends with the job: one cgroup per job.

A job's processes can leave any process tree (``setsid nohup ... &``, a double fork, a
child whose parent was killed), but not their cgroup: a process cannot move itself out of
a cgroup whose ``cgroup.procs`` only root may write.  So, under the local scheduler, each
job wrapper joins a cgroup of its own before it drops root (see ``remoted.jobwrap``), and
remoted ends the job by killing the whole cgroup: at the job's end, at a cancel and at the
time-limit backstop.  Where the memory controller is available the cgroup also enforces
the task's ``resources.memory`` and tells an out-of-memory kill apart from other kills.

What is used, best first:

- **cgroup v2** with ``cgroup.kill`` (Linux >= 5.14): the kernel kills every member at
  once.  Under systemd, remoted's unit has ``Delegate=yes`` and the jobs' cgroups live in
  the unit's own subtree; without systemd (root in a plain shell or a container) remoted
  creates ``ailabber-jobs`` below the cgroup it runs in.
- the v2 ``memory`` controller where it is delegated, else a v1 ``memory`` hierarchy;
- a v1 ``freezer`` hierarchy when there is no v2 mount: freeze, kill every member, thaw;
- **processes only** (no writable cgroup): the wrapper is a child subreaper and kills its
  descendants at the end, and remoted sweeps for processes carrying the task's
  environment marker.  A process that leaves the tree *and* clears its environment
  escapes this; ``ailabber doctor`` says which mode is in force.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

JOBS_DIR = "ailabber-jobs"
#: How long ``kill`` waits for a killed cgroup to empty before it reports failure.
EMPTY_WAIT = 5.0


@dataclass(frozen=True)
class Mounts:
    """Where the cgroup hierarchies this process belongs to are, as the kernel says."""

    v2: Path | None           # this process's own cgroup v2 directory
    v1: dict[str, Path]       # controller -> this process's own cgroup directory in v1

    @classmethod
    def of_this_process(cls) -> Mounts:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
            own = Path("/proc/self/cgroup").read_text()
        except OSError:
            return cls(None, {})
        return cls.parse(mountinfo, own)

    @classmethod
    def parse(cls, mountinfo: str, own_cgroups: str) -> Mounts:
        """From ``/proc/self/mountinfo`` and ``/proc/self/cgroup`` (pure: tested alone)."""
        v2_mount: Path | None = None
        v2_root = "/"
        v1_mounts: dict[str, tuple[Path, str]] = {}
        for line in mountinfo.splitlines():
            pre, sep, post = line.partition(" - ")
            if not sep:
                continue
            fields, tail = pre.split(), post.split()
            if len(fields) < 5 or len(tail) < 3:
                continue
            fs_root, mount_point, fstype, options = fields[3], Path(fields[4]), tail[0], tail[2].split(",")
            if fstype == "cgroup2" and v2_mount is None:
                v2_mount, v2_root = mount_point, fs_root
            elif fstype == "cgroup":
                for ctrl in ("memory", "freezer", "pids"):
                    if ctrl in options:
                        v1_mounts[ctrl] = (mount_point, fs_root)
        v2: Path | None = None
        v1: dict[str, Path] = {}
        for line in own_cgroups.splitlines():
            hier, _, rest = line.partition(":")
            ctrls, _, path = rest.partition(":")
            if hier == "0" and ctrls == "" and v2_mount is not None:
                v2 = _below(v2_mount, v2_root, path)
            for ctrl in ctrls.split(","):
                if ctrl in v1_mounts:
                    mount, root = v1_mounts[ctrl]
                    v1[ctrl] = _below(mount, root, path)
        return cls(v2, v1)


def _below(mount: Path, fs_root: str, path: str) -> Path:
    """The directory of cgroup ``path`` (as /proc/self/cgroup spells it) under ``mount``."""
    rel = path[len(fs_root):] if fs_root != "/" and path.startswith(fs_root) else path
    return mount / rel.lstrip("/")


@dataclass(frozen=True)
class JobGroup:
    """The cgroup directories of one job (recorded in the job's handle)."""

    name: str
    kill_dir: str | None       # v2 cgroup (cgroup.kill) or v1 freezer cgroup
    memory_dir: str | None     # where memory is limited and OOM kills are counted
    extra_dirs: tuple[str, ...] = ()   # other v1 cgroups the job is in (e.g. pids)

    def procs_files(self) -> list[str]:
        """The ``cgroup.procs`` files the wrapper writes itself into while still root."""
        dirs = [d for d in (self.kill_dir, self.memory_dir, *self.extra_dirs) if d]
        return [str(Path(d) / "cgroup.procs") for d in dict.fromkeys(dirs)]

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "kill_dir": self.kill_dir, "memory_dir": self.memory_dir,
                "extra_dirs": list(self.extra_dirs)}

    @classmethod
    def from_dict(cls, d: object) -> JobGroup | None:
        if not isinstance(d, dict) or not isinstance(d.get("name"), str):
            return None
        return cls(d["name"], d.get("kill_dir"), d.get("memory_dir"), tuple(d.get("extra_dirs") or ()))


class Containment:
    """Creates, kills and removes jobs' cgroups; ``mode`` says what is in force."""

    def __init__(self, kill_base: Path | None, kill_kind: str, memory_base: Path | None,
                 memory_kind: str | None, extra_bases: tuple[Path, ...] = ()):
        self.kill_base = kill_base
        self.kill_kind = kill_kind           # "cgroup2" | "freezer" | "processes"
        self.memory_base = memory_base
        self.memory_kind = memory_kind       # "cgroup2" | "cgroup1" | None
        self.extra_bases = extra_bases

    @property
    def mode(self) -> str:
        """One line for logs, the heartbeat and ``doctor``."""
        if self.kill_kind == "processes":
            kill = "processes only (no writable cgroup: escapees that clear their environment survive)"
        elif self.kill_kind == "cgroup2":
            kill = "cgroup v2 (cgroup.kill)"
        else:
            kill = "cgroup v1 freezer"
        memory = {"cgroup2": "memory limit: cgroup v2", "cgroup1": "memory limit: cgroup v1",
                  None: "memory limit: not enforced"}[self.memory_kind]
        return f"{kill}; {memory}"

    @property
    def cgroups(self) -> bool:
        return self.kill_kind != "processes"

    # --- setting up ----------------------------------------------------------------------
    @classmethod
    def processes_only(cls) -> Containment:
        return cls(None, "processes", None, None)

    @classmethod
    def detect(cls, mounts: Mounts | None = None) -> Containment:
        """The best containment this process can set up (it must be root for any cgroup)."""
        if os.geteuid() != 0:
            return cls.processes_only()
        mounts = mounts or Mounts.of_this_process()
        kill_base, kill_kind = None, "processes"
        memory_base, memory_kind = None, None
        if mounts.v2 is not None and (mounts.v2 / "cgroup.procs").exists():
            base = _make_base(mounts.v2)
            if base is not None and (base / "cgroup.kill").exists():
                kill_base, kill_kind = base, "cgroup2"
                if _enable_memory(mounts.v2, base):
                    memory_base, memory_kind = base, "cgroup2"
        if kill_base is None and "freezer" in mounts.v1:
            base = _make_base(mounts.v1["freezer"])
            if base is not None:
                kill_base, kill_kind = base, "freezer"
        if memory_base is None and "memory" in mounts.v1:
            base = _make_base(mounts.v1["memory"])
            if base is not None:
                memory_base, memory_kind = base, "cgroup1"
        extra = tuple(b for b in (_make_base(mounts.v1["pids"]),) if b is not None) if "pids" in mounts.v1 else ()
        return cls(kill_base, kill_kind, memory_base, memory_kind, extra)

    def create(self, name: str, memory_mb: int | None) -> JobGroup | None:
        """The job's cgroups, fresh and empty (a leftover of the same name is killed and
        replaced).  None in process-only mode."""
        if not self.cgroups:
            return None
        _check_name(name)
        kill_dir = _fresh(self.kill_base / name) if self.kill_base else None
        memory_dir = None
        if self.memory_base is not None:
            memory_dir = kill_dir if self.memory_base == self.kill_base else _fresh(self.memory_base / name)
            if memory_mb and memory_dir is not None:
                _set_memory_limit(Path(memory_dir), self.memory_kind, memory_mb)
        extra = tuple(_fresh(b / name) for b in self.extra_bases)
        return JobGroup(name, kill_dir, memory_dir, extra)

    # --- ending --------------------------------------------------------------------------
    def kill(self, group: JobGroup | None) -> bool:
        """Kill every process in the job's cgroups and wait until they are empty; True
        when they are.  Safe to call for a job that already ended."""
        if group is None:
            return True
        if group.kill_dir and self.kill_kind == "cgroup2":
            _write(Path(group.kill_dir) / "cgroup.kill", "1")
        elif group.kill_dir and self.kill_kind == "freezer":
            _freeze_and_kill(Path(group.kill_dir))
        dirs = [Path(d).parent for d in group.procs_files()]
        for d in dirs:      # whatever a hierarchy still holds
            _signal_all(d, signal.SIGKILL)
        if _wait_empty(dirs):
            return True
        log.warning("job cgroup %s still has processes after being killed", group.name)
        return False

    def remove(self, group: JobGroup | None) -> None:
        """Remove the job's (empty) cgroups."""
        if group is None:
            return
        for d in dict.fromkeys(x for x in (group.kill_dir, group.memory_dir, *group.extra_dirs) if x):
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.debug("cannot remove cgroup %s: %s", d, exc)

    def finish(self, group: JobGroup | None) -> None:
        """The job is over: nothing of it may keep running."""
        if self.kill(group):
            self.remove(group)

    def alive(self, group: JobGroup | None) -> bool:
        """Whether any process of the job still runs."""
        return group is not None and any(_members(Path(d).parent) for d in group.procs_files())

    def oom_killed(self, group: JobGroup | None) -> bool:
        """Whether the kernel killed a process of the job for exceeding its memory limit."""
        if group is None or group.memory_dir is None:
            return False
        d = Path(group.memory_dir)
        if self.memory_kind == "cgroup2":
            return _counter(d / "memory.events", "oom_kill") > 0
        return _counter(d / "memory.oom_control", "oom_kill") > 0


# --- helpers ----------------------------------------------------------------------------

def _check_name(name: str) -> None:
    if not name or "/" in name or name.startswith(".") or "\0" in name:
        raise ValueError(f"not a cgroup name: {name!r}")


def _make_base(own: Path) -> Path | None:
    """``ailabber-jobs`` below our own cgroup, or None where we may not create it."""
    base = own / JOBS_DIR
    try:
        base.mkdir(mode=0o755, exist_ok=True)
    except OSError as exc:
        log.debug("no job cgroups under %s: %s", own, exc)
        return None
    return base if (base / "cgroup.procs").exists() else None


def _enable_memory(own: Path, base: Path) -> bool:
    """Turn on the v2 memory controller for the jobs' cgroups, if it is ours to turn on."""
    try:
        if "memory" not in (own / "cgroup.controllers").read_text().split():
            return False
        if "memory" not in (own / "cgroup.subtree_control").read_text().split():
            (own / "cgroup.subtree_control").write_text("+memory")
        if "memory" not in (base / "cgroup.subtree_control").read_text().split():
            (base / "cgroup.subtree_control").write_text("+memory")
        return True
    except OSError as exc:   # e.g. processes in our own cgroup (the no-internal-process rule)
        log.debug("v2 memory controller not available for jobs: %s", exc)
        return False


def _fresh(d: Path) -> str:
    if d.exists():
        _signal_all(d, signal.SIGKILL)
        _write(d / "cgroup.kill", "1")
        _wait_empty([d])
        os.rmdir(d)
    d.mkdir(mode=0o755)
    return str(d)


def _wait_empty(dirs: list[Path]) -> bool:
    """Wait up to ``EMPTY_WAIT`` seconds for killed cgroups to lose their last member (the
    kernel reaps them asynchronously); True when all are empty."""
    deadline = time.monotonic() + EMPTY_WAIT
    while any(_members(d) for d in dirs):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def _set_memory_limit(d: Path, kind: str | None, memory_mb: int) -> None:
    limit = str(memory_mb * 1024 * 1024)
    if kind == "cgroup2":
        _write(d / "memory.max", limit)
        _write(d / "memory.swap.max", "0")
    else:
        _write(d / "memory.limit_in_bytes", limit)
        _write(d / "memory.memsw.limit_in_bytes", limit)   # where swap accounting exists


def _write(path: Path, text: str) -> bool:
    try:
        with open(path, "w") as fh:
            fh.write(text)
        return True
    except OSError:
        return False


def _members(d: Path) -> list[int]:
    try:
        return [int(x) for x in (d / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _signal_all(d: Path, sig: int) -> None:
    for pid in _members(d):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                log.debug("cannot signal %d: %s", pid, exc)


def _freeze_and_kill(d: Path) -> None:
    """v1 freezer: nothing can fork while frozen, so one pass of SIGKILL gets them all;
    the kill is delivered as soon as the group thaws."""
    if _write(d / "freezer.state", "FROZEN"):
        deadline = time.monotonic() + EMPTY_WAIT
        while time.monotonic() < deadline:
            try:
                if (d / "freezer.state").read_text().strip() == "FROZEN":
                    break
            except OSError:
                break
            time.sleep(0.005)
    _signal_all(d, signal.SIGKILL)
    _write(d / "freezer.state", "THAWED")


def _counter(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            k, _, v = line.partition(" ")
            if k == key:
                return int(v)
    except (OSError, ValueError):
        pass
    return 0
