"""``ailabber up``: run spoold and remoted on this machine, in the foreground."""

from __future__ import annotations

import argparse

from ailabber.cli.common import EXIT_USAGE, CliError
from ailabber.cli.helptext import describe


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, """\
Run spoold and remoted on this machine in the foreground (Ctrl-C stops both): a whole
ailabber on one machine, for trying it out or a single GPU box.""", """\
  ailabber up
  ailabber up --gpus 2 -v
  ailabber up --scheduler slurm""")
    p.add_argument("--scheduler", choices=["local", "slurm"], default=None,
                   help="scheduler for remoted (saved in $AILABBER_HOME/remoted.yaml; default local)")
    p.add_argument("--gpus", type=int, default=None, help="GPUs the local scheduler may use (default: nvidia-smi -L)")
    p.add_argument("--verbose", "-v", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ailabber.daemonkit.yamlfile import SettingsError
    from ailabber.workstation.up import run_foreground

    try:
        return run_foreground(args.scheduler, args.gpus, args.verbose)
    except SettingsError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
