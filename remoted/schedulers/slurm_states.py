"""Slurm's job states, mapped honestly onto ailabber's (pure: strings in, JobState out).

The wrapper's own result record (written inside the job) is the most precise source for
how the commands ended; Slurm is authoritative for what happened *to* the job (time
limit, memory, node failure, cancellation, preemption).
"""

from __future__ import annotations

import time
from typing import Any

from ailabber.model.task import CANCELED, COMPLETED, FAILED, PENDING, RUNNING, TERMINATED
from remoted.schedulers.base import JobState

ACTIVE_RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING", "RESIZING"}
ACTIVE_PENDING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}


def parse_exit_code(text: str | None) -> tuple[int | None, int | None]:
    """``"3:0"`` -> (3, 0): exit status and terminating signal."""
    if not text or ":" not in text:
        return None, None
    a, _, b = text.partition(":")
    try:
        return int(a), int(b)
    except ValueError:
        return None, None


def map_state(state: str, reason: str | None, nodes: str | None, exit_code: str | None,
              result: dict[str, Any] | None, was_running: bool) -> JobState:
    state = (state or "").upper().split()[0] if state else ""
    state = state.rstrip("+")
    reason = None if reason in (None, "", "None", "(null)") else reason
    started = bool(nodes and nodes not in ("(null)", "None")) or was_running
    code, sig = parse_exit_code(exit_code)

    if state in ACTIVE_PENDING:
        if was_running:
            return JobState(PENDING, "requeued", message="the job was put back in the queue by Slurm")
        return JobState(PENDING, reason or "queued")
    if state in ACTIVE_RUNNING:
        return JobState(RUNNING)
    if state == "SUSPENDED":
        return JobState(RUNNING, "suspended", message="Slurm has suspended the job for now")
    if state == "TIMEOUT":
        # Slurm ends the job with TERM (KILL after KillWait) and shows "0:15" ("0:9"):
        # without the wrapper's record, the status a shell would show for that signal.
        killed_by = 128 + sig if sig and not code else code
        return JobState(FAILED, "timeout", exit_code=_exit(result, killed_by), message="the time limit was reached")
    if state == "OUT_OF_MEMORY":
        return JobState(FAILED, "oom", exit_code=_exit(result, code),
                        message="the job used more memory than it asked for (resources.memory)")
    if state == "NODE_FAIL":
        return JobState(FAILED, "node_fail", message="the node running the job failed")
    if state == "BOOT_FAIL":
        return JobState(FAILED, "node_fail", message="the node could not be booted for the job")
    if state == "PREEMPTED":
        return JobState(FAILED, "preempted", message="the job was preempted by higher-priority work")
    if state == "DEADLINE":
        return JobState(FAILED, "timeout", message="the job missed its deadline")
    if state in ("CANCELLED", "REVOKED"):
        if result and result.get("state") in (COMPLETED, FAILED):
            return _from_result(result)          # it had already finished on its own
        if started:
            return JobState(TERMINATED, "canceled_by_user")
        return JobState(CANCELED, "canceled_by_user")
    if state == "COMPLETED":
        if result and result.get("state") in (FAILED, TERMINATED):
            return _from_result(result)
        return JobState(COMPLETED, exit_code=0)
    if state == "FAILED":
        if result and result.get("state") in (COMPLETED, FAILED, TERMINATED):
            return _from_result(result)
        if reason == "BadConstraints":
            return JobState(FAILED, "unsatisfiable", message="Slurm cannot satisfy the request (BadConstraints)")
        if sig:
            return JobState(FAILED, "killed", exit_code=128 + sig, message=f"the job was killed by signal {sig}"
                            + (f" ({reason})" if reason else ""))
        return JobState(FAILED, "nonzero_exit", exit_code=code,
                        message=f"the job failed ({reason})" if reason else None)
    return JobState(FAILED, "lost", message=f"Slurm reports an unexpected state {state!r}")


def _exit(result: dict[str, Any] | None, code: int | None) -> int | None:
    if result and isinstance(result.get("exit_code"), int):
        return int(result["exit_code"])
    return code


def _from_result(result: dict[str, Any]) -> JobState:
    return JobState(
        state=result["state"], reason=result.get("reason"), exit_code=result.get("exit_code"),
        message=result.get("message"), started_at=result.get("started_at"), finished_at=result.get("finished_at"),
    )


def time_limit(seconds: int) -> str:
    """Seconds -> Slurm's ``D-HH:MM:SS`` (rounded up to whole seconds, at least 1 minute)."""
    seconds = max(60, int(seconds))
    days, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{days}-{h:02d}:{m:02d}:{s:02d}"


def slurm_time(text: str) -> float | None:
    """Slurm's ``YYYY-MM-DDTHH:MM:SS`` (printed in UTC: remoted runs Slurm's commands with
    ``TZ=UTC``) as epoch seconds; None for ``N/A``, ``Unknown`` or anything else."""
    import calendar

    try:
        parts = time.strptime(text.strip(), "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    return float(calendar.timegm(parts))
