"""``ailabber-spoold [--config FILE]``: the workstation-side daemon of one user."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ailabber.daemon import setup_logging
from ailabber.settings import SettingsError, load_spoold_settings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ailabber-spoold", description="Run ailabber's spool daemon for this user.")
    ap.add_argument("--config", type=Path, default=None,
                    help="spoold YAML file (default: $AILABBER_HOME/spoold.yaml, else one-machine defaults)")
    ap.add_argument("--verbose", "-v", action="store_true")
    ap.add_argument("--check", action="store_true", help="check the remote side, print JSON, exit")
    args = ap.parse_args(argv)
    setup_logging("spoold", args.verbose)
    try:
        settings = load_spoold_settings(args.config)
    except SettingsError as exc:
        print(f"ailabber-spoold: {exc}", file=sys.stderr)
        return 2
    if args.check:
        from ailabber.checks import dump
        from spoold.check import run_checks

        checks = run_checks(settings)
        print(dump(checks))
        return 0 if all(c.ok for c in checks) else 1
    from spoold.daemon import run

    return run(settings, lambda: load_spoold_settings(args.config))


if __name__ == "__main__":
    sys.exit(main())
