"""``ailabber admin show ID``: one task of the course, its record and its whole history.

The history is the record's own copy of the task's events (``TaskRecord.history``), not
the student's outbox: staff who are not root can read it, and it stays after spoold has
emptied the outbox.  A record from before remoted kept histories says so.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ailabber.cli.common import EXIT_USAGE, CliError, print_json
from ailabber.cli.helptext import describe
from ailabber.model.render import duration, table
from ailabber.model.task import explain
from remoted.admin.cli import course, staff
from remoted.admin.course import NoSuchTask, TaskRow, find_row
from remoted.admin.history import Event, gaps
from remoted.admin.tasks import as_json


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, """\
One task of any student: who, what it asked for, where it ran, how it ended, who
cancelled it, and every change of its state as remoted recorded it.  ID is a full id,
user/ID, a unique prefix or suffix, a task name, or last.""", """\
  ailabber admin show 261130-101502123-k3v9qa
  ailabber admin show alice/k3v9qa
  ailabber admin show alice/last --json""")
    p.add_argument("task", metavar="ID", help="the task: ID or user/ID (ID as a student may type it)")
    p.add_argument("--json", action="store_true", help="the same as one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    who = staff(args)
    try:
        row = find_row(course(who), args.task)
    except NoSuchTask as exc:
        raise CliError(f"{args.task}: {exc}", EXIT_USAGE) from None
    now = time.time()
    if args.json:
        print_json(show_json(row, now))
    else:
        print(show_text(row, now))
    return 0


def show_json(row: TaskRow, now: float) -> dict[str, Any]:
    rec, spec = row.record, row.record.spec
    return {**as_json(row, now), "reason_text": explain(rec.status.reason), "phase": rec.phase,
            "cancelled_by": row.cancelled_by, "updated_at": rec.status.updated_at,
            "memory_mb": spec.memory_mb if spec else None, "time_limit_s": spec.time_limit_s if spec else None,
            "commands": list(spec.commands) if spec else [],
            "runs": [[r.start, r.end] for r in row.runs(now)],
            "history_kept": rec.history is not None, "history": [e.to_dict() for e in row.events()]}


def show_text(row: TaskRow, now: float) -> str:
    rec, st, spec = row.record, row.record.status, row.record.spec
    elapsed = row.elapsed(now)
    job = st.job_id or "-"
    if row.node:
        job += f" on {row.node}"
    lines: list[tuple[str, str]] = [
        ("task", f"{row.user}/{row.id}"),
        ("name", row.name or "-"),
        ("state", st.state),
        ("reason", st.reason or "-"),      # the code: its explanation speaks to the student ("you ...")
        ("message", st.message or "-"),
    ]
    if row.cancelled_by:
        lines.append(("cancelled by", row.cancelled_by + (" (their own request)" if row.cancelled_by == row.user
                                                          else " (course staff)")))
    lines += [
        ("resources", _resources(row) if spec else "- (refused before it had a job spec)"),
        ("job", job),
        ("phase", rec.phase),
        ("submitted", st.submitted_at or "-"),
        ("started", st.started_at or "-"),
        ("finished", st.finished_at or "-"),
        ("ran", "-" if elapsed is None else duration(elapsed) + ("" if st.terminal else " so far")),
        ("exit code", "-" if st.exit_code is None else str(st.exit_code)),
    ]
    lines += [("command" if i == 0 else "", c) for i, c in enumerate(spec.commands if spec else ())]
    w = max(len(k) for k, _ in lines)
    out = [f"{k.ljust(w)}  {v}" for k, v in lines]
    out += ["", "history:", _history(row)]
    return "\n".join(out)


def _resources(row: TaskRow) -> str:
    spec = row.record.spec
    assert spec is not None
    return (f"{spec.gpus} GPU(s), {spec.cpus} CPU(s), {spec.memory_mb} MiB memory, "
            f"time limit {duration(spec.time_limit_s)}")


def _history(row: TaskRow) -> str:
    if row.record.history is None:
        return "  (not kept: remoted recorded this task before it kept histories in its records)"
    evs = row.events()
    if not evs:
        return "  (none yet)"
    skipped = dict(gaps(evs))
    body: list[tuple[str, str, str, str]] = []
    for i, e in enumerate(evs):
        body.append((e.at, e.state, e.reason or "-", _detail(e)))
        if i in skipped:
            body.append(("...", f"({skipped[i]} events not kept)", "", ""))
    return "\n".join("  " + line for line in table(("AT", "STATE", "REASON", "DETAIL"), body).splitlines())


def _detail(e: Event) -> str:
    parts = [e.message] if e.message else []
    if e.job_id:
        parts.append(f"job {e.job_id}")
    if e.exit_code is not None:
        parts.append(f"exit {e.exit_code}")
    return "; ".join(parts)
