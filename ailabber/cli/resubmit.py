"""``ailabber resubmit ID [--edit TABLE.KEY=VALUE]...``: run a task's snapshot again."""

from __future__ import annotations

import argparse

from ailabber.cli.common import check_name_option, find_task, get_settings
from ailabber.cli.helptext import describe
from ailabber.cli.submit import add_wait_option, cluster_limits, explained, report
from ailabber.model import render
from ailabber.storage.spool import Spool


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, """\
Submit the files of an earlier task again, as a new task: the snapshot it was sent with,
not your project as it is now.  The files are shared with the earlier task in your spool
(no copy); --edit changes values of its config, checked as task_config.toml's own.""", """\
  ailabber resubmit 63d                                   the same task again
  ailabber resubmit 63d --edit resources.time_limit=4:00  with a longer time limit
  ailabber resubmit 63d --edit resources.gpus=2 --edit resources.memory=32G""")
    p.add_argument("id", help="the task to run again: an id, or a unique prefix or suffix of one")
    p.add_argument("--edit", action="append", default=[], metavar="TABLE.KEY=VALUE",
                   help="change one value of its config, as in task_config.toml (repeatable), "
                        "e.g. resources.time_limit=2:00 or resources.gpus=2")
    p.add_argument("--name", help="name the new task (default: the earlier task's name)")
    p.add_argument("--json", action="store_true", help="print the new task as JSON")
    add_wait_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ailabber.workstation.resubmit import resubmit  # imported here: the other verbs start faster

    check_name_option(args.name)
    settings = get_settings()
    spool = Spool(settings.spool)
    original, _stage, _dir, _st = find_task(spool, args.id)
    limits, jobs = cluster_limits(settings, spool)
    result = explained(spool, lambda: resubmit(spool, original, args.edit, limits, jobs, args.name))
    files = result.listing.files
    what = f"a rerun of {original}; {len(files)} files, {render.size(sum(files.values()))}, shared with it"
    return report(spool, result.status, what, args)
