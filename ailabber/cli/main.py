"""Entry point of the ``ailabber`` command.

Only the module of the verb being run is imported: every verb pays for its own imports
and nothing else, which keeps a small ``ailabber submit`` close to the interpreter's
own start-up time.  ``ailabber --help`` needs nothing but the table below.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import signal
import sys

from ailabber import __version__

# verb -> (module under ailabber.cli, function that adds its arguments, one-line help: none hides the verb).
# A dotted module is imported as named: the staff's commands are remoted's (remoted/admin/).
VERBS: dict[str, tuple[str, str, str]] = {
    "whoami": ("whoami", "configure", "show your identity, spool and remote"),
    "submit": ("submit", "configure", "submit a task (default config: ./task_config.toml)"),
    "resubmit": ("resubmit", "configure", "submit a task's files again as a new task (--edit: change its config)"),
    "status": ("status", "configure_status", "show one task"),
    "list": ("status", "configure_list", "list your tasks, oldest first"),
    "logs": ("logs", "configure", "print a task's output (-f: follow while it runs)"),
    "fetch": ("fetch", "configure", "copy a task's logs and results (default ./ailabber-results/<id>/)"),
    "cancel": ("cancel", "configure", "cancel tasks (pending: canceled; running: terminated)"),
    "wait": ("wait", "configure", "wait for a task to end (exit 0 only if it completed)"),
    "clean": ("clean", "configure", "remove finished tasks from the local spool (default: finished 7 days ago or more)"),
    "init": ("init", "configure", "write a commented ./task_config.toml"),
    "doctor": ("doctor", "configure", "check your setup (config, spool, spoold, remote, remoted, scheduler, uv)"),
    "up": ("up", "configure", "run spoold and remoted on this machine, in the foreground"),
    "demo": ("demo", "configure", "run the bundled example end to end in a temporary home"),
    "metrics": ("metrics", "configure", "show the metrics a task's job wrote: last values and charts"),
    "web": ("web", "configure", "your tasks, logs and metric charts in a browser (127.0.0.1, with a token)"),
    "completion": ("completion", "configure", "print a completion script for bash, zsh or fish"),
    "admin": ("remoted.admin.cli", "configure", "(course staff, on the cluster) every student's tasks, holds, limits, usage"),
    "_complete": ("completion", "configure_hidden", ""),      # no help: hidden (the scripts' own call)
}

EXIT_USAGE = 2      # as ailabber.cli.common.EXIT_USAGE, without importing it for --help


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's own formatter imports shutil (and with it bz2 and lzma) for the terminal
    width on every ``add_argument``; this one asks os, as shutil would.  Descriptions and
    examples are shown as written (``common.describe``)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=_columns() - 2)


def _columns() -> int:
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


def verbs_named(argv: list[str]) -> set[str]:
    """The verbs whose arguments this command line needs: the verb itself (the first word
    that is not an option) and, for ``help VERB``, the verb asked about."""
    words = [w for w in argv if not w.startswith("-")]
    if not words:
        return set()
    if words[0] == "help":
        return set(words[1:2])
    return {words[0]}


def build_parser(configure: set[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the verbs in ``configure`` (all if None) get their arguments.  When
    ``configure`` names known verbs, only they (and ``help``) are added at all: a sub-parser
    costs argparse a few hundred microseconds, and ``submit`` should not pay for twenty."""
    ap = argparse.ArgumentParser(
        prog="ailabber", formatter_class=_Formatter,
        description="Send GPU tasks to the cluster and get their results back.  Every command works on\n"
                    "your local spool ($AILABBER_HOME/spool), even while the daemons or the network are down.",
        epilog="examples:\n"
               "  ailabber init && ailabber submit     describe a task in ./task_config.toml, then send it\n"
               "  ailabber list                        your tasks and their states\n"
               "  ailabber logs -f b7tstc              follow a task's output (any unique part of its id)\n"
               "  ailabber help submit                 the options and examples of one command",
    )
    ap.add_argument("--version", action="version", version=f"ailabber {__version__}")
    sub = ap.add_subparsers(dest="verb", metavar="COMMAND", prog="ailabber")   # prog: no formatter (nor shutil) unless help is shown
    sole = bool(configure) and all(v in VERBS for v in configure or ())
    for verb, (module, function, help_text) in VERBS.items():
        if (sole or not help_text) and verb not in (configure or ()):
            continue          # (a hidden verb is there only when named: not in any list of choices)
        p = (sub.add_parser(verb, help=help_text, formatter_class=_Formatter) if help_text
             else sub.add_parser(verb, formatter_class=_Formatter))
        if configure is None or verb in configure:
            getattr(importlib.import_module(module if "." in module else f"ailabber.cli.{module}"), function)(p)
    p = sub.add_parser("help", help="show help for a command", formatter_class=_Formatter,
                       description="Show the help of one command, or of ailabber itself.",
                       epilog="examples:\n  ailabber help           every command\n"
                              "  ailabber help submit    what submit does, its options and examples")
    p.add_argument("topic", nargs="?", metavar="COMMAND")
    p.set_defaults(func=lambda a: _help(ap, sub, a))
    return ap


def _help(ap: argparse.ArgumentParser, sub: argparse._SubParsersAction, args: argparse.Namespace) -> int:
    if args.topic:
        if args.topic not in sub.choices:
            print(f"ailabber: no command '{args.topic}'", file=sys.stderr)
            return EXIT_USAGE
        sub.choices[args.topic].print_help()
    else:
        ap.print_help()
    return 0


def _terminate(_signum: int, _frame: object) -> None:
    # SIGTERM unwinds like Ctrl-C, so that a half-written submission is removed from tmp/.
    raise SystemExit(143)


#: The cyclic garbage collector's first threshold for a command.  Start-up creates tens of
#: thousands of objects that live as long as the process (modules, classes, functions) and
#: almost no cycles, and the default threshold (700) has the collector scan them about twenty
#: times: some 5 ms of a small ``submit``.  A long-running verb (``wait``, ``logs -f``, ``up``)
#: still collects, after this many allocations.
GC_THRESHOLD = 100_000


def main(argv: list[str] | None = None) -> int:
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    signal.signal(signal.SIGTERM, _terminate)
    argv = sys.argv[1:] if argv is None else argv
    ap = build_parser(verbs_named(argv))
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help()
        return EXIT_USAGE
    from ailabber.cli.common import CliError

    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"ailabber: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        # A broken spool or an impossible destination: say which file, in one line.
        where = f": {exc.filename}" if exc.filename else ""
        print(f"ailabber: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
