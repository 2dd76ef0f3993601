"""``ailabber-spoold [--config FILE]``: the workstation-side daemon of one user."""

from __future__ import annotations

import sys

from ailabber.daemonkit.checks import Check
from ailabber.daemonkit.cli import daemon_main
from ailabber.daemonkit.spoold_settings import SpooldSettings, load_spoold_settings


def _check(settings: SpooldSettings) -> list[Check]:
    from spoold.check import run_checks

    return run_checks(settings)


def _run(settings: SpooldSettings, reload: object) -> int:
    from spoold.daemon import run

    return run(settings, reload)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    return daemon_main("spoold", "Run ailabber's spool daemon for this user.", load_spoold_settings, _check, _run,
                       argv, config_help="spoold YAML file (default: $AILABBER_HOME/spoold.yaml, else defaults)")


if __name__ == "__main__":
    sys.exit(main())
