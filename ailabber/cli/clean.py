"""``ailabber clean [--older-than AGE] [--keep N] [--dry-run] [ID...]``: remove finished
tasks from the local spool.

Without ids it removes every finished task that finished at least ``--older-than`` ago
(default 7 days); with ids, those tasks whatever their age (unless ``--older-than`` is
given too).  Only a task in ``done/`` can go, and only when its logs and results were
pulled back and no fetch of it is pending (``storage/cleaning.py``): the spool is where
they live once the task is over.  A task another command is reading is left alone.
"""

from __future__ import annotations

import argparse
import sys
import time

from ailabber.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, CliError, get_spool
from ailabber.cli.helptext import describe
from ailabber.model import render
from ailabber.model.ids import TaskLookupError
from ailabber.model.quantities import AGE_WORDS, parse_age
from ailabber.model.retention import freed_total
from ailabber.model.retention_policy import CLEAN_AGE, Policy
from ailabber.storage.cleaning import clean
from ailabber.storage.spool import DONE, Spool


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, """\
Remove finished tasks from your local spool, and say how much space that freed.  Only
tasks whose logs and results are back (in spool/done/) can go; fetch what you want to keep
first.  spoold also removes old tasks by itself (retention in spoold.yaml).""", """\
  ailabber clean                                finished a week ago or more
  ailabber clean --older-than 2d --dry-run      what would go, removing nothing
  ailabber clean --older-than 0 --keep 5        all but the 5 most recently finished
  ailabber clean 63d x7k                        these tasks, whatever their age""")
    p.add_argument("id", nargs="*", help="only these tasks (ids, or unique prefixes or suffixes of them)")
    p.add_argument("--older-than", metavar="AGE",
                   help=f"only tasks that finished at least AGE ago: {AGE_WORDS} (default 7d; with ids: any age)")
    p.add_argument("--keep", metavar="N", type=int, default=0, help="always keep the N most recently finished tasks")
    p.add_argument("--dry-run", action="store_true", help="say what would be removed, and remove nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    age: float | None = None
    if args.older_than is not None:
        try:
            age = parse_age(args.older_than)
        except ValueError as exc:
            raise CliError(f"--older-than: {exc}", EXIT_USAGE) from None
    if args.keep < 0:
        raise CliError(f"--keep: must be a whole number >= 0, got {args.keep}", EXIT_USAGE)
    spool = get_spool()
    code = EXIT_OK
    only: set[str] | None = None
    if args.id:
        only, code = _named(spool, args.id)
    if age is None:
        age = CLEAN_AGE if only is None else 0.0
    outcome = clean(spool, Policy(max_age=age, keep=args.keep), time.time(), only, args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for r in outcome.removed:
        print(f"{verb} {r.id}: {r.why}, {render.size(r.freed or 0)}")
    for task_id, why in outcome.left:
        print(f"kept {task_id}: {why}")
        if only is not None:
            code = max(code, EXIT_FAIL)
    if outcome.removed:
        n = len(outcome.removed)
        freed = render.size(freed_total(outcome.removed))
        print(f"{verb} {n} task{'s' if n != 1 else ''}, " + (f"freeing {freed}" if args.dry_run else f"{freed} freed"))
    elif only is None:
        beyond = f" beyond the {args.keep} newest" if args.keep else ""
        print(f"nothing to remove: {len(outcome.considered)} finished task(s), none{beyond} finished "
              f"{render.duration(age)} ago or earlier")
    return code


def _named(spool: Spool, queries: list[str]) -> tuple[set[str], int]:
    """The finished tasks the ids name; each one that cannot be cleaned is reported, and
    the exit code is that of the worst (an unknown id: 2)."""
    only: set[str] = set()
    code = EXIT_OK
    for query in queries:
        try:
            task_id = spool.resolve(query)
        except TaskLookupError as exc:
            print(f"ailabber: {exc}", file=sys.stderr)
            code = max(code, EXIT_USAGE)
            continue
        loc = spool.locate(task_id)
        st = spool.read_status(task_id)
        if loc is None or loc[0] != DONE:
            state = st.state if st else "unknown"
            print(f"ailabber: {task_id} is {state} and not back from the cluster; clean removes only finished "
                  "tasks whose logs and results are in the spool", file=sys.stderr)
            code = max(code, EXIT_FAIL)
            continue
        only.add(task_id)
    return only, code
