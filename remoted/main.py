"""``ailabber-remoted --config FILE``: the cluster-side daemon."""

from __future__ import annotations

import sys
from pathlib import Path

from ailabber.daemonkit.checks import Check
from ailabber.daemonkit.cli import daemon_main
from ailabber.daemonkit.remoted_settings import RemotedSettings, load_remoted_settings


def _load(path: Path | None) -> RemotedSettings:
    assert path is not None  # --config is required
    return load_remoted_settings(path)


def _check(settings: RemotedSettings) -> list[Check]:
    from remoted.check import run_checks

    return run_checks(settings)


def _run(settings: RemotedSettings, reload: object) -> int:
    from remoted.daemon import run

    return run(settings, reload)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    return daemon_main("remoted", "Run ailabber's cluster-side daemon.", _load, _check, _run, argv,
                       config_required=True, config_help="remoted YAML file (keys: root, scheduler, gpus, ...)")


if __name__ == "__main__":
    sys.exit(main())
