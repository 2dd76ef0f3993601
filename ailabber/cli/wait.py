"""``ailabber wait ID``: block until the task ends; exit 0 only if it completed."""

from __future__ import annotations

import argparse
import time

from ailabber.cli.common import EXIT_FAIL, find_task, get_spool
from ailabber.cli.helptext import describe
from ailabber.model import render
from ailabber.model.task import COMPLETED


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, """\
Wait until a task ends and print how.  Exits 0 only if it completed, 1 for any other
end or when the timeout passes.""", """\
  ailabber wait 63d && ailabber fetch 63d
  ailabber wait 63d --timeout 600""")
    p.add_argument("id", help="task id, or a unique prefix or suffix of one")
    p.add_argument("--timeout", type=float, default=0, help="give up after this many seconds (0: never)")
    p.add_argument("--interval", type=float, default=0.25, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spool = get_spool()
    task_id, _stage, _d, st = find_task(spool, args.id)
    deadline = time.monotonic() + args.timeout if args.timeout > 0 else None
    while not st.terminal:
        if deadline is not None and time.monotonic() > deadline:
            print(f"{task_id} is still {st.state} after {args.timeout:g}s")
            return EXIT_FAIL
        time.sleep(args.interval)
        st = spool.read_status(task_id) or st
    detail = f" ({st.reason})" if st.reason else ""
    print(f"{task_id} {render.state_text(st)}{detail}" + (f": {st.message}" if st.message else ""))
    return 0 if st.state == COMPLETED else EXIT_FAIL
