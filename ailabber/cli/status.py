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
from ailabber.daemonkit.settings import SpooldSettings
from ailabber.model import listing, render
from ailabber.model.task import STATES, TaskStatus
from ailabber.storage import statusfile
from ailabber.storage.remoted_beat import stopped_copy
from ailabber.storage.spool import STAGES, Spool


def configure_status(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="task id (or a unique prefix or suffix of one), a task name, or 'last'")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_status)


def configure_list(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=None, help="show only the N newest tasks (N >= 1)")
    p.add_argument("--state", action="append", help=f"only tasks in this state (repeatable): {', '.join(STATES)}")
    p.set_defaults(func=run_list)


def run_status(args: argparse.Namespace) -> int:
    settings = get_settings()
    spool = Spool(settings.spool)
    _task_id, stage, _d, st = find_task(spool, args.id)
    if args.json:
        print_json(task_json(st, stage))
    else:
        print(render.describe(st, stage, remoted=_waits_for_stopped_remoted(spool, settings, st),
                              more=listing.describe_rows(st, time.time())))
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
    found = []
    for stage in STAGES:
        stage_dir = str(spool.stage_dir(stage))
        for task_id in spool.ids_in(stage):
            st = statusfile.read_status(f"{stage_dir}/{task_id}")
            if st is not None and (not args.state or st.state in args.state):
                found.append((task_id, stage, st))
    found.sort(key=lambda t: t[0])
    if args.limit is not None:
        found = found[-args.limit:]
    now = time.time()
    if args.json:
        print_json([task_json(st, stage, now) for _i, stage, st in found])
        return 0
    if not found:
        print("no tasks")
        return 0
    print(listing.table([listing.row(st, now) for _i, _stage, st in found], _terminal_width()))
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
