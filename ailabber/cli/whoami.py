"""``ailabber whoami``: who the daemons will say you are, and where your spool is."""

from __future__ import annotations

import argparse
import os

from ailabber.cli.common import get_spool, print_json, spoold_pid
from ailabber.home import ailabber_home, os_user
from ailabber.settings import SettingsError, load_spoold_settings


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spool = get_spool()
    try:
        settings = load_spoold_settings(None)
        remote: str | None = settings.remote
        problem = None
    except SettingsError as exc:
        remote, problem = None, str(exc)
    pid = spoold_pid(spool)
    info = {
        "user": os_user(),
        "uid": os.getuid(),
        "home": str(ailabber_home()),
        "spool": str(spool.root),
        "remote": remote,
        "spoold_pid": pid,
        "spoold_running": pid is not None,
        "tasks": len(spool.all_ids()),
    }
    if problem:
        info["config_error"] = problem
    if args.json:
        print_json(info)
        return 0
    width = max(len(k) for k in info)
    for k, v in info.items():
        print(f"{k.ljust(width)}  {v if v is not None else '-'}")
    return 0
