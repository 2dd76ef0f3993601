"""Ending a task means ending every process it started.

Dataloader workers and ``torchrun`` children outlive a killed parent and keep the GPU, so
the whole tree is collected first, then TERM, a grace period, then KILL for the rest.
"""

from __future__ import annotations

import ctypes
import os
import signal

import psutil

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Orphaned descendants (double forks, setsid) are re-parented to us, not to init,
    so the tree we kill stays whole.  Linux only; harmless elsewhere."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def tree(pid: int, include_root: bool = True) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        procs = root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return ([root] if include_root else []) + procs


def kill_tree(pid: int, grace: float, include_root: bool = True, sig: int = signal.SIGTERM,
              statuses: dict[int, int] | None = None) -> int:
    """TERM the tree, wait up to ``grace`` seconds, KILL survivors.  Returns how many were KILLed."""
    procs = tree(pid, include_root)
    return kill_procs(procs, grace, sig, statuses)


def kill_procs(procs: list[psutil.Process], grace: float, sig: int = signal.SIGTERM,
               statuses: dict[int, int] | None = None) -> int:
    """``statuses`` receives the wait status (negative: the signal) of each of our own
    children the wait reaped: once reaped, ``Popen.wait()`` can no longer learn it and
    would say 0."""
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    gone, alive = psutil.wait_procs(procs, timeout=grace)
    # Children forked during the grace period are caught here too.
    extra: list[psutil.Process] = []
    for p in alive:
        try:
            extra.extend(p.children(recursive=True))
        except psutil.NoSuchProcess:
            pass
    alive = alive + extra
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    killed, _ = psutil.wait_procs(alive, timeout=5)
    if statuses is not None:
        for p in (*gone, *killed):
            code = getattr(p, "returncode", None)
            if code is not None:
                statuses[p.pid] = int(code)
    return len(alive)


def processes_with_env(key: str, value: str) -> list[psutil.Process]:
    """Processes carrying ``key=value`` in their environment: the last sweep for escapees
    that left the tree.  Only processes we may inspect (same uid, or all as root)."""
    found = []
    me = os.getpid()
    for p in psutil.process_iter(["pid"]):
        if p.pid == me:
            continue
        try:
            if p.environ().get(key) == value:
                found.append(p)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess, OSError):
            continue
    return found


def catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (the SigCgt mask in /proc)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    except (OSError, ValueError):
        return False
    return False


def same_process(pid: int, create_time: float | None) -> bool:
    """A pid is not an identity: compare the start time recorded when we launched it
    (without one, a pid names nothing we may signal)."""
    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is not None and abs(p.create_time() - create_time) < 0.01
    except psutil.NoSuchProcess:
        return False
