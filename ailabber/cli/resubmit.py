"""``ailabber resubmit ID [--edit TABLE.KEY=VALUE]...``: run a task's snapshot again."""

from __future__ import annotations

import argparse

from ailabber.cli.common import find_task, get_settings
from ailabber.cli.submit import explained, report, upload_limits
from ailabber.model import render
from ailabber.storage.spool import Spool


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="the task to run again: an id, or a unique prefix or suffix of one")
    p.add_argument("--edit", action="append", default=[], metavar="TABLE.KEY=VALUE",
                   help="change one value of its config, as in task_config.toml (repeatable), "
                        "e.g. resources.time_limit=2:00 or resources.gpus=2")
    p.add_argument("--json", action="store_true", help="print the new task as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ailabber.workstation.resubmit import resubmit  # imported here: the other verbs start faster

    settings = get_settings()
    spool = Spool(settings.spool)
    original, _stage, _dir, _st = find_task(spool, args.id)
    result = explained(spool, lambda: resubmit(spool, original, args.edit, upload_limits(settings, spool)))
    files = result.listing.files
    what = f"a rerun of {original}; {len(files)} files, {render.size(sum(files.values()))}, shared with it"
    return report(spool, result.status, what, args.json)
