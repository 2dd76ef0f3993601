"""``ailabber completion bash|zsh|fish`` and the hidden ``ailabber _complete ids``.

The script is made from the parser itself, so the verbs and options it offers are exactly
the ones this version has: what each verb takes comes from its arguments (a task ``id``,
a path, a fixed set of choices), and only task ids, which change all the time, are asked
of ``ailabber _complete ids`` as the user presses Tab.  That call reads the spool and
nothing else, like every verb, so completion works while the daemons are down.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ailabber.cli.common import get_spool
from ailabber.cli.helptext import describe

SHELLS = ("bash", "zsh", "fish")
INSTALL = {
    "bash": "mkdir -p ~/.local/share/bash-completion/completions && "
            "ailabber completion bash > ~/.local/share/bash-completion/completions/ailabber",
    "zsh": "mkdir -p ~/.zfunc && ailabber completion zsh > ~/.zfunc/_ailabber   "
           "(and in ~/.zshrc, before compinit: fpath=(~/.zfunc $fpath))",
    "fish": "ailabber completion fish > ~/.config/fish/completions/ailabber.fish",
}
#: What a word may be: one of these kinds, or a fixed list of choices.
IDS, FILES, VERBS, NOTHING = "ids", "files", "verbs", "nothing"
#: Longest task name offered (a name is offered only if it is one plain word).
MAX_NAME = 200


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, """\
Print a script that completes ailabber's commands, their options and your task ids
when you press Tab.  Install it once, for your shell:
""" + "\n".join(f"  {shell + ':':6} {how}" for shell, how in INSTALL.items()) + """

A new shell picks it up.  Print it again after upgrading ailabber.""", """\
  ailabber completion bash > ~/.local/share/bash-completion/completions/ailabber
  source <(ailabber completion bash)         just for the shell you are in""")
    p.add_argument("shell", choices=SHELLS)
    p.set_defaults(func=run)


def configure_hidden(p: argparse.ArgumentParser) -> None:
    describe(p, "What the completion scripts ask for as you press Tab: your task ids (and task\n"
                "names, where tasks have them), one per line, from the local spool.", """\
  ailabber _complete ids""")
    p.add_argument("what", choices=["ids"])
    p.set_defaults(func=run_hidden)


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


def run(args: argparse.Namespace) -> int:
    from ailabber.cli.main import build_parser
    from ailabber.cli.shells import SCRIPTS

    sys.stdout.write(SCRIPTS[args.shell](describe_cli(build_parser()), INSTALL[args.shell]))
    return 0


def task_words(spool_root: Path) -> list[str]:
    """Every task id in the spool, then the names tasks were given (``name`` in meta.json)."""
    from ailabber.storage import fsutil
    from ailabber.storage.spool import META, STAGES, Spool

    spool = Spool(spool_root)
    ids: list[str] = []
    names: set[str] = set()
    for stage in STAGES:
        for task_id in spool.ids_in(stage):
            ids.append(task_id)
            meta = fsutil.read_json_or_none(spool.stage_dir(stage) / task_id / META)
            name = meta.get("name") if isinstance(meta, dict) else None
            if isinstance(name, str) and 0 < len(name) <= MAX_NAME and name.isprintable() and name.split() == [name]:
                names.add(name)
    return sorted(ids) + sorted(names - set(ids))


def run_hidden(args: argparse.Namespace) -> int:
    words = task_words(get_spool().root)
    if words:
        sys.stdout.write("\n".join(words) + "\n")
    return 0
