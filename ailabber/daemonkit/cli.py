"""The command line both daemons share: ``--config``, ``--verbose``, ``--check``.

Each daemon names its settings loader, its checks and its run function; parsing, logging
set-up and the one-line settings error live here once.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ailabber.daemonkit.checks import Check, dump, passed
from ailabber.daemonkit.loop import setup_logging
from ailabber.daemonkit.yamlfile import SettingsError

S = TypeVar("S")


def daemon_main(
    name: str,
    description: str,
    load: Callable[[Path | None], S],
    check: Callable[[S], list[Check]],
    run: Callable[[S, Callable[[], S]], int],
    argv: list[str] | None = None,
    config_required: bool = False,
    config_help: str = "",
) -> int:
    ap = argparse.ArgumentParser(prog=f"ailabber-{name}", description=description)
    ap.add_argument("--config", type=Path, required=config_required, default=None, help=config_help)
    ap.add_argument("--verbose", "-v", action="store_true")
    ap.add_argument("--check", action="store_true", help="check this side of the setup, print JSON, exit")
    args = ap.parse_args(argv)
    setup_logging(name, args.verbose)
    try:
        settings = load(args.config)
    except SettingsError as exc:
        print(f"ailabber-{name}: {exc}", file=sys.stderr)
        return 2
    if args.check:
        checks = check(settings)
        print(dump(checks))
        return 0 if passed(checks) else 1
    reload: Callable[[], Any] = lambda: load(args.config)  # noqa: E731
    profile = os.environ.get("AILABBER_PROFILE_DIR")
    if profile:   # where a daemon spends its time, for the benchmarks (cProfile, one file per pid)
        import cProfile

        prof = cProfile.Profile()
        try:
            return int(prof.runcall(run, settings, reload))
        finally:
            try:
                prof.dump_stats(os.path.join(profile, f"{name}-{os.getpid()}.prof"))
            except OSError as exc:   # e.g. a directory this account cannot write: still exit
                print(f"ailabber-{name}: cannot write the profile: {exc}", file=sys.stderr)
    return run(settings, reload)
