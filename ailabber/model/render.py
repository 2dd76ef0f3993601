"""Values as a person reads them: "N s ago", durations, sizes, aligned tables and a task's state in words."""

from __future__ import annotations

import time
from collections.abc import Sequence

from ailabber.model.task import TaskStatus, explain, parse_iso


def ago(iso: str | None, now: float | None = None) -> str:
    t = parse_iso(iso)
    if t is None:
        return "-"
    return duration((time.time() if now is None else now) - t) + " ago"


def duration(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for r in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, r)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(lines)


def state_text(st: TaskStatus) -> str:
    text = st.state
    if st.state == "failed" and st.exit_code not in (None, 0) and st.reason == "nonzero_exit":
        text += f" (exit {st.exit_code})"
    return text


def describe(st: TaskStatus, stage: str, now: float | None = None, remoted: str | None = None,
             more: Sequence[tuple[str, str]] = ()) -> str:
    """``remoted``: what is wrong on the cluster side that this task waits for, if known;
    ``more``: further (label, value) lines, shown after the message (its times, the
    notice sent when it ended)."""
    rows = [
        ("task", st.id),
        ("state", state_text(st)),
        ("reason", f"{st.reason}: {explain(st.reason)}" if st.reason else "-"),
    ]
    if st.message:
        rows.append(("message", st.message))
    rows += more
    rows += [
        ("submitted", f"{st.submitted_at or '-'} ({ago(st.submitted_at, now)})"),
        ("started", st.started_at or "-"),
        ("finished", st.finished_at or "-"),
        ("exit code", "-" if st.exit_code is None else str(st.exit_code)),
        ("job id", st.job_id or "-"),
        *([("rerun of", str(st.extra["rerun_of"]))] if "rerun_of" in st.extra else []),
        ("spool stage", stage),
        ("updated", ago(st.updated_at, now)),
    ]
    if "cancel_requested_at" in st.extra and not st.terminal:
        rows.append(("cancel", f"requested at {st.extra['cancel_requested_at']}"))
    if "unmatched" in st.extra or "outputs_incomplete" in st.extra:
        rows += _outputs_rows(st)
    if remoted:
        rows.append(("remoted", remoted))
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(w)}  {v}" for k, v in rows)


def _outputs_rows(st: TaskStatus) -> list[tuple[str, str]]:
    """What the entries of run.logs/run.results matched, as spoold recorded it."""
    from ailabber.model.outputs import unmatched_lines

    incomplete = st.extra.get("outputs_incomplete")
    if isinstance(incomplete, str):
        return [("outputs", f"not all listed ({incomplete}); brought back by pattern")]
    lines = unmatched_lines(st.extra.get("unmatched"))
    return [("unmatched", line) for line in lines] or [("outputs", "every entry of run.logs and run.results matched")]
