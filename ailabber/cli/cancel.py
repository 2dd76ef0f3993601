"""``ailabber cancel ID``: drop a cancel request for spoold to carry out."""

from __future__ import annotations

import argparse

from ailabber.cli.common import find_task, get_spool, spoold_pid


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("id")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spool = get_spool()
    task_id, _stage, _d, st = find_task(spool, args.id)
    if st.terminal:
        print(f"{task_id} is already {st.state}; nothing to cancel")
        return 0
    spool.drop_request(task_id, "cancel")
    print(f"cancel requested for {task_id}")
    if spoold_pid(spool) is None:
        print("  note: spoold is not running; the request will be carried out when it starts")
    return 0
