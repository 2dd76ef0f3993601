"""Real Unix users and a Python they can run, for tests of identity and isolation.

Students' jobs run under their own uid, so the tests need real accounts (made with
useradd, as root) and an interpreter outside root's home: a virtualenv in a world-readable
directory, built once per session from the system Python with ailabber installed in it.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def can_make_users() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "root (to create users and run jobs as them)"
    if not shutil.which("useradd"):
        return False, "useradd"
    if not _system_python():
        return False, "a system Python 3.10+ outside /root (/usr/bin/python3)"
    return True, ""


def _system_python() -> str | None:
    for cand in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        r = subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], capture_output=True, text=True)
        try:
            return pwd.getpwnam(name)      # made now, or by a test session running beside this one
        except KeyError:
            raise RuntimeError(f"useradd {name}: {r.stderr.strip()}") from None


def ensure_group(name: str, members: tuple[str, ...] = ()) -> grp.struct_group:
    """A real Unix group with ``members`` among its supplementary members (as course staff
    in remoted.yaml's ``admin_group``); made or completed as needed, never emptied."""
    try:
        grp.getgrnam(name)
    except KeyError:
        subprocess.run(["groupadd", name], capture_output=True)     # or made meanwhile beside us
    for member in members:
        ensure_user(member)
        if member not in grp.getgrnam(name).gr_mem:
            subprocess.run(["usermod", "--append", "--groups", name, member], check=True, capture_output=True)
    return grp.getgrnam(name)


def login_as(name: str) -> dict[str, Any]:
    """``subprocess`` arguments that run a command as ``name`` with the groups a login
    gives them (primary and supplementary, from the group database), and nothing of root's."""
    pw = pwd.getpwnam(name)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": os.getgrouplist(name, pw.pw_gid)}


def set_member(user: str, group: str, member: bool) -> None:
    """Add ``user`` to ``group`` (a supplementary group) or take them out of it, in the
    group database itself: what remoted reads when it checks a request's owner."""
    import grp

    if (user in grp.getgrnam(group).gr_mem) == member:
        return
    subprocess.run(["gpasswd", "-a" if member else "-d", user, group], check=True, capture_output=True)


def shared_python() -> Path:
    """A world-usable virtualenv with ailabber (editable) and uv; returns its python."""
    base = Path(tempfile.mkdtemp(prefix="ailabber-py-"))
    os.chmod(base, 0o755)
    uv = shutil.which("uv") or "uv"
    venv = base / "venv"
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never")
    subprocess.run([uv, "venv", "--quiet", "--python", _system_python() or "python3", str(venv)],
                   check=True, env=env, capture_output=True)
    subprocess.run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
                    "-e", str(REPO), "uv"], check=True, env=env, capture_output=True)
    for dirpath, dirnames, filenames in os.walk(base):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode | 0o055)
    return venv / "bin" / "python"


def world_dir(prefix: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(d, 0o755)
    return d


def chown_tree(path: Path, user: str) -> None:
    pw = pwd.getpwnam(user)
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, pw.pw_uid, pw.pw_gid)
        for n in filenames:
            os.chown(os.path.join(dirpath, n), pw.pw_uid, pw.pw_gid, follow_symlinks=False)
