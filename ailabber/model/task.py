"""The task's life as a student sees it: states, reasons and the status record.

Pure model: no I/O.  Both daemons and the CLI read and write status records through
``TaskStatus`` so that every place agrees on what a field means and which moves are legal.
"""

from __future__ import annotations

import time
from typing import Any

PENDING = "pending"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELED = "canceled"
TERMINATED = "terminated"

STATES = (PENDING, RUNNING, COMPLETED, FAILED, CANCELED, TERMINATED)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELED, TERMINATED})

#: Every reason ailabber itself sets, in plain words for the student.  Schedulers may add
#: their own (e.g. Slurm's pending reasons); ``explain`` falls back to the raw string.
REASONS: dict[str, str] = {
    "waiting_for_upload": "waiting for spoold to send it to the cluster",
    "uploading": "being sent to the cluster",
    "uploaded": "sent; waiting for the cluster to accept it",
    "too_large": "the upload is bigger than the cluster allows (see files.ignore)",
    "upload_rejected": "the cluster refused the upload",
    "queued": "accepted by the cluster, waiting for its turn",
    "waiting_for_gpu": "waiting for a free GPU",
    "user_limit": "held back: you reached your per-user limit",
    "launching": "being handed to the scheduler",
    "setting_up": "preparing the Python environment",
    "nonzero_exit": "a command exited with a non-zero code",
    "timeout": "the time limit was reached",
    "setup_failed": "the Python environment could not be built (see the setup log)",
    "launch_failed": "the scheduler refused to start the task",
    "unsatisfiable": "the task asks for more than the machine or cluster has",
    "rejected": "the cluster refused the task (invalid or incomplete upload)",
    "lost": "the job disappeared without leaving a result",
    "canceled_by_user": "you cancelled it",
    "canceled_by_staff": "course staff cancelled it",
    "held": "held by course staff; it starts once they release the hold",
    "killed": "the job was killed by a signal",
    "oom": "the job ran out of memory (raise resources.memory)",
    "node_fail": "the node running the job failed",
    "preempted": "the job was preempted by higher-priority work",
    "requeued": "put back in the queue by the scheduler",
    "suspended": "paused by the scheduler; it resumes by itself",
    "scheduler_unreachable": "the scheduler did not answer; ailabber keeps trying",
    # Slurm's pending reasons, in plain words.
    "Resources": "waiting for a free GPU/CPU on the cluster",
    "Priority": "waiting behind jobs with higher priority",
    "Dependency": "waiting for another job to finish",
    "QOSMaxGRESPerUser": "you are using as many GPUs as the course allows at once",
    "QOSMaxJobsPerUserLimit": "you are running as many jobs as the course allows at once",
    "QOSMaxSubmitJobPerUserLimit": "you have as many jobs queued as the course allows",
    "AssocGrpGRES": "your group's GPU quota is in use",
    "AssocMaxJobsLimit": "your account's running-job limit is reached",
    "AssocGrpCPUMinutesLimit": "your account's CPU-time budget is used up",
    "ReqNodeNotAvail": "the requested nodes are not available (maintenance?)",
    "PartitionTimeLimit": "the time limit is longer than the partition allows",
    "JobHeldUser": "held",
    "JobHeldAdmin": "held by an administrator",
    "BeginTime": "waiting for its start time",
    "Reservation": "waiting for a reservation",
    "QOSMaxWallDurationPerJobLimit": "the time limit is longer than the course's QOS allows",
    "QOSGrpGRES": "the course's GPUs are all in use",
    "QOSMaxCpuPerUserLimit": "you are using as many CPUs as the course allows at once",
    "PartitionDown": "the partition is down (maintenance?)",
    "NodeDown": "a node the job needs is down",
}

_ALLOWED: dict[str, frozenset[str]] = {
    PENDING: frozenset({PENDING, RUNNING, COMPLETED, FAILED, CANCELED, TERMINATED}),
    # running -> pending only when the scheduler requeues the job (reason "requeued").
    RUNNING: frozenset({RUNNING, PENDING, COMPLETED, FAILED, TERMINATED}),
}


def explain(reason: str | None) -> str:
    if not reason:
        return ""
    return REASONS.get(reason, reason)


def now_iso(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"


def parse_iso(s: str | None) -> float | None:
    """Inverse of ``now_iso``; tolerant of a missing fraction."""
    if not s or not isinstance(s, str):
        return None
    main, _, frac = s.rstrip("Z").partition(".")
    # Sliced by hand: time.strptime is slow enough to dominate `list` over 10,000 tasks.
    if len(main) != 19 or main[16] != ":":
        return None
    start = _MINUTES.get(main[:16], _UNKNOWN)
    if start is _UNKNOWN:
        start = _minute_start(main[:16])
    second = main[17:19]
    if start is None or not (second.isascii() and second.isdigit()) or second > "60":
        return None
    return start + int(second) + (float("0." + frac) if frac.isdigit() else 0.0)  # type: ignore[operator]


_UNKNOWN = object()
_MINUTES: dict[str, int | None] = {}


def _minute_start(prefix: str) -> int | None:
    """Epoch seconds of ``YYYY-MM-DDTHH:MM`` (None if invalid), remembered: a task's
    times, and a spool's, fall on far fewer minutes than there are timestamps."""
    start: int | None = None
    hour, minute = prefix[11:13], prefix[14:16]
    if (prefix[4] == "-" and prefix[7] == "-" and prefix[10] == "T" and prefix[13] == ":"
            and hour.isascii() and hour.isdigit() and minute.isascii() and minute.isdigit()
            and hour < "24" and minute < "60"):
        day = _day_start(prefix[:10])
        start = None if day is None else day + int(hour) * 3600 + int(minute) * 60
    if len(_MINUTES) < 65536:
        _MINUTES[prefix] = start
    return start


_DAYS: dict[str, int | None] = {}


def _day_start(date: str) -> int | None:
    """Epoch seconds of 00:00 UTC on ``YYYY-MM-DD`` (None if invalid), remembered: a
    spool's thousands of timestamps fall on a few days."""
    try:
        return _DAYS[date]
    except KeyError:
        pass
    import calendar

    start: int | None = None
    try:
        year, month, mday = int(date[0:4]), int(date[5:7]), int(date[8:10])
        if 1 <= month <= 12 and 1 <= mday <= 31 and date[0:4].isdigit():
            start = calendar.timegm((year, month, mday, 0, 0, 0, 0, 0, 0))
    except ValueError:
        start = None
    if len(_DAYS) < 4096:
        _DAYS[date] = start
    return start


class IllegalTransition(ValueError):
    pass


#: The fields of ``status.json`` that every reader may rely on (an interface).
STATUS_FIELDS: tuple[str, ...] = ("id", "state", "reason", "message", "exit_code", "submitted_at", "started_at",
                                  "finished_at", "updated_at", "job_id", "owner", "seq")


class TaskStatus:
    """The public status record (``status.json``).  Field names are an interface.

    A plain class rather than a dataclass: every CLI command builds these, and importing
    ``dataclasses`` (which imports ``inspect``) would double a small command's start-up.
    Fields that are not in STATUS_FIELDS travel in ``extra`` and are written back as they
    came, so newer daemons can add fields without older readers dropping them."""

    __slots__ = (*STATUS_FIELDS, "extra")

    def __init__(self, id: str, state: str = PENDING, reason: str | None = None, message: str | None = None,
                 exit_code: int | None = None, submitted_at: str | None = None, started_at: str | None = None,
                 finished_at: str | None = None, updated_at: str | None = None, job_id: str | None = None,
                 owner: str | None = None, seq: int = 0, extra: dict[str, Any] | None = None) -> None:
        self.id = id
        self.state = state
        self.reason = reason
        self.message = message
        self.exit_code = exit_code
        self.submitted_at = submitted_at
        self.started_at = started_at
        self.finished_at = finished_at
        self.updated_at = updated_at
        self.job_id = job_id
        self.owner = owner
        self.seq = seq
        self.extra: dict[str, Any] = {} if extra is None else extra

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaskStatus):
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]   # mutable: not a dict key

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"TaskStatus({inner})"

    def copy(self) -> TaskStatus:
        """An independent copy (``extra`` included) to derive the next status from."""
        return TaskStatus(**{name: getattr(self, name) for name in STATUS_FIELDS}, extra=dict(self.extra))

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in STATUS_FIELDS}
        d.update(self.extra)
        d["reason_text"] = explain(self.reason)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskStatus:
        known = {k: d[k] for k in STATUS_FIELDS if k in d}
        if "id" not in known:
            raise ValueError("status has no id")
        extra = {k: v for k, v in d.items() if k not in known and k != "reason_text"}
        st = cls(**known, extra=extra)
        if st.state not in STATES:
            raise ValueError(f"unknown state {st.state!r}")
        return st


def transition(
    status: TaskStatus,
    state: str,
    reason: str | None = None,
    *,
    now: float | None = None,
    message: str | None = None,
    **fields: Any,
) -> tuple[TaskStatus, dict[str, Any]]:
    """Return the next status and the event line that records the change.

    Terminal states are final: history can only be appended, never rewritten.
    """
    if state not in STATES:
        raise IllegalTransition(f"unknown state {state!r}")
    if status.terminal:
        raise IllegalTransition(f"task {status.id} is already {status.state}")
    if status.state == RUNNING and state == PENDING and reason != "requeued":
        raise IllegalTransition(f"task {status.id}: running -> pending only when requeued")
    if state not in _ALLOWED[status.state]:
        raise IllegalTransition(f"task {status.id}: {status.state} -> {state} is not allowed")
    ts = now_iso(now)
    new = status.copy()
    new.state = state
    new.reason = reason
    new.message = message
    new.updated_at = ts
    new.seq = status.seq + 1
    if state == RUNNING and not new.started_at:
        new.started_at = ts
    if state in TERMINAL:
        new.finished_at = ts
    for k, v in fields.items():
        if k in STATUS_FIELDS:
            setattr(new, k, v)
        else:
            new.extra[k] = v
    event = {"at": ts, "seq": new.seq, "state": state, "reason": reason}
    if message:
        event["message"] = message
    for k in ("exit_code", "job_id"):
        if k in fields and fields[k] is not None:
            event[k] = fields[k]
    return new, event
