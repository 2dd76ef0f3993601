"""What the hostile-student tests share: a task built as ``submit`` writes it, its files
copied as a student's transport leaves them, and a remoted under test whose published
statuses are read and waited on.

Two suites play a student's transport by hand against a real remoted:
``tests/integration/test_hostile_remote.py`` (forged files in a user area) and
``tests/security/`` (two real students racing, through ``hostile_site.Site``).  They stage
uploads differently (the races need the student's own uid and hidden names inside her
area), but what a task is, how its status is read and when a wait gives up must be one
and the same, or one suite would trust what the other has learnt not to.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from ailabber.storage.spool import UPLOAD_MEMBERS, Spool
from ailabber.workstation.submit import submit
from testbed.pipeline import TERMINAL, Pipeline, task_processes


def submit_project(proj: Path, stage: Path, commands: list[str], *, gpus: int,
                   time_limit: str) -> tuple[str, Path]:
    """Write ``task_config.toml`` into ``proj`` (which may already hold files) and submit it
    into a fresh spool at ``stage``: returns the task id and its directory exactly as
    ``submit`` writes it (task.toml, meta, files, manifest)."""
    cmds = ", ".join(json.dumps(c) for c in commands)
    (proj / "task_config.toml").write_text(
        f'[resources]\ngpus = {gpus}\ntime_limit = "{time_limit}"\n[run]\ncommands = [{cmds}]\n')
    spool = Spool(stage)
    res = submit(proj / "task_config.toml", spool)
    return res.task_id, spool.root / "new" / res.task_id


def copy_upload(task_dir: Path, stage: Path) -> None:
    """The members spoold uploads, copied from ``task_dir`` into ``stage`` (which exists);
    symlinks stay symlinks, as rsync ``-l`` keeps them."""
    for m in UPLOAD_MEMBERS:
        src = task_dir / m
        if src.is_dir():
            shutil.copytree(src, stage / m, symlinks=True)
        else:
            shutil.copy2(src, stage / m)


class RemotedUnderTest:
    """A remoted (``self.p``'s ``remoted``) serving ``self.root``, the tasks it was given
    (``self.ids``) and the scratch tree ``self.base``; subclasses set all four."""

    base: Path
    root: Path
    p: Pipeline
    ids: list[str]

    def outbox(self, user: str, task_id: str) -> Path:
        return self.root / "users" / user / "outbox" / task_id

    def status(self, user: str, task_id: str) -> dict[str, Any] | None:
        """The task's published status, or None while there is none readable.  Never
        through a symlink: the outbox lies in the student's area, and a status she planted
        by a link must not pass for remoted's."""
        try:
            fd = os.open(self.outbox(user, task_id) / "status.json", os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as fh:
                return dict(json.loads(fh.read()))
        except (ValueError, TypeError):
            return None

    def wait(self, user: str, task_id: str, pred: Callable[[dict[str, Any]], bool], timeout: float = 30,
             what: str = "") -> dict[str, Any]:
        """The first status that satisfies ``pred``; fails at the timeout, or at once once
        remoted has exited (nothing would change any more), with the daemons' log tail."""
        deadline = time.monotonic() + timeout
        st: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            st = self.status(user, task_id)
            if st is not None and pred(st):
                return st
            if not self.alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"{user}/{task_id}: timed out waiting for {what or pred}; last status {st}\n"
                             f"{self.p.daemon_logs()[-4000:]}")

    def wait_terminal(self, user: str, task_id: str, timeout: float = 30) -> dict[str, Any]:
        return self.wait(user, task_id, lambda s: s["state"] in TERMINAL, timeout, "a final state")

    def alive(self) -> bool:
        proc = self.p.procs.get("remoted")
        return proc is not None and proc.poll() is None

    def stop(self) -> None:
        """Stop the daemons, kill whatever of the tasks still runs (a test that failed may
        leave jobs behind) and remove the scratch tree."""
        self.p.stop_all()
        for task_id in self.ids:
            for proc in task_processes(task_id):
                try:
                    proc.kill()
                except psutil.Error:
                    pass
        shutil.rmtree(self.base, ignore_errors=True)
