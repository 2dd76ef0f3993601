"""``ailabber status ID`` and ``ailabber list``: read-only views of the spool."""

from __future__ import annotations

import argparse
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
from ailabber.model import render
from ailabber.model.task import PENDING, RUNNING, STATES, TaskStatus
from ailabber.storage import statusfile
from ailabber.storage.remoted_beat import stopped_copy
from ailabber.storage.spool import STAGES, Spool
from ailabber.workstation import taskview


def configure_status(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="task id, or a unique prefix or suffix of one")
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
    task_id, stage, task_dir, st = find_task(spool, args.id)
    entry = taskview.queue_entries(spool).get(task_id)
    if args.json:
        print_json(taskview.with_queue(task_json(st, stage), st, entry))
    else:
        from ailabber.model.progress import rows

        limit = taskview.time_limit(task_dir) if st.state == RUNNING else None
        print(render.describe(st, stage, remoted=_waits_for_stopped_remoted(spool, settings, st),
                              progress=rows(st, entry, limit, time.time())))
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
    entries = taskview.queue_entries(spool)
    if args.json:
        print_json([taskview.with_queue(task_json(st, stage), st, entries.get(st.id))
                    for _i, stage, st in found])
        return 0
    if not found:
        print("no tasks")
        return 0
    from ailabber.model.progress import detail

    now = time.time()
    rows = []
    for _i, _stage, st in found:
        more = detail(st, entries.get(st.id), None, now, short=True) if st.state == PENDING else None
        reason = f"{st.reason or ''} ({more})" if more else st.reason or ""
        rows.append([st.id, render.state_text(st), reason, render.ago(st.submitted_at, now),
                     render.ago(st.updated_at, now)])
    print(render.table(["ID", "STATE", "REASON", "AGE", "UPDATED"], rows))
    return 0
