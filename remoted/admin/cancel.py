"""``ailabber admin cancel ID... [--reason TEXT]``: end any student's tasks.

The ids are looked up in remoted's records here (an exact id, ``user/id``, or a unique
prefix or suffix, as ``admin tasks`` shows them), so that a typo fails at once with exit 2;
remoted then cancels each one through the students' own cancel, and the student's status
says that course staff cancelled it, with the reason given.
"""

from __future__ import annotations

import argparse

from ailabber.cli.common import EXIT_USAGE, CliError
from ailabber.cli.helptext import describe
from ailabber.model.ids import LAST, TaskLookupError, resolve
from remoted.admin.ask import ask, wait_options
from remoted.admin.cli import staff
from remoted.admin.course import TaskRow, course_rows
from remoted.admin.requests import Cancel, RequestError, TaskRef, text


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, """\
Cancel any student's tasks: a queued one ends canceled, a running one terminated, with
the reason canceled_by_staff and your --reason as the message the student sees.  remoted
carries it out on its next pass; the command waits for its reply.""", """\
  ailabber admin cancel 261128-110155611-b7tstc --reason "uses 4 GPUs for a grid search; ask first"
  ailabber admin cancel alice/b7tstc bob/x7k2qa
  ailabber admin cancel b7tstc --no-wait""")
    p.add_argument("id", nargs="+", help="task ids as admin tasks shows them, user/id, or a unique prefix or suffix")
    p.add_argument("--reason", help="why, in one line: the student sees it in their status")
    wait_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        reason = text(args.reason, "--reason")
    except RequestError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    who = staff(args)
    refs = find_tasks(course_rows(who.root), args.id)
    return ask(who, Cancel(tuple(refs), reason), args)


def find_tasks(rows: list[TaskRow], queries: list[str]) -> list[TaskRef]:
    """The task each query names, in order and once each; CliError (exit 2) naming the
    first query that names none or several."""
    out: list[TaskRef] = []
    for query in queries:
        user, sep, part = query.rpartition("/")
        candidates = [r for r in rows if not sep or r.user == user]
        if part == LAST:
            raise CliError(f"{query}: name the task by its id", EXIT_USAGE)
        try:
            task_id = resolve(part, [r.id for r in candidates])
        except TaskLookupError as exc:
            raise CliError(f"{query}: {exc}", EXIT_USAGE) from None
        owners = sorted({r.user for r in candidates if r.id == task_id})
        if len(owners) > 1:
            raise CliError(f"{query}: tasks of {', '.join(owners)} have that id; write user/id", EXIT_USAGE)
        ref = TaskRef(owners[0], task_id)
        if ref not in out:
            out.append(ref)
    return out
