"""``ailabber fetch ID [--dest DIR]``: copy a task's logs and results out of the spool.

Results of a finished task are already in the spool (spoold pulls them when it ends).
For an unfinished one the CLI drops a fetch request and waits for spoold to pull what
exists so far: the CLI itself never touches the network.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from ailabber import render, statusfile
from ailabber.cli.common import EXIT_FAIL, CliError, find_task, get_spool, spoold_pid
from ailabber.spool import NEW, RESULTS


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("id")
    p.add_argument("--dest", type=Path, default=None)
    p.add_argument("--timeout", type=float, default=120, help="seconds to wait for spoold (unfinished tasks)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spool = get_spool()
    task_id, stage, task_dir, st = find_task(spool, args.id)
    if stage == NEW:
        raise CliError(f"{task_id} has not been sent to the cluster yet; nothing to fetch")
    if not st.terminal:
        if spoold_pid(spool) is None:
            raise CliError("spoold is not running, so results of an unfinished task cannot be pulled (start it: ailabber up)")
        req = spool.drop_request(task_id, "fetch")
        deadline = time.monotonic() + args.timeout
        while req.exists():
            if time.monotonic() > deadline:
                raise CliError(f"spoold did not deliver within {args.timeout:g}s; the request stays queued")
            time.sleep(0.2)
        loc = spool.locate(task_id)
        task_dir = loc[1] if loc else task_dir
    dest = args.dest if args.dest is not None else Path("ailabber-results") / task_id
    dest.mkdir(parents=True, exist_ok=True)
    copied = 0
    results = task_dir / RESULTS
    if results.is_dir():
        shutil.copytree(results, dest, symlinks=True, dirs_exist_ok=True)
        copied += sum(1 for p in results.rglob("*") if p.is_file())
    logs = spool.outbox(task_id) / "logs"
    if logs.is_dir():
        shutil.copytree(logs, dest / "ailabber-logs", symlinks=True, dirs_exist_ok=True)
        copied += sum(1 for p in logs.rglob("*") if p.is_file())
    final = statusfile.read_status(task_dir) or st
    shutil.copy2(task_dir / statusfile.STATUS, dest / "status.json")
    print(f"{task_id} ({render.state_text(final)}): {copied} file(s) in {dest}")
    return 0 if copied else EXIT_FAIL
