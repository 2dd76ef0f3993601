"""What the completion scripts are made from: the verbs, their options and what each word
may be, read off the full parser (``describe_cli``), so that a script offers exactly what
this version of ailabber takes.  ``shells.py`` turns it into bash, zsh and fish."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

#: What a word may be: one of these kinds, or a fixed list of choices.
IDS, FILES, VERBS, NOTHING = "ids", "files", "verbs", "nothing"


@dataclass
class Option:
    strings: tuple[str, ...]                         # "-f", "--follow"
    help: str
    value: str | tuple[str, ...] | None = None       # what its value may be (a kind or choices); None: a flag


@dataclass
class Verb:
    name: str
    help: str
    options: list[Option] = field(default_factory=list)
    args: str | tuple[str, ...] = NOTHING            # what its positional words may be


@dataclass
class Cli:
    options: list[Option]                            # before the verb: --help, --version
    verbs: list[Verb]                                # every visible verb, in the table's order


def describe_cli(ap: argparse.ArgumentParser) -> Cli:
    """What completion needs of the full parser (every verb configured)."""
    sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    verbs = []
    for name, parser in sub.choices.items():
        if name not in helps:                   # hidden
            continue
        v = Verb(name, helps[name], _options(parser))
        positional = [a for a in parser._actions if not a.option_strings and a.help != argparse.SUPPRESS]
        if positional:
            a = positional[0]
            v.args = IDS if a.dest == "id" else VERBS if name == "help" else _kind(a)
        verbs.append(v)
    return Cli(_options(ap), verbs)


def _options(parser: argparse.ArgumentParser) -> list[Option]:
    return [Option(tuple(a.option_strings), a.help or "", None if a.nargs == 0 else _kind(a))
            for a in parser._actions if a.option_strings and a.help != argparse.SUPPRESS]


def _kind(a: argparse.Action) -> str | tuple[str, ...]:
    if a.choices is not None:
        return tuple(str(c) for c in a.choices)
    return FILES if a.type is Path else NOTHING
