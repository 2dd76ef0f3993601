"""The remote spool's layout, shared by spoold (which writes into it through rsync) and
remoted (which owns it).

``<root>/users/<user>/`` is everything one student's transport may touch (an admin pins
a student's ssh key to exactly that directory with rrsync).  Everything remoted must be
able to trust lives outside it, in ``<root>/state/``.

    users/<user>/incoming/tmp/<id>/      upload in progress (spoold writes)
    users/<user>/incoming/commit/<id>.json  manifest: the upload is complete (spoold writes)
    users/<user>/requests/<id>.cancel    a cancel request (spoold writes)
    users/<user>/tasks/<id>/             the accepted task: task.toml, meta.json, files/, run/
                                         (tasks/ itself is remoted's, root-owned)
    users/<user>/outbox/<id>/            what spoold pulls: status.json, events.jsonl, logs/
                                         (with the job's logs/metrics.jsonl)
    users/<user>/outbox/queue.json       where the user's waiting tasks stand (remoted writes)
    state/active/<user>/<id>.json        remoted's own record of an unfinished task
    state/done/<user>/<id>.json          ... and of a finished one
    state/jobs/<user>/<id>.lock          the local scheduler's exactly-once lock
    state/owed/<user>/<id>               an outbox behind its record (republished after a restart)
    state/disk/<user>.json               the bytes remoted last measured in the user's area
    state/holds.json                     the staff's holds on the queue (remoted writes)
    state/limits.json                    the staff's per-student limit overrides (remoted writes)
    admin/requests/<id>.json             a staff request (ailabber admin writes; only staff can)
    admin/replies/<id>.json              remoted's answer to it
    admin/audit.jsonl                    every staff request, who asked and what came of it
    envs/                                cached Python environments
    remoted.lock, heartbeat.json
"""

from __future__ import annotations

import re
from pathlib import Path

USERS = "users"
INCOMING = "incoming"
TMP = "tmp"                 # below incoming/
COMMIT = "commit"           # below incoming/
INCOMING_TMP = f"{INCOMING}/{TMP}"
INCOMING_COMMIT = f"{INCOMING}/{COMMIT}"
REQUESTS = "requests"
TASKS = "tasks"
OUTBOX = "outbox"
QUEUE_FILE = "queue.json"   # in outbox/: where the user's waiting tasks stand (model.queueinfo)
LOGS = "logs"
METRICS = "metrics.jsonl"     # below logs/: what the job appends to $AILABBER_METRICS
RUN = "run"
DAEMON_LOCK = "remoted.lock"   # at the root: held by the running remoted
# remoted's own state, out of every student's reach: records of active and finished tasks
# and each student's last measured disk use (readable by the course staff's admin_group),
# publications owed after a write failed, the local jobs' lock files (remoted's only).
STATE, ACTIVE, DONE, OWED, JOBS, DISK = "state", "active", "done", "owed", "jobs", "disk"
HOLDS_FILE = "holds.json"           # in state/: the staff's holds
LIMIT_OVERRIDES = "limits.json"     # in state/: the staff's per-student limits
# The staff's side: requests only staff can write, remoted's replies and its audit log.
ADMIN, ADMIN_REQUESTS, ADMIN_REPLIES, AUDIT_LOG = "admin", "requests", "replies", "audit.jsonl"

# Unix user names as useradd accepts them: a directory name can never smuggle a path.
# Matched with ``fullmatch``: ``$`` would also accept a trailing newline.
USER_RE = re.compile(r"[a-z_][a-z0-9_.-]{0,31}\$?")


def valid_user(name: str) -> bool:
    return USER_RE.fullmatch(name) is not None and name not in (".", "..")


class UserArea:
    """One user's directory under ``<root>/users``."""

    def __init__(self, root: Path, user: str):
        if not valid_user(user):
            raise ValueError(f"not a valid user name: {user!r}")
        self.user = user
        self.path = Path(root) / USERS / user

    @property
    def incoming_tmp(self) -> Path:
        return self.path / INCOMING_TMP

    @property
    def incoming_commit(self) -> Path:
        return self.path / INCOMING_COMMIT

    @property
    def requests(self) -> Path:
        return self.path / REQUESTS

    @property
    def tasks(self) -> Path:
        return self.path / TASKS

    @property
    def outbox(self) -> Path:
        return self.path / OUTBOX

    def task(self, task_id: str) -> Path:
        return self.tasks / task_id

    def task_outbox(self, task_id: str) -> Path:
        return self.outbox / task_id

    def dirs(self) -> list[Path]:
        return [self.incoming_tmp, self.incoming_commit, self.requests, self.tasks, self.outbox]
