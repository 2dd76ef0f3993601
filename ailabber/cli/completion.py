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
from pathlib import Path

from ailabber.cli.common import get_spool
from ailabber.cli.completion_spec import describe_cli
from ailabber.cli.helptext import describe

SHELLS = ("bash", "zsh", "fish")
INSTALL = {
    "bash": "mkdir -p ~/.local/share/bash-completion/completions && "
            "ailabber completion bash > ~/.local/share/bash-completion/completions/ailabber",
    "zsh": "mkdir -p ~/.zfunc && ailabber completion zsh > ~/.zfunc/_ailabber   "
           "(and in ~/.zshrc, before compinit: fpath=(~/.zfunc $fpath))",
    "fish": "ailabber completion fish > ~/.config/fish/completions/ailabber.fish",
}
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


def run(args: argparse.Namespace) -> int:
    from ailabber.cli.main import build_parser
    from ailabber.cli.shells import SCRIPTS

    sys.stdout.write(SCRIPTS[args.shell](describe_cli(build_parser()), INSTALL[args.shell]))
    return 0


def task_words(spool_root: Path) -> list[str]:
    """Every task id in the spool, then the names tasks were given (from the name index;
    a name with blanks in it would be split by the shell, so it is left out)."""
    from ailabber.storage.names import names_of
    from ailabber.storage.spool import STAGES, Spool

    spool = Spool(spool_root)
    ids = sorted(task_id for stage in STAGES for task_id in spool.ids_in(stage))
    names = {n for n in names_of(spool.root, set(ids)) if len(n) <= MAX_NAME and n.split() == [n]}
    return ids + sorted(names - set(ids))


def run_hidden(args: argparse.Namespace) -> int:
    words = task_words(get_spool().root)
    if words:
        sys.stdout.write("\n".join(words) + "\n")
    return 0
