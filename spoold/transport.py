"""How spoold reaches the remote spool: rsync, and nothing but rsync.

Every remote operation is an rsync transfer into or out of the user's own directory, so
the same code works between two local paths (the ``local`` transport) and, later, over
ssh to a key an admin has pinned with ``rrsync``.  Batches (``--files-from``) keep the
number of rsync runs per pass constant, however many tasks are active.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ailabber.remote_layout import INCOMING_COMMIT, INCOMING_TMP, OUTBOX, REQUESTS, TASKS

RSYNC_BASE = ("-rlpt", "--no-devices", "--no-specials", "--mkpath")


class TransportError(RuntimeError):
    """A transfer failed; the message is one plain line (rsync's own last words)."""


@dataclass
class PushResult:
    bytes_total: int
    bytes_sent: int


class RsyncTransport:
    """``remote_user_dir`` is how rsync spells the user's remote directory: a local path
    for the local transport (``/srv/ailabber/users/alice``)."""

    name = "local"

    def __init__(self, remote_user_dir: str, rsync: str = "rsync", timeout: int = 60):
        self.remote = remote_user_dir.rstrip("/")
        self.rsync = shutil.which(rsync) or rsync
        self.timeout = timeout

    # --- plumbing ------------------------------------------------------------------------
    def _remote(self, rel: str) -> str:
        return f"{self.remote}/{rel}"

    def _run(self, args: Sequence[str], what: str) -> str:
        cmd = [self.rsync, *RSYNC_BASE, f"--timeout={self.timeout}", *args]
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=self.timeout * 4)
        except FileNotFoundError:
            raise TransportError("rsync is not installed (needed to move tasks)") from None
        except subprocess.TimeoutExpired:
            raise TransportError(f"{what}: rsync made no progress for {self.timeout * 4}s") from None
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            detail = lines[0] if lines else f"exit {proc.returncode}"
            raise TransportError(f"{what}: rsync exit {proc.returncode}: {detail}")
        return proc.stdout

    # --- the contract --------------------------------------------------------------------
    def prepare(self) -> None:
        """Make sure the user's remote directory has its fixed sub-directories."""
        if not self.remote.startswith(("/", ".")):
            return
        for rel in (INCOMING_TMP, INCOMING_COMMIT, REQUESTS, TASKS, OUTBOX):
            os.makedirs(self._remote(rel), exist_ok=True)

    def push_task(self, task_id: str, task_dir: Path, members: Sequence[str], manifest_file: Path) -> PushResult:
        """Upload the members of ``task_dir`` into ``incoming/tmp/<id>/``, then the manifest
        as ``incoming/commit/<id>.json``: only the second transfer makes it a task."""
        srcs = [str(task_dir / m) for m in members]
        out = self._run(["--stats", *srcs, self._remote(f"{INCOMING_TMP}/{task_id}/")], f"upload of {task_id}")
        self._run([str(manifest_file), self._remote(f"{INCOMING_COMMIT}/{task_id}.json")], f"commit of {task_id}")
        return PushResult(_stat(out, "Total file size"), _stat(out, "Total transferred file size"))

    def send_request(self, task_id: str, kind: str, request_file: Path) -> None:
        self._run([str(request_file), self._remote(f"{REQUESTS}/{task_id}.{kind}")], f"{kind} request for {task_id}")

    def pull_status(self, task_ids: Sequence[str], dest: Path) -> None:
        """status.json and events.jsonl of each task into ``dest/<id>/`` (small: checksummed)."""
        rels = [f"{t}/{name}" for t in task_ids for name in ("status.json", "events.jsonl")]
        self._pull_list(rels, dest, ["--checksum"], "status pull")

    def pull_logs(self, task_ids: Sequence[str], dest: Path) -> None:
        """The logs directories, appending to what we already have: a growing log is not
        copied again from the start on every pass."""
        rels = [f"{t}/logs/" for t in task_ids]
        self._pull_list(rels, dest, ["--append", "-r"], "log pull")

    def pull_results(self, task_id: str, workdir_rel: str, paths: Sequence[str], dest: Path) -> None:
        """``paths`` (relative to the task's workdir) into ``dest`` with the same relative
        names; missing ones are skipped (a failed job may not have written them)."""
        if not paths:
            return
        base = f"{TASKS}/{task_id}/files" + ("" if workdir_rel in ("", ".") else f"/{workdir_rel}")
        srcs = [self._remote(f"{base}/./{p}") for p in paths]
        os.makedirs(dest, exist_ok=True)
        self._run(["-R", "--ignore-missing-args", *srcs, f"{dest}/"], f"result pull of {task_id}")

    def _pull_list(self, rels: list[str], dest: Path, extra: list[str], what: str) -> None:
        if not rels:
            return
        os.makedirs(dest, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", prefix="ailabber-files-", suffix=".txt") as fh:
            fh.write("\n".join(rels) + "\n")
            fh.flush()
            self._run([*extra, "--ignore-missing-args", f"--files-from={fh.name}",
                       self._remote(OUTBOX) + "/", f"{dest}/"], what)


def _stat(out: str, label: str) -> int:
    for line in out.splitlines():
        if line.startswith(label + ":"):
            digits = "".join(ch for ch in line.split(":", 1)[1].split("bytes")[0] if ch.isdigit())
            return int(digits or 0)
    return 0
