"""``ailabber status ID`` and ``ailabber list``: read-only views of the spool."""

from __future__ import annotations

import argparse

from ailabber.cli.common import find_task, get_spool, print_json, task_json
from ailabber.model import render
from ailabber.storage import statusfile
from ailabber.storage.spool import STAGES


def configure_status(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="task id, or a unique prefix or suffix of one")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_status)


def configure_list(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=0, help="show only the N newest tasks")
    p.add_argument("--state", action="append", help="only tasks in this state (repeatable)")
    p.set_defaults(func=run_list)


def run_status(args: argparse.Namespace) -> int:
    spool = get_spool()
    _task_id, stage, _d, st = find_task(spool, args.id)
    if args.json:
        print_json(task_json(st, stage))
    else:
        print(render.describe(st, stage))
    return 0


def run_list(args: argparse.Namespace) -> int:
    spool = get_spool()
    found = []
    for stage in STAGES:
        stage_dir = str(spool.stage_dir(stage))
        for task_id in spool.ids_in(stage):
            st = statusfile.read_status(f"{stage_dir}/{task_id}")
            if st is not None and (not args.state or st.state in args.state):
                found.append((task_id, stage, st))
    found.sort(key=lambda t: t[0])
    if args.limit and args.limit > 0:
        found = found[-args.limit:]
    if args.json:
        print_json([task_json(st, stage) for _i, stage, st in found])
        return 0
    if not found:
        print("no tasks")
        return 0
    rows = [[st.id, render.state_text(st), st.reason or "", render.ago(st.submitted_at), render.ago(st.updated_at)]
            for _i, _stage, st in found]
    print(render.table(["ID", "STATE", "REASON", "AGE", "UPDATED"], rows))
    return 0
