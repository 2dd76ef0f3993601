"""The scheduler contract: submit, find, poll, cancel.

remoted owns the queue and the task records; a scheduler only starts jobs, reports on them
and stops them.  A handle is persisted by remoted, so a scheduler keeps no state of its own
that a restart could lose.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from remoted.jobspec import JobSpec


@dataclass
class JobHandle:
    job_id: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "data": self.data}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobHandle:
        return cls(job_id=str(d["job_id"]), data=dict(d.get("data") or {}))


@dataclass
class JobState:
    """What a scheduler knows about one job, in the task vocabulary (see ailabber.model.task)."""

    state: str                      # pending | running | completed | failed | canceled | terminated
    reason: str | None = None
    exit_code: int | None = None
    message: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    #: A pending job: when the scheduler expects to start it (epoch seconds), where it
    #: has an estimate of its own (Slurm's, as ``squeue --start`` shows it); else None.
    expected_start: float | None = None


class Blocked(Exception):
    """The job cannot start now; ``reason`` says why (``waiting_for_gpu``, ``unsatisfiable``)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


class SubmitError(Exception):
    """The scheduler refused the job for good (bad request): the task fails."""


class SchedulerUnavailable(Exception):
    """The scheduler could not be asked (controller down, timeout): try again later.
    Never a reason to fail a task, and never a reason to assume a job does not exist."""


#: What ``submit`` may end with instead of a handle.  Anything else is unexpected (a bug,
#: a failed account lookup): remoted then cannot know whether the job exists, and treats
#: the task like one whose scheduler did not answer.
SUBMIT_OUTCOMES: tuple[type[Exception], ...] = (Blocked, SchedulerUnavailable, SubmitError, OSError)


class Scheduler(ABC):
    """What remoted asks of a backend, all of it.  A backend subclasses this and says
    what it is; the capabilities some backends lack have defaults here, so remoted never
    probes an object for what it can do."""

    #: The name in remoted.yaml's ``scheduler``.
    name: str = ""
    #: True: the backend keeps its own queue (``check`` never blocks), so remoted hands
    #: over every task at once, in batches.
    queues: bool = False
    #: How many ``submit`` calls may run at once, in remoted's worker threads.
    concurrent_submits: int = 1

    @abstractmethod
    def check(self, spec: JobSpec, active: list[JobHandle]) -> None:
        """Raise ``Blocked`` if the job cannot start now.  Decided from ``active`` and the
        backend's own configuration, never by asking the scheduler: it raises nothing else
        (a backend whose scheduler queues by itself never blocks)."""

    @abstractmethod
    def submit(self, spec: JobSpec, active: list[JobHandle]) -> JobHandle:
        """Start the job; one of ``SUBMIT_OUTCOMES`` when it could not be."""

    @abstractmethod
    def find(self, spec: JobSpec) -> JobHandle | None:
        """After a crash between recording the intent and recording the handle: the job
        if it was started, so that it is adopted rather than started twice."""

    @abstractmethod
    def poll(self, handles: list[JobHandle]) -> dict[str, JobState]:
        """What is known of each job, by job id (a job left out: no news)."""

    @abstractmethod
    def cancel(self, handle: JobHandle) -> None:
        """Start ending the job; ``poll`` reports when it has ended.  A job that has already
        ended is no error.  Raises ``SchedulerUnavailable`` when the scheduler could not be
        asked: remoted then keeps the cancel on record and asks again on its next poll."""

    @abstractmethod
    def containment(self) -> str:
        """In one line, what makes every process of a job end with it (for the heartbeat
        and ``doctor``)."""

    def gpu_slots(self) -> int | None:
        """The GPUs this backend hands out one task at a time as remoted launches them
        (the local scheduler: the machine's), from which remoted bounds the start of the
        tasks in its own queue.  None (the default): the backend queues by itself and
        reports its own estimates (``JobState.expected_start``), if any."""
        return None

    def health(self) -> str | None:
        """None when the backend can be asked; otherwise what is wrong, in one line."""
        return None

    def enforce_limits(self, handles: list[JobHandle], now: float) -> None:
        """A backstop for jobs the backend does not limit itself (default: none needed)."""
