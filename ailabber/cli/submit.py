"""``ailabber submit [CONFIG]``: snapshot the project and commit it to the spool."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ailabber import render
from ailabber.cli.common import EXIT_USAGE, CliError, get_spool, print_json, spoold_pid, task_json
from ailabber.config import ConfigError
from ailabber.submit import submit


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("submit", help="submit a task (default config: ./task_config.toml)")
    p.add_argument("config", nargs="?", default="task_config.toml", type=Path)
    p.add_argument("--json", action="store_true", help="print the new task as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spool = get_spool()
    try:
        result = submit(args.config, spool)
    except ConfigError as exc:
        for line in exc.problems:
            print(f"ailabber: {line}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        raise CliError(f"cannot write the task into {spool.root}: {exc}") from None
    if args.json:
        print_json(task_json(result.status, "new"))
        return 0
    print(f"submitted {result.task_id} ({result.plan.file_count} files, {render.size(result.plan.total_bytes)})")
    print(f"  status: ailabber status {result.task_id[-6:]}    logs: ailabber logs -f {result.task_id[-6:]}")
    if spoold_pid(spool) is None:
        print("  note: spoold is not running; the task will be sent when it starts (ailabber up)", file=sys.stderr)
    return 0
