"""``ailabber cancel ID... | --all | --state STATE...``: drop cancel requests for spoold."""

from __future__ import annotations

import argparse
import sys

from ailabber.cli.common import EXIT_OK, EXIT_USAGE, CliError, find_task, get_spool, spoold_pid
from ailabber.cli.helptext import describe
from ailabber.cli.status import check_list_options
from ailabber.model.task import STATES, TERMINAL, TaskStatus
from ailabber.storage.spool import Spool
from ailabber.workstation.taskview import tasks_in


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, """\
Cancel tasks: one that has not started ends canceled, a running one terminated.  The
request waits in your spool until spoold carries it out.""", """\
  ailabber cancel 63d
  ailabber cancel 63d x7k 9qa                   several at once
  ailabber cancel --state pending               every task still waiting
  ailabber cancel --all                         every task not finished yet""")
    p.add_argument("id", nargs="*",
                   help="task ids (or unique prefixes or suffixes of them), task names, or 'last'")
    p.add_argument("--all", action="store_true", help="every task that has not finished")
    p.add_argument("--state", action="append",
                   help=f"every task in this state (repeatable): {', '.join(STATES)}")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Each task is canceled on its own: one unknown id does not keep the others running,
    but it makes the exit code that of the worst failure.  A task that has already ended
    is reported, and is no failure."""
    check_list_options(args.state, None)
    if args.id and (args.all or args.state):
        raise CliError("give task ids, or --all / --state, not both", EXIT_USAGE)
    if not (args.id or args.all or args.state):
        raise CliError("which tasks? give task ids, --all (every unfinished task) or --state STATE", EXIT_USAGE)
    spool = get_spool()
    code = EXIT_OK
    chosen: list[tuple[str, TaskStatus]] = []
    if args.id:
        for query in args.id:
            try:
                task_id, _stage, _d, st = find_task(spool, query)
            except CliError as exc:
                print(f"ailabber: {exc}", file=sys.stderr)
                code = max(code, exc.code)
                continue
            chosen.append((task_id, st))
    else:
        states = args.state or [s for s in STATES if s not in TERMINAL]
        chosen = [(task_id, st) for task_id, _stage, st in tasks_in(spool, states)]
        if not chosen:
            print("no tasks to cancel")
    if _cancel(spool, chosen) and spoold_pid(spool) is None:
        print("  note: spoold is not running; the requests will be carried out when it starts")
    return code


def _cancel(spool: Spool, chosen: list[tuple[str, TaskStatus]]) -> bool:
    """One line per task; True when at least one request was dropped."""
    requested = False
    for task_id, st in chosen:
        if st.terminal:
            print(f"{task_id} is already {st.state}; nothing to cancel")
            continue
        spool.drop_request(task_id, "cancel")
        print(f"cancel requested for {task_id}")
        requested = True
    return requested
