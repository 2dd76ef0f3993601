"""``ailabber submit [CONFIG]``: snapshot the project and commit it to the spool."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ailabber.cli.common import (
    EXIT_USAGE,
    CliError,
    check_name_option,
    get_settings,
    print_json,
    spoold_pid,
    task_json,
)
from ailabber.model import render
from ailabber.storage.spool import Spool
from ailabber.storage.upload_limits import UploadLimits, published


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", default="task_config.toml", type=Path)
    p.add_argument("--json", action="store_true", help="print the new task as JSON")
    p.add_argument("--name", help="name the task (overrides name in the config); usable instead of its id")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ailabber.model.config import ConfigError  # imported here: the other verbs start faster
    from ailabber.workstation.submit import submit

    check_name_option(args.name)
    settings = get_settings()
    spool = Spool(settings.spool)
    limits = published(spool.root).tighter(UploadLimits(settings.max_upload_bytes, settings.max_upload_files))
    try:
        result = submit(args.config, spool, limits, name=args.name)
    except ConfigError as exc:
        for line in exc.problems:
            print(f"ailabber: {line}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        raise CliError(f"cannot write the task into {spool.root}: {exc}") from None
    if args.json:
        print_json(task_json(result.status, "new"))
        return 0
    named = f" as '{result.status.extra['name']}'" if "name" in result.status.extra else ""
    size = render.size(result.plan.total_bytes)
    print(f"submitted {result.task_id}{named} ({result.plan.file_count} files, {size})")
    print(f"  status: ailabber status {result.task_id[-6:]}    logs: ailabber logs -f {result.task_id[-6:]}")
    if spoold_pid(spool) is None:
        print("  note: spoold is not running; the task will be sent when it starts (ailabber up)", file=sys.stderr)
    return 0
