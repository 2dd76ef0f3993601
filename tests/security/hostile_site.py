"""Two real students on one cluster root, remoted running as root, and the attacker's
tools: her uploads (files owned by her, as her transport leaves them), her swap loop
(``swaploop.py``, run as her uid) and the checks of what must never happen.

The attacker is ``ailabber-mal``, the victim ``ailabber-vic``.  The victim's finished task
carries a unique secret in its command line, its output and its result message, and its
command leaves a marker file named after the uid that ran it, so a victim command run in
the attacker's task (as her) is seen at once.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from ailabber.storage.spool import MANIFEST
from testbed.pipeline import TERMINAL, Pipeline, shared_root, student_area
from testbed.unix_users import chown_tree, ensure_user, world_dir
from tests.hostile_common import RemotedUnderTest, copy_upload, submit_project

ATTACKER, VICTIM = "ailabber-mal", "ailabber-vic"
SWAPLOOP = Path(__file__).with_name("swaploop.py")
SYSTEM_PYTHON = "/usr/bin/python3"


def ensure_students() -> None:
    for name in (ATTACKER, VICTIM):
        ensure_user(name)


def pw(user: str) -> pwd.struct_passwd:
    return pwd.getpwnam(user)


def as_user(user: str) -> dict[str, Any]:
    """``subprocess`` arguments that run a process as ``user`` and nothing more."""
    p = pw(user)
    return {"user": p.pw_uid, "group": p.pw_gid, "extra_groups": []}


def user_env(user: str) -> dict[str, str]:
    p = pw(user)
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": p.pw_dir, "USER": user, "LOGNAME": user}


# --------------------------------------------------------------------------- the attack loop


class SwapLoop:
    """``swaploop.py`` running as ``user`` (started at once; ``result()`` waits for it)."""

    def __init__(self, user: str, swaps: list[dict[str, Any]], *, seconds: float = 5.0, rounds: int = 5_000_000,
                 hold: float = 0.0, setup: list[list[str]] | None = None, stop_file: Path | None = None):
        cfg = {"swaps": swaps, "seconds": seconds, "rounds": rounds, "hold": hold, "setup": setup or [],
               "stop_file": str(stop_file) if stop_file else None}
        self.seconds = seconds
        self.proc = subprocess.Popen([SYSTEM_PYTHON, "-I", "-c", SWAPLOOP.read_text(), json.dumps(cfg)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=user_env(user), cwd="/", **as_user(user))

    def result(self) -> dict[str, Any]:
        out, err = self.proc.communicate(timeout=self.seconds + 30)
        if self.proc.returncode != 0:
            raise AssertionError(f"the swap loop failed ({self.proc.returncode}): {err}")
        return dict(json.loads(out))


def swap(a: Path | list[Path], target: Path | str, *, tmp: Path | None = None, plant: bool = False,
         sticky: bool = False, until: Path | None = None, when: Path | None = None,
         after: Path | None = None) -> dict[str, Any]:
    first = a if isinstance(a, Path) else a[0]
    return {"a": str(a) if isinstance(a, Path) else [str(p) for p in a],
            "tmp": str(tmp or first.with_name(f".{first.name}-swap")), "target": str(target),
            "plant": plant, "sticky": sticky, "until": str(until) if until else None,
            "when": str(when) if when else None, "after": str(after) if after else None}


# --------------------------------------------------------------------------- the site


class Site(RemotedUnderTest):
    """A cluster root with the two students' areas and one remoted (as root)."""

    def __init__(self, py: Path, prefix: str, *, kill_grace: float = 1.0, gpus: int = 0,
                 remoted_extra: dict[str, Any] | None = None):
        ensure_students()
        self.base = world_dir(prefix)
        self.root = shared_root(self.base)
        self.py = py
        for user in (ATTACKER, VICTIM):
            area = student_area(self.root, user)
            for d in ("incoming/tmp", "incoming/commit", "requests"):
                (area / d).mkdir(parents=True, exist_ok=True)
            chown_tree(area, user)
        # Where the victim's command leaves its marker (named after the uid that ran it).
        self.markers = self.base / "markers"
        self.markers.mkdir()
        os.chmod(self.markers, 0o777)
        self.p = Pipeline(self.base / "daemon", gpus=gpus, kill_grace=kill_grace, root=self.root,
                          home=self.base / "unused-home",
                          remoted_extra={"job_python": str(py), "signal_before_timeout": 0,
                                         **(remoted_extra or {})})
        self._n = 0
        self.ids: list[str] = []

    def start(self) -> None:
        self.p.start("remoted")

    def area(self, user: str) -> Path:
        return self.root / "users" / user

    def task_dir(self, user: str, task_id: str) -> Path:
        return self.area(user) / "tasks" / task_id

    # --- uploads, as the student's transport leaves them ---------------------------------
    def build(self, commands: list[str], *, time_limit: str = "1:00", gpus: int = 0) -> tuple[str, Path]:
        self._n += 1
        proj = self.base / "projects" / f"p{self._n}"
        proj.mkdir(parents=True)
        task_id, task_dir = submit_project(proj, self.base / "stage" / f"s{self._n}", commands, gpus=gpus,
                                           time_limit=time_limit)
        self.ids.append(task_id)
        return task_id, task_dir

    def upload(self, user: str, task_id: str, task_dir: Path, *, commit: bool = True) -> None:
        """The files, owned by the student, renamed into ``incoming/tmp/<id>`` at once
        (as a finished rsync leaves them), then the commit marker (hidden name, rename)."""
        stage = self.area(user) / "incoming" / "tmp" / f".stage-{task_id}"
        stage.mkdir()
        copy_upload(task_dir, stage)
        chown_tree(stage, user)
        os.rename(stage, self.area(user) / "incoming" / "tmp" / task_id)
        if commit:
            self.commit(user, task_id, task_dir)

    def commit(self, user: str, task_id: str, task_dir: Path) -> None:
        d = self.area(user) / "incoming" / "commit"
        tmp = d / f".{task_id}.json.tmp"
        tmp.write_bytes((task_dir / MANIFEST).read_bytes())
        os.chown(tmp, pw(user).pw_uid, pw(user).pw_gid)
        os.rename(tmp, d / f"{task_id}.json")

    def push(self, user: str, commands: list[str], **kw: Any) -> str:
        task_id, task_dir = self.build(commands, **kw)
        self.upload(user, task_id, task_dir)
        return task_id

    # --- what remoted published (status, wait, alive, stop: from RemotedUnderTest) ------
    def settle(self, user: str, task_ids: list[str], timeout: float = 30) -> dict[str, dict[str, Any] | None]:
        """Wait (bounded) until every task shows a final state; returns the last statuses.
        A hostile student may leave her own task in any state: this never fails."""
        deadline = time.monotonic() + timeout
        last: dict[str, dict[str, Any] | None] = {}
        while time.monotonic() < deadline:
            last = {t: self.status(user, t) for t in task_ids}
            if all(self.finished(user, t, s) for t, s in last.items()):
                break
            time.sleep(0.1)
        return last

    def finished(self, user: str, task_id: str, status: dict[str, Any] | None = None) -> bool:
        """Final as published, or as remoted's private record says (her outbox may have
        been moved away by her own attack, taking the published status with it)."""
        if status is not None and status.get("state") in TERMINAL:
            return True
        return (self.root / "state" / "done" / user / f"{task_id}.json").exists()

    def repair_area(self, user: str) -> None:
        """Undo what an attack left at the top of a student's area (between tests)."""
        area = self.area(user)
        for name in os.listdir(area):
            path = area / name
            if name in ("tasks", "outbox") and path.is_symlink():
                path.unlink()
            elif name.startswith("."):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink()


# --------------------------------------------------------------------------- the victim


class VictimTask:
    """A finished task of the victim's whose every trace carries ``secret``."""

    def __init__(self, site: Site):
        self.secret = f"VICTIM-SECRET-{uuid.uuid4().hex}"
        cmd = f"echo {self.secret}; echo ran > {site.markers}/ran-by-uid-$(id -u); exit 3"
        self.id = site.push(VICTIM, [cmd])
        st = site.wait_terminal(VICTIM, self.id, timeout=60)
        assert (st["state"], st["reason"]) == ("failed", "nonzero_exit"), st
        assert self.secret in st["message"], st
        self.dir = site.task_dir(VICTIM, self.id)
        self.run = self.dir / "run"
        self.outbox = site.outbox(VICTIM, self.id)
        self.logs = self.outbox / "logs"
        self.toml = self.dir / "task.toml"
        assert self.secret in (self.logs / "output.log").read_text()


# --------------------------------------------------------------------------- what must never happen


#: What remoted itself rewrites in every area from time to time (its signs of life).
AREA_HEARTBEATS = ("remoted.json", "limits.json")


def listing(path: Path, ignore: tuple[str, ...] = AREA_HEARTBEATS) -> dict[str, tuple[Any, ...]]:
    """Every entry below ``path`` (symlinks not followed): type, owner, mode and content;
    ``ignore`` names entries directly in ``path`` to leave out."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            if dirpath == str(path) and name in ignore:
                continue
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            rel = os.path.relpath(full, path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", st.st_uid, os.readlink(full))
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as fh:
                    out[rel] = ("file", st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), fh.read())
            else:
                out[rel] = ("other" if not stat.S_ISDIR(st.st_mode) else "dir", st.st_uid, st.st_gid,
                            stat.S_IMODE(st.st_mode))
    return out


def changes(before: dict[str, tuple[Any, ...]], after: dict[str, tuple[Any, ...]]) -> list[str]:
    out = [f"new: {k} {after[k][:3]}" for k in sorted(after.keys() - before.keys())]
    out += [f"gone: {k}" for k in sorted(before.keys() - after.keys())]
    out += [f"changed: {k} {before[k][:4]} -> {after[k][:4]}" + (f" (now {after[k][4][-200:]!r})"
                                                                  if len(after[k]) > 4 else "")
            for k in sorted(before.keys() & after.keys()) if before[k] != after[k]]
    return out


def files_containing(path: Path, needle: str) -> dict[tuple[int, int], str]:
    """Regular files below ``path`` (never through a symlink) that contain ``needle``,
    by (device, inode): a file merely moved since an earlier look is the same file."""
    found: dict[tuple[int, int], str] = {}
    raw = needle.encode()
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            full = os.path.join(dirpath, name)
            try:
                fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                st = os.fstat(fd)
                if stat.S_ISREG(st.st_mode):
                    with os.fdopen(os.dup(fd), "rb") as fh:
                        if raw in fh.read():
                            found[(st.st_dev, st.st_ino)] = full
            finally:
                os.close(fd)
    return found


def entries(path: Path) -> list[str]:
    return [f"{p.name} (uid {p.lstat().st_uid})" for p in sorted(path.iterdir())]


def root_only_dir(base: Path, name: str) -> Path:
    """A fresh directory owned by root, mode 0755: no student may create anything in it."""
    d = base / name
    d.mkdir()
    os.chown(d, 0, 0)
    os.chmod(d, 0o755)
    return d


def marker_processes(marker: str) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in (p.info["cmdline"] or [])):
                out.append(p)
        except psutil.Error:
            continue
    return out
