"""The local spool, Maildir-style.  The only code that moves task directories.

``spool/tmp/<id>``     being written by ``submit`` (invisible to everyone else)
``spool/new/<id>``     committed, waiting for spoold to send it
``spool/synced/<id>``  accepted by the remote side, not finished yet
``spool/done/<id>``    finished, logs and results pulled back
``spool/requests/``    ``<id>.cancel`` / ``<id>.fetch`` dropped by the CLI for spoold
``spool/outbox/<id>``  the last copy pulled from the remote side (status, events, logs)
``spool/outbox/queue.json``  where the waiting tasks stand (``ailabber.model.queueinfo``)

The stage a task is in is the directory it is in: ``ls`` tells the truth.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from ailabber.model import ids
from ailabber.model.task import TaskStatus
from ailabber.storage import fsutil, names, statusfile

TMP, NEW, SYNCED, DONE = "tmp", "new", "synced", "done"
STAGES = (NEW, SYNCED, DONE)
REQUESTS = "requests"
OUTBOX = "outbox"
QUEUE = "queue.json"          # in outbox/: where the waiting tasks stand, as remoted published it
REQUEST_KINDS = ("cancel", "fetch")
STALE_TMP_SECONDS = 24 * 3600
DAEMON_LOCK = "spoold.lock"   # held by the running spoold

# Members of a task directory that travel to the remote side.
TASK_TOML = "task.toml"
META = "meta.json"
MANIFEST = "manifest.json"
FILES = "files"
RESULTS = "results"
UPLOAD_MEMBERS = (TASK_TOML, META, FILES)


class Spool:
    def __init__(self, root: Path):
        self.root = Path(root)

    # --- layout -----------------------------------------------------------------------
    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    @property
    def requests_dir(self) -> Path:
        return self.root / REQUESTS

    @property
    def outbox_dir(self) -> Path:
        return self.root / OUTBOX

    def ensure(self) -> None:
        fsutil.ensure_dirs(
            *(self.stage_dir(s) for s in (TMP, *STAGES)), self.requests_dir, self.outbox_dir,
            mode=0o700,
        )

    def exists(self) -> bool:
        return self.stage_dir(NEW).is_dir()

    # --- lookup -----------------------------------------------------------------------
    def ids_in(self, stage: str) -> list[str]:
        try:
            names = os.listdir(self.stage_dir(stage))
        except FileNotFoundError:
            return []
        return sorted(n for n in names if ids.is_task_id(n))

    def all_ids(self) -> list[str]:
        out: list[str] = []
        for stage in STAGES:
            out.extend(self.ids_in(stage))
        return sorted(out)

    def locate(self, task_id: str) -> tuple[str, Path] | None:
        """Find a task's stage.  A task moving between stages while we look is found on a
        second pass, since renames go forward only."""
        for _attempt in range(2):
            for stage in STAGES:
                p = self.stage_dir(stage) / task_id
                if p.is_dir():
                    return stage, p
        return None

    def resolve(self, query: str) -> str:
        """The id ``query`` names: an id, a prefix or suffix of one, ``last`` or a task name."""
        return ids.resolve(query, self.all_ids(), named=lambda name: names.ids_named(self.root, name))

    def read_status(self, task_id: str) -> TaskStatus | None:
        loc = self.locate(task_id)
        if loc is None:
            return None
        st = statusfile.read_status(loc[1])
        if st is None:  # a rename raced our read: look again once
            loc = self.locate(task_id)
            st = statusfile.read_status(loc[1]) if loc else None
        return st

    # --- moves ------------------------------------------------------------------------
    def new_tmp_dir(self, task_id: str) -> Path:
        p = self.stage_dir(TMP) / task_id
        os.mkdir(p, 0o700)
        return p

    def commit(self, task_id: str) -> Path:
        """tmp -> new: from this rename on the task exists.  Everything under tmp/<id> is
        flushed first (one syncfs), then renamed, then the rename itself is flushed."""
        src = self.stage_dir(TMP) / task_id
        fsutil.sync_filesystem(src)
        dst = self.stage_dir(NEW) / task_id
        fsutil.commit_rename(src, dst)
        return dst

    def move(self, task_id: str, src_stage: str, dst_stage: str) -> Path:
        dst = self.stage_dir(dst_stage) / task_id
        fsutil.commit_rename(self.stage_dir(src_stage) / task_id, dst)
        return dst

    def discard_tmp(self, task_id: str) -> None:
        import shutil  # only on a failed submit: not on every command's start-up

        shutil.rmtree(self.stage_dir(TMP) / task_id, ignore_errors=True)

    def clean_stale_tmp(self, max_age: float = STALE_TMP_SECONDS, now: float | None = None) -> list[str]:
        """Remove what a crashed ``submit`` left in tmp/ (never committed, so never seen)."""
        now = time.time() if now is None else now
        removed = []
        for entry in self._scandir(self.stage_dir(TMP)):
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime > max_age:
                    if entry.is_dir(follow_symlinks=False):
                        import shutil

                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)
                    removed.append(entry.name)
            except FileNotFoundError:
                continue
        return removed

    # --- requests ---------------------------------------------------------------------
    def request_path(self, task_id: str, kind: str) -> Path:
        if kind not in REQUEST_KINDS:
            raise ValueError(f"unknown request kind {kind!r}")
        return self.requests_dir / f"{task_id}.{kind}"

    def drop_request(self, task_id: str, kind: str, body: str = "") -> Path:
        p = self.request_path(task_id, kind)
        fsutil.atomic_write_bytes(p, (body or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())).encode() + b"\n", 0o600)
        return p

    def requests(self) -> Iterator[tuple[str, str]]:
        for entry in self._scandir(self.requests_dir):
            name = entry.name
            if name.startswith("."):
                continue
            task_id, _, kind = name.rpartition(".")
            if ids.is_task_id(task_id) and kind in REQUEST_KINDS:
                yield task_id, kind

    def clear_request(self, task_id: str, kind: str) -> None:
        try:
            os.unlink(self.request_path(task_id, kind))
        except FileNotFoundError:
            pass

    def outbox(self, task_id: str) -> Path:
        return self.outbox_dir / task_id

    @staticmethod
    def _scandir(path: Path) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(path) as it:
                return list(it)
        except FileNotFoundError:
            return []
