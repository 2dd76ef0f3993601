"""What remoted reads of a running job, without trusting the student's directory.

The job wrapper runs as the student and writes ``started.json`` and ``result.json`` into
the task's ``run/`` directory, which the student can change at any moment: rename it,
swap it (or any directory above it inside their area) for a symlink to another
student's task, or put a hard link or FIFO in place of a file.  remoted may run as root,
so it reads these files only through directory handles opened from the admin's root
without following a symlink at any component, and only when the file opened is a
regular file owned by the task's own user.  What such a file says is still only the
student's word about their own task: remoted checks it against the state machine.

The exactly-once lock of the local scheduler lives outside the student's reach, in
``state/jobs/<user>/<id>.lock`` (root-owned when remoted is root).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ailabber.model.remote_layout import JOBS, STATE, valid_user
from ailabber.model.task import CANCELED, COMPLETED, FAILED, TERMINATED, parse_iso
from ailabber.storage import fsutil
from ailabber.storage.safedir import open_beneath
from remoted.jobspec import RESULT_FILE, STARTED_FILE

#: The biggest record a job may write; anything larger is not a record.
MAX_RECORD_BYTES = 1 << 20


class JobFiles:
    """Reads the wrapper's records and names the jobs' lock files, for one remote root."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def read(self, run_dir: str, name: str, uid: int | None) -> dict[str, Any] | None:
        """The JSON object ``run_dir/name``, or None when it is missing, not a regular
        file owned by ``uid`` (when remoted is root), reached through a symlink, or not
        an object."""
        try:
            parts = Path(run_dir).relative_to(self.root).parts
        except ValueError:
            return None      # never read outside the root remoted owns
        if ".." in parts:
            return None
        owner = uid if os.geteuid() == 0 and uid is not None else None
        try:
            with open_beneath(self.root, parts) as d:
                data = json.loads(d.read_regular(name, MAX_RECORD_BYTES, owner))
        except (OSError, ValueError, RecursionError):
            return None
        return data if isinstance(data, dict) else None

    def result(self, run_dir: str, uid: int | None) -> dict[str, Any] | None:
        """``result.json`` as values of the types remoted expects, or None: a student can
        write anything there, and nothing of it may reach remoted's records unchecked."""
        return job_result(self.read(run_dir, RESULT_FILE, uid))

    def started(self, run_dir: str, uid: int | None) -> dict[str, Any] | None:
        """``started.json`` likewise."""
        return job_started(self.read(run_dir, STARTED_FILE, uid))

    def exists(self, run_dir: str, name: str) -> bool:
        """Whether ``run_dir/name`` is there (whatever it is), seen through handles."""
        try:
            parts = Path(run_dir).relative_to(self.root).parts
            with open_beneath(self.root, parts) as d:
                d.lstat(name)
            return True
        except (OSError, ValueError):
            return False

    def lock_path(self, user: str, task_id: str, *, create: bool = False) -> Path:
        """The job's lock file, in a directory only remoted can write.  ``create`` makes
        that directory, which only a submit needs: polls and lookups run on every pass
        and treat a missing lock like a free one."""
        if not valid_user(user) or "/" in task_id or task_id.startswith("."):
            raise ValueError(f"bad job name {user!r}/{task_id!r}")
        d = self.root / STATE / JOBS / user
        if create:
            fsutil.ensure_dirs(d, mode=0o700)
        return d / f"{task_id}.lock"


#: The longest message or reason kept from a job's own record.
MAX_TEXT = 1000


def job_result(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """The fields of a wrapper's result record that remoted uses, each of its type, or
    None when the record is no usable result (pure: tested alone)."""
    if data is None or data.get("state") not in (COMPLETED, FAILED, TERMINATED, CANCELED):
        return None
    return {"state": data["state"], "reason": _word(data.get("reason")),
            "exit_code": _int(data.get("exit_code")), "message": _text(data.get("message")),
            "started_at": _time(data.get("started_at")), "finished_at": _time(data.get("finished_at"))}


def job_started(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """The fields of a wrapper's start record that remoted uses, each of its type."""
    if data is None:
        return None
    gpus = data.get("gpus")
    job_id = data.get("slurm_job_id")
    return {"pid": _int(data.get("pid")), "phase": "setup" if data.get("phase") == "setup" else "commands",
            "started_at": _time(data.get("started_at")),
            "gpus": [g for g in gpus if _int(g) is not None] if isinstance(gpus, list) else [],
            "slurm_job_id": str(job_id) if isinstance(job_id, (int, str)) and str(job_id).isdigit() else None}


def _int(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and -2**31 <= v < 2**31 else None


def _word(v: object) -> str | None:
    """A reason: a short identifier, as the wrapper writes them."""
    return v if isinstance(v, str) and 0 < len(v) <= 64 and v.replace("_", "").isalnum() else None


def _text(v: object) -> str | None:
    return v[:MAX_TEXT] if isinstance(v, str) else None


def _time(v: object) -> str | None:
    return v if isinstance(v, str) and len(v) <= 64 and parse_iso(v) is not None else None
