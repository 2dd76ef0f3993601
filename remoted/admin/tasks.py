"""``ailabber admin tasks``: every task of every student, as remoted's records say.

A held task (``admin hold``) is pending with reason ``held``: ``--reason held`` lists the
queue a hold keeps back, like any other reason remoted or the scheduler gives.
"""

from __future__ import annotations

import argparse
import time

from ailabber.cli.common import EXIT_USAGE, CliError, print_json
from ailabber.cli.helptext import describe
from ailabber.model.render import duration, table
from ailabber.model.task import STATES
from remoted.admin.cli import course, staff
from remoted.admin.course import TaskRow
from remoted.holds import read_holds


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, "Every task of every student, oldest first, from remoted's records.", """\
  ailabber admin tasks
  ailabber admin tasks --user alice --state running
  ailabber admin tasks --state pending --reason held
  ailabber admin tasks --json | jq '.[] | select(.gpus > 0)'""")
    p.add_argument("--user", action="append", help="only this student's tasks (repeatable)")
    p.add_argument("--state", action="append", help=f"only tasks in this state (repeatable): {', '.join(STATES)}")
    p.add_argument("--reason", action="append",
                   help="only tasks with this reason (repeatable), e.g. held, user_limit, Resources")
    p.add_argument("--json", action="store_true", help="one JSON object per task, as a list")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for s in args.state or ():
        if s not in STATES:
            raise CliError(f"--state: unknown state {s!r} (one of {', '.join(STATES)})", EXIT_USAGE)
    who = staff(args)
    now = time.time()
    rows = [r for r in course(who)
            if (not args.user or r.user in args.user) and (not args.state or r.record.status.state in args.state)
            and (not args.reason or r.record.status.reason in args.reason)]
    if args.json:
        print_json([as_json(r, now) for r in rows])
        return 0
    for line in read_holds(who.root).lines():       # why queued tasks do not start
        print(line)
    if not rows:
        print("no tasks")
        return 0
    print(table(("USER", "ID", "NAME", "STATE", "REASON", "GPUS", "ELAPSED", "JOB", "NODE"),
                [(r.user, r.id, r.name or "-", r.record.status.state, r.record.status.reason or "-", str(r.gpus),
                  _elapsed(r, now), r.record.status.job_id or "-", r.node or "-") for r in rows]))
    return 0


def _elapsed(r: TaskRow, now: float) -> str:
    e = r.elapsed(now)
    return "-" if e is None else duration(e)


def as_json(r: TaskRow, now: float) -> dict[str, object]:
    st = r.record.status
    return {"user": r.user, "id": r.id, "name": r.name, "state": st.state, "reason": st.reason,
            "message": st.message, "gpus": r.gpus, "cpus": r.cpus, "elapsed_s": r.elapsed(now), "job_id": st.job_id,
            "node": r.node, "submitted_at": st.submitted_at, "started_at": st.started_at,
            "finished_at": st.finished_at, "exit_code": st.exit_code}
