"""Who a task runs as.

The user is the Unix owner of ``<root>/users/<name>`` as the kernel reports it: the admin
created that directory for that student, and only that student's transport can write into
it.  Nothing a student wrote in a file is consulted.  When remoted runs as root, jobs are
started with that user's uid, gid and groups; otherwise every job runs as remoted's own
account (see the README on what that means for isolation).
"""

from __future__ import annotations

import os
import pwd
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class IdentityError(RuntimeError):
    pass


@dataclass(frozen=True)
class RunAs:
    user: str
    uid: int
    gid: int
    home: str

    @property
    def is_current(self) -> bool:
        return self.uid == os.geteuid()


def privileged() -> bool:
    return os.geteuid() == 0


def current() -> RunAs:
    pw = pwd.getpwuid(os.geteuid())
    return RunAs(pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir)


def popen_kwargs(uid: int | None, gid: int | None) -> dict[str, Any]:
    """Arguments for ``subprocess.Popen`` that start a process as the task's user."""
    if not privileged() or uid is None or uid == os.geteuid():
        return {}
    name = pwd.getpwuid(uid).pw_name
    groups = os.getgrouplist(name, gid if gid is not None else uid)
    return {"user": uid, "group": gid, "extra_groups": groups}


def user_env(uid: int | None) -> dict[str, str]:
    """HOME/USER/LOGNAME of the account a job runs as (the daemon's own otherwise)."""
    if uid is None:
        uid = os.geteuid()
    pw = pwd.getpwuid(uid)
    return {"HOME": pw.pw_dir, "USER": pw.pw_name, "LOGNAME": pw.pw_name}


def job_path() -> str:
    """remoted's PATH without its own virtualenv: a task's ``python`` must be the task's
    (or the system's), never the one ailabber itself runs in."""
    own = {str(Path(sys.prefix) / "bin"), str(Path(sys.exec_prefix) / "bin")} if sys.prefix != sys.base_prefix else set()
    parts = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p not in own]
    return os.pathsep.join(parts) or "/usr/local/bin:/usr/bin:/bin"


def find_uv(job_python: str | None = None) -> str | None:
    """uv for jobs, passed to them by path: the one beside the job interpreter if there is
    one, else the one on remoted's own PATH (virtualenv included)."""
    if job_python:
        beside = Path(job_python).parent / "uv"
        if beside.exists():
            return str(beside)
    return shutil.which("uv")


def give(path: Path, uid: int | None, gid: int | None) -> None:
    """Hand a directory remoted created to the task's user (no-op unless root)."""
    if privileged() and uid is not None and uid != os.geteuid():
        os.chown(path, uid, gid if gid is not None else -1, follow_symlinks=False)
