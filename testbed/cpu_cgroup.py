"""CPU accounting of a group of processes, from the kernel: one cgroup v2 per group.

A benchmark that asks what the login node spends on students' sessions cannot sum the
processes it sees: sshd forks a process per connection and per session, the forced
command and rsync live for a fraction of a second, and an ssh ControlMaster daemonizes
away from its parent.  A cgroup keeps them all, children included, whatever they do with
their process tree, and ``cpu.stat``'s ``usage_usec`` counts every microsecond of CPU its
members ever used, those that have exited included.  cgroup v2 reports ``cpu.stat`` in
every cgroup, with or without the cpu controller; the group is made below the cgroup this
process is in, as remoted makes its jobs' cgroups (``remoted/containment.py``).
"""

from __future__ import annotations

import os
import pwd
import time
from pathlib import Path

from remoted.containment import Mounts


class Unaccountable(RuntimeError):
    """No writable cgroup v2 here (not root, or no cgroup2 mount)."""


class CpuCgroup:
    def __init__(self, name: str):
        base = Mounts.of_this_process().v2
        if base is None or os.geteuid() != 0:
            raise Unaccountable("CPU accounting needs root and a cgroup v2 mount")
        self.path = base / f"ailabber-acct-{name}-{os.getpid()}"
        try:
            self.path.mkdir()
        except OSError as exc:
            raise Unaccountable(f"cannot make a cgroup at {self.path}: {exc}") from None
        if not (self.path / "cpu.stat").exists():
            self.remove()
            raise Unaccountable(f"{self.path} has no cpu.stat")

    def add(self, pid: int) -> None:
        """Move ``pid`` into the group; the children it makes from now on are in it too."""
        (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def prefix_as(self, user: str) -> list[str]:
        """A command prefix, run as root, that joins this group and then becomes ``user``
        for good (``setpriv``): every process the command starts is counted from its first
        instruction."""
        pw = pwd.getpwnam(user)
        return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(self.path),
                "setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]

    def usage_usec(self) -> int:
        for line in (self.path / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value)
        raise Unaccountable(f"{self.path}/cpu.stat has no usage_usec")

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def remove(self, timeout: float = 10.0) -> None:
        """Remove the group once its members are gone; stragglers are moved to the parent
        (never killed: this only accounts, it does not own them)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    for pid in self.pids():
                        try:
                            (self.path.parent / "cgroup.procs").write_text(f"{pid}\n")
                        except OSError:
                            pass
                    try:
                        self.path.rmdir()
                    except OSError:
                        pass
                    return
                time.sleep(0.1)

