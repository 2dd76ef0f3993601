"""``ailabber cancel ID...``: drop a cancel request for spoold to carry out."""

from __future__ import annotations

import argparse
import sys

from ailabber.cli.common import EXIT_OK, CliError, find_task, get_spool, spoold_pid


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", nargs="+",
                   help="task ids (or unique prefixes or suffixes of them), task names, or 'last'")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Each id is canceled on its own: one unknown id does not keep the others running,
    but it makes the exit code that of the worst failure."""
    spool = get_spool()
    code = EXIT_OK
    requested = False
    for query in args.id:
        try:
            task_id, _stage, _d, st = find_task(spool, query)
        except CliError as exc:
            print(f"ailabber: {exc}", file=sys.stderr)
            code = max(code, exc.code)
            continue
        if st.terminal:
            print(f"{task_id} is already {st.state}; nothing to cancel")
            continue
        spool.drop_request(task_id, "cancel")
        print(f"cancel requested for {task_id}")
        requested = True
    if requested and spoold_pid(spool) is None:
        print("  note: spoold is not running; the request will be carried out when it starts")
    return code
