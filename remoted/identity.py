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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ailabber.daemonkit.remoted_settings import DEFAULT_JOB_PATH


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


#: How the machine reaches the network (proxies, the site's certificate authorities):
#: the admin's setting in remoted's environment, passed to the job wrapper (uv needs them
#: to download packages) and to the commands (to download data).  Nothing secret of
#: remoted's own travels with them.
NETWORK_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                "no_proxy", "all_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
                "CURL_CA_BUNDLE")


def run_as_arg(uid: int | None, gid: int | None) -> str | None:
    """``UID:GID:GROUPS`` for the job wrapper's ``--run-as`` (it switches itself after
    joining its cgroup); None when no switch is needed (remoted is not root)."""
    kwargs = popen_kwargs(uid, gid)
    if not kwargs:
        return None
    groups = ",".join(str(g) for g in kwargs["extra_groups"])
    return f"{kwargs['user']}:{kwargs['group'] if kwargs['group'] is not None else kwargs['user']}:{groups}"


def user_env(uid: int | None) -> dict[str, str]:
    """HOME/USER/LOGNAME of the account a job runs as (the daemon's own otherwise)."""
    if uid is None:
        uid = os.geteuid()
    pw = pwd.getpwuid(uid)
    return {"HOME": pw.pw_dir, "USER": pw.pw_name, "LOGNAME": pw.pw_name}


def job_path(configured: str | None = None) -> str:
    """The ``PATH`` of a job: the admin's ``job_path`` setting, else a fixed default.

    Never remoted's own ``PATH``: that is root's, with its virtualenv, pyenv shims or cargo
    directories, so a task's ``python`` or ``uv`` would depend on how the daemon happened
    to be started.  uv and the wrapper's interpreter are passed by absolute path and need
    no entry here."""
    return configured or DEFAULT_JOB_PATH


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
