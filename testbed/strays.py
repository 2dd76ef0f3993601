"""A stray process, as a job that tries to outlive itself leaves one, and how to find it.

The stray detaches the way such jobs do: ``setsid nohup ... &`` gives it a session of its
own, started from a subshell that exits at once, so it is re-parented to init and is out
of the job's process tree even while the job still runs.  It carries a unique *marker* as one whole argument (never a job shell's,
whose single ``-c`` argument only contains it), and writes its own pid to a file once it
runs, so a test knows it really started before it looks for survivors.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
import uuid
from pathlib import Path

_STRAY = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(900)"
# On SIGTERM it forks and lets the parent die: a kill that lists a job's processes first
# (as proctrack/linuxproc and the job wrapper do) finds only the one that already left.
_RESPAWNING_STRAY = ("import os, signal, sys, time\n"
                     "signal.signal(signal.SIGTERM, lambda *_: os.fork() and os._exit(0))\n"
                     "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
                     "while True: time.sleep(900)\n")


def new_marker() -> str:
    return f"ailabber-stray-{uuid.uuid4().hex}"


def pid_dir(base: Path) -> Path:
    """A directory any job's user may write its stray's pid file to."""
    d = base / "strays"
    d.mkdir(exist_ok=True)
    d.chmod(0o777)
    return d


def detach_command(marker: str, pid_file: Path, *, respawn_on_sigterm: bool = False) -> str:
    """Shell words that start the stray in the background and return once it runs.

    *respawn_on_sigterm*: the stray answers SIGTERM with a fresh copy of itself, so only
    a kill of every process in the job at once (a cgroup) ends it."""
    code = _RESPAWNING_STRAY if respawn_on_sigterm else _STRAY
    stray = shlex.join([sys.executable, "-c", code, str(pid_file), marker])
    return (f"(setsid nohup {stray} </dev/null >/dev/null 2>&1 &); "
            f"until [ -s {shlex.quote(str(pid_file))} ]; do sleep 0.05; done")


def marked(marker: str) -> list[int]:
    """Pids of live (non-zombie) processes carrying *marker* as a whole argument."""
    found = []
    want = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if want in args and state not in ("Z", "X", "x"):
            found.append(int(entry.name))
    return found


def wait_gone(marker: str, timeout: float) -> list[int]:
    """Poll until no process carries *marker* or *timeout* passes; the survivors."""
    deadline = time.monotonic() + timeout
    left = marked(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = marked(marker)
    return left


def kill_marked(marker: str) -> None:
    """Clean-up after a test that found survivors: none may outlive the test run."""
    for pid in marked(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
