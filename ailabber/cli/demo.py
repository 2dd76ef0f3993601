"""``ailabber demo``: the bundled example, end to end, in a temporary home."""

from __future__ import annotations

import argparse

from ailabber.cli.helptext import describe


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, """\
Run the bundled example end to end in a temporary home: both daemons, a submit, the
task's logs and results.  Nothing of yours is touched.""", """\
  ailabber demo
  ailabber demo --keep                          keep the directory to look around""")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ailabber.workstation.demo import run as run_demo

    return run_demo(keep=args.keep)
