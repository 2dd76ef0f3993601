"""The notice of a finished task, as a record and in words.

When a task ends, spoold tells the student: a desktop notification and/or the student's
``on_finish`` hook.  What was sent, and how it went, is kept in ``notified.json`` in the
task's spool directory; this module says what that record means for ``status``.  Pure.
"""

from __future__ import annotations

from typing import Any

NOTICE_FILE = "notified.json"   # in the task's spool directory
HOOK_LOG = "on_finish.log"      # the hook's standard output and error, beside it


def summary(task_id: str, state: str) -> str:
    """The one line a desktop notification shows as its title."""
    return f"ailabber: task {task_id} {state}"


def body(status: dict[str, Any]) -> str:
    """The notification's text: why it ended, in the status's own words."""
    parts = [str(status.get("reason_text") or "")]
    if status.get("exit_code") not in (None, 0):
        parts.append(f"exit code {status['exit_code']}")
    return "; ".join(p for p in parts if p) or "finished"


def notice_rows(record: dict[str, Any], spoold_pid: int | None) -> list[tuple[str, str]]:
    """``status`` lines for a ``notified.json`` record; ``spoold_pid``: the running spoold's."""
    rows: list[tuple[str, str]] = []
    started = record.get("started_at") or "?"
    if "finished_at" not in record and spoold_pid is not None and record.get("spoold_pid") == spoold_pid:
        return [("notice", f"being sent since {started}")]    # the spoold that began it is still at it
    desktop = record.get("desktop")
    if isinstance(desktop, dict):
        rows.append(("desktop note", _outcome(desktop, started)))
    hook = record.get("hook")
    if isinstance(hook, dict):
        rows.append(("on_finish", _hook_outcome(hook, started)))
    return rows


def _outcome(part: dict[str, Any], started: str) -> str:
    at = part.get("at") or started
    if part.get("error"):
        return f"not delivered at {at}: {part['error']}"
    if part.get("sent"):
        via = f" (via {part['via']})" if part.get("via") else ""
        return f"sent at {at}{via}"
    return f"started at {started}; spoold stopped before it was sent (not sent again)"


def _hook_outcome(hook: dict[str, Any], started: str) -> str:
    at = hook.get("finished_at")
    if at is None:
        return f"started at {started}; spoold stopped before it ended (not run again)"
    if hook.get("timed_out"):
        limit = hook.get("timeout")
        shown = f"{limit:g}" if isinstance(limit, (int, float)) else "?"
        return f"stopped at {at}: still running after {shown} s (see {HOOK_LOG})"
    if hook.get("error"):
        return f"could not run at {at}: {hook['error']}"
    code = hook.get("exit_code")
    if code == 0:
        return f"ran at {at}, exit code 0"
    return f"failed at {at}: exit code {code} (see {HOOK_LOG} in the task's spool directory)"
