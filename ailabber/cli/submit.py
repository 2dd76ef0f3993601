"""``ailabber submit [CONFIG]``: snapshot the project and commit it to the spool."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ailabber.cli.common import (
    EXIT_USAGE,
    CliError,
    check_name_option,
    get_settings,
    print_json,
    spoold_pid,
    task_json,
)
from ailabber.cli.helptext import describe
from ailabber.daemonkit.spoold_settings import SpooldSettings
from ailabber.model import render
from ailabber.model.task import TaskStatus
from ailabber.storage.spool import Spool
from ailabber.storage.upload_limits import UploadLimits, published_limits

if TYPE_CHECKING:
    from ailabber.model.joblimits import JobLimits

T = TypeVar("T")


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, """\
Check CONFIG (default ./task_config.toml), take a snapshot of the upload directory and
put the task in your spool; spoold sends it to the cluster.  Prints the task id.
Exits 2 on config errors (one line per problem), 1 if the spool cannot be written.""", """\
  ailabber submit                               ./task_config.toml
  ailabber submit experiments/lr-sweep.toml     another config (paths are relative to it)
  ailabber submit --name lr-0.1                 a name to use instead of its id
  ailabber submit --dry-run                     what would be sent, left out and changed; sends nothing
  id=$(ailabber submit --json | jq -r .id)      the id, for a script""")
    p.add_argument("config", nargs="?", default="task_config.toml", type=Path)
    p.add_argument("--json", action="store_true", help="print the new task (with --dry-run: the report) as JSON")
    p.add_argument("--dry-run", action="store_true",
                   help="write nothing; show what would be uploaded, left out and changed, and the limits")
    p.add_argument("--name", help="name the task (overrides name in the config); usable instead of its id")
    add_wait_option(p)
    p.set_defaults(func=run)


def add_wait_option(p: argparse.ArgumentParser) -> None:
    """``--wait`` of every verb that makes a task (``report`` then follows it)."""
    p.add_argument("--wait", action="store_true",
                   help="then follow it as `ailabber wait` does (with --json: on stderr)")


def run(args: argparse.Namespace) -> int:
    from ailabber.workstation.submit import submit  # imported here: the other verbs start faster

    check_name_option(args.name)
    settings = get_settings()
    spool = Spool(settings.spool)
    limits, jobs = cluster_limits(settings, spool)
    if args.dry_run:
        from ailabber.cli.dryrun import dry_run

        return dry_run(args.config, spool, limits, jobs, args.json)
    result = explained(spool, lambda: submit(args.config, spool, limits, jobs, args.name))
    from ailabber.workstation.upload_warnings import upload_warnings, warning_lines

    for line in warning_lines(upload_warnings(result.plan.entries, result.config.files)):
        print(f"ailabber: {line}", file=sys.stderr)
    what = f"{result.plan.file_count} files, {render.size(result.plan.total_bytes)}"
    return report(spool, result.status, what, args)


def explained(spool: Spool, write: Callable[[], T]) -> T:
    """``write()``, which writes a task into the spool; a refused config becomes a usage
    error of one line per problem, any other failure one line naming the spool."""
    from ailabber.model.config import ConfigError

    try:
        return write()
    except ConfigError as exc:
        raise CliError("\nailabber: ".join(exc.problems), EXIT_USAGE) from None
    except OSError as exc:
        raise CliError(f"cannot write the task into {spool.root}: {exc}") from None


def cluster_limits(settings: SpooldSettings, spool: Spool) -> tuple[UploadLimits, JobLimits | None]:
    """The upload limits (the student's own and the cluster's, whichever is tighter) and the
    cluster's job limits, as of the last limits.json spoold pulled."""
    published, jobs = published_limits(spool.root)
    return published.tighter(UploadLimits(settings.max_upload_bytes, settings.max_upload_files)), jobs


def report(spool: Spool, status: TaskStatus, what: str, args: argparse.Namespace) -> int:
    """What a new task is told: its id and where to follow it (or its status as JSON),
    then, with ``--wait``, how it goes until it ends."""
    if args.json:
        print_json(task_json(status, "new"))
        return _then_wait(args, spool, status.id)
    task_id = status.id
    named = f" as '{status.extra['name']}'" if "name" in status.extra else ""
    print(f"submitted {task_id}{named} ({what})")
    print(f"  status: ailabber status {task_id[-6:]}    logs: ailabber logs -f {task_id[-6:]}")
    if spoold_pid(spool) is None:
        print("  note: spoold is not running; the task will be sent when it starts (ailabber up)", file=sys.stderr)
    return _then_wait(args, spool, task_id)


def _then_wait(args: argparse.Namespace, spool: Spool, task_id: str) -> int:
    if not args.wait:
        return 0
    from ailabber.cli.wait import follow

    sys.stdout.flush()
    return follow(spool, task_id, out=sys.stderr if args.json else sys.stdout)
