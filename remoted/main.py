"""``ailabber-remoted --config FILE``: the cluster-side daemon."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ailabber.daemon import setup_logging
from ailabber.settings import SettingsError, load_remoted_settings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ailabber-remoted", description="Run ailabber's cluster-side daemon.")
    ap.add_argument("--config", required=True, type=Path, help="remoted YAML file (keys: root, scheduler, gpus, ...)")
    ap.add_argument("--verbose", "-v", action="store_true")
    ap.add_argument("--check", action="store_true", help="check this cluster-side setup, print JSON, exit")
    args = ap.parse_args(argv)
    setup_logging("remoted", args.verbose)
    try:
        settings = load_remoted_settings(args.config)
    except SettingsError as exc:
        print(f"ailabber-remoted: {exc}", file=sys.stderr)
        return 2
    if args.check:
        from ailabber.checks import dump
        from remoted.check import run_checks

        checks = run_checks(settings)
        print(dump(checks))
        return 0 if all(c.ok for c in checks) else 1
    from remoted.daemon import run

    return run(settings, lambda: load_remoted_settings(args.config))


if __name__ == "__main__":
    sys.exit(main())
