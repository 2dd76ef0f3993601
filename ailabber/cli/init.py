"""``ailabber init``: write a commented task_config.toml template for the project here."""

from __future__ import annotations

import argparse
from pathlib import Path

from ailabber.cli.common import EXIT_USAGE, CliError
from ailabber.cli.helptext import describe


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, "Write a commented task config with every key (default ./task_config.toml).", """\
  ailabber init
  ailabber init experiments/baseline.toml""")
    p.add_argument("path", nargs="?", default="task_config.toml", type=Path)
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path: Path = args.path
    if path.exists() and not args.force:
        raise CliError(f"{path} already exists (use --force to overwrite)", EXIT_USAGE)
    from ailabber.model.template import detected
    from ailabber.workstation.newconfig import write_config

    found = write_config(path)
    for line in detected(found):
        print(line)
    print(f"wrote {path}: replace the placeholder in run.commands, then: ailabber submit {path}")
    return 0
