"""``ailabber submit [CONFIG]``: snapshot the project and commit it to the spool."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ailabber.cli.common import EXIT_USAGE, CliError, get_settings, print_json, spoold_pid, task_json
from ailabber.model import render
from ailabber.storage.spool import Spool
from ailabber.storage.upload_limits import UploadLimits, published, published_jobs


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", default="task_config.toml", type=Path)
    p.add_argument("--json", action="store_true", help="print the new task as JSON")
    p.add_argument("--wait", action="store_true",
                   help="then follow it as `ailabber wait` does (with --json: on stderr)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ailabber.model.config import ConfigError  # imported here: the other verbs start faster
    from ailabber.workstation.submit import submit

    settings = get_settings()
    spool = Spool(settings.spool)
    limits = published(spool.root).tighter(UploadLimits(settings.max_upload_bytes, settings.max_upload_files))
    try:
        result = submit(args.config, spool, limits, published_jobs(spool.root))
    except ConfigError as exc:
        for line in exc.problems:
            print(f"ailabber: {line}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        raise CliError(f"cannot write the task into {spool.root}: {exc}") from None
    if args.json:
        print_json(task_json(result.status, "new"))
        return _then_wait(args, spool, result.task_id)
    print(f"submitted {result.task_id} ({result.plan.file_count} files, {render.size(result.plan.total_bytes)})")
    print(f"  status: ailabber status {result.task_id[-6:]}    logs: ailabber logs -f {result.task_id[-6:]}")
    if spoold_pid(spool) is None:
        print("  note: spoold is not running; the task will be sent when it starts (ailabber up)", file=sys.stderr)
    return _then_wait(args, spool, result.task_id)


def _then_wait(args: argparse.Namespace, spool: Spool, task_id: str) -> int:
    if not args.wait:
        return 0
    from ailabber.cli.wait import follow

    sys.stdout.flush()
    return follow(spool, task_id, out=sys.stderr if args.json else sys.stdout)
