"""``ailabber status ID`` and ``ailabber list``: read-only views of the spool."""

from __future__ import annotations

import argparse
import os
import sys
import time

from ailabber.cli.common import (
    EXIT_USAGE,
    CliError,
    find_task,
    get_settings,
    get_spool,
    print_json,
    spoold_pid,
    task_json,
)
from ailabber.cli.helptext import describe
from ailabber.daemonkit.spoold_settings import SpooldSettings
from ailabber.model import listing, render
from ailabber.model.task import PENDING, STATES, TaskStatus
from ailabber.storage.remoted_beat import stopped_copy
from ailabber.storage.spool import Spool
from ailabber.workstation import taskview
from ailabber.workstation.taskview import tasks_in


def configure_status(p: argparse.ArgumentParser) -> None:
    describe(p, """\
Show one task: its state, the reason in words, its times, exit code and job id, and
where it is in your spool.""", """\
  ailabber status 261128-104809943-mng63d       by its full id
  ailabber status 63d                           by a unique end (or start) of it
  ailabber status lr-0.1                        by its name
  ailabber status last                          the task you submitted last
  ailabber status --json 63d""")
    p.add_argument("id", help="task id (or a unique prefix or suffix of one), a task name, or 'last'")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_status)


def configure_list(p: argparse.ArgumentParser) -> None:
    describe(p, "List your tasks, oldest first: id, state, reason, age, last update.", """\
  ailabber list
  ailabber list --state running --state pending
  ailabber list --limit 5 --json""")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=None, help="show only the N newest tasks (N >= 1)")
    p.add_argument("--state", action="append", help=f"only tasks in this state (repeatable): {', '.join(STATES)}")
    p.set_defaults(func=run_list)


def run_status(args: argparse.Namespace) -> int:
    settings = get_settings()
    spool = Spool(settings.spool)
    from ailabber.model.notice import notice_rows  # here, not at the top: `list` starts faster
    from ailabber.storage.notices import read_record

    task_id, stage, task_dir, st = find_task(spool, args.id)
    entry = taskview.queue_entries(spool).get(task_id)
    notice = read_record(task_dir) if st.terminal else None
    if args.json:
        print_json({**taskview.with_queue(task_json(st, stage), st, entry),
                    **({"notification": notice} if notice else {})})
    else:
        from ailabber.model.progress import rows

        now = time.time()
        more = [*listing.describe_rows(st, now), *rows(st, entry, now),
                *(notice_rows(notice, spoold_pid(spool)) if notice else [])]
        print(render.describe(st, stage, remoted=_waits_for_stopped_remoted(spool, settings, st), more=more))
    return 0


def _waits_for_stopped_remoted(spool: Spool, settings: SpooldSettings, st: TaskStatus) -> str | None:
    """A task sent but not accepted waits for remoted; if remoted has stopped, say so, or
    the student waits for ever at "waiting for the cluster to accept it"."""
    if st.terminal or st.reason != "uploaded" or spoold_pid(spool) is None:
        return None
    beat = stopped_copy(spool.root, settings.rescan_interval)
    return beat.stopped_text() if beat else None


def check_list_options(states: list[str] | None, limit: int | None) -> None:
    """A misspelt state would match nothing and a limit below 1 would show everything:
    both look like an answer ("no tasks", the whole list), so they are usage errors."""
    for state in states or ():
        if state not in STATES:
            from ailabber.model.suggest import closest

            near = closest(state, STATES)
            hint = f"; did you mean '{near}'?" if near else ""
            raise CliError(f"--state: unknown state {state!r}{hint} (valid: {', '.join(STATES)})", EXIT_USAGE)
    if limit is not None and limit < 1:
        raise CliError(f"--limit: must be a whole number >= 1, got {limit}", EXIT_USAGE)


def run_list(args: argparse.Namespace) -> int:
    check_list_options(args.state, args.limit)
    spool = get_spool()
    found = tasks_in(spool, args.state)
    if args.limit is not None:
        found = found[-args.limit:]
    now = time.time()
    entries = taskview.queue_entries(spool)
    if args.json:
        print_json([taskview.with_queue(task_json(st, stage, now), st, entries.get(st.id))
                    for _i, stage, st in found])
        return 0
    if not found:
        print("no tasks")
        return 0
    table = []
    if any(st.state == PENDING for _i, _stage, st in found):
        from ailabber.model.progress import detail
    for _i, _stage, st in found:
        row = listing.row(st, now)
        more = detail(st, entries.get(st.id), None, now, short=True) if st.state == PENDING else None
        if more:
            row[3] = f"{row[3]} ({more})"
        table.append(row)
    print(listing.table(table, _terminal_width()))
    return 0


def _terminal_width() -> int | None:
    """``COLUMNS``, else the terminal's width; None when the output goes to a file or a
    pipe, which then gets each command whole."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return None
