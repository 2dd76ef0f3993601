"""``ailabber demo``: the bundled example, end to end, in a temporary home."""

from __future__ import annotations

import argparse


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ailabber.workstation.demo import run as run_demo

    return run_demo(keep=args.keep)
