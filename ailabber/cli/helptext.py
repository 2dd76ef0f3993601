"""A verb's ``--help``: what it does, then examples.

Both are shown as written (``main._Formatter`` keeps their lines), so the examples line
up as a student would type them.  Setting them costs nothing at start-up: the text is
only formatted when help is asked for.
"""

from __future__ import annotations

import argparse


def describe(p: argparse.ArgumentParser, description: str, examples: str) -> None:
    p.description = description
    p.epilog = "examples:\n" + examples
