"""Entry point of the ``ailabber`` command."""

from __future__ import annotations

import argparse
import signal
import sys

from ailabber import __version__
from ailabber.cli import cancel, doctor, fetch, init, logs, status, submit, wait, whoami
from ailabber.cli.common import EXIT_USAGE, CliError


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="ailabber",
        description="Send GPU tasks to the cluster and get their results back. Every command works on "
                    "your local spool ($AILABBER_HOME/spool), even while the daemons or the network are down.",
    )
    ap.add_argument("--version", action="version", version=f"ailabber {__version__}")
    sub = ap.add_subparsers(dest="verb", metavar="COMMAND")
    whoami.add_parser(sub)
    submit.add_parser(sub)
    status.add_parsers(sub)
    logs.add_parser(sub)
    fetch.add_parser(sub)
    cancel.add_parser(sub)
    wait.add_parser(sub)
    init.add_parser(sub)
    doctor.add_parser(sub)
    p = sub.add_parser("up", help="run spoold and remoted on this machine, in the foreground")
    p.add_argument("--scheduler", choices=["local", "slurm"], default=None,
                   help="scheduler for remoted (saved in $AILABBER_HOME/remoted.yaml; default local)")
    p.add_argument("--gpus", type=int, default=None, help="GPUs the local scheduler may use (default: nvidia-smi -L)")
    p.add_argument("--verbose", "-v", action="store_true")
    p.set_defaults(func=_up)
    p = sub.add_parser("demo", help="run the bundled example end to end in a temporary home")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.set_defaults(func=_demo)
    p = sub.add_parser("help", help="show help for a command")
    p.add_argument("topic", nargs="?")
    p.set_defaults(func=lambda a: _help(ap, sub, a))
    return ap


def _up(args: argparse.Namespace) -> int:
    from ailabber.settings import SettingsError
    from ailabber.up import run_foreground

    try:
        return run_foreground(args.scheduler, args.gpus, args.verbose)
    except SettingsError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def _demo(args: argparse.Namespace) -> int:
    from ailabber.demo import run

    return run(keep=args.keep)


def _help(ap: argparse.ArgumentParser, sub: argparse._SubParsersAction, args: argparse.Namespace) -> int:  # type: ignore[type-arg]
    if args.topic:
        if args.topic not in sub.choices:
            raise CliError(f"no command '{args.topic}'", EXIT_USAGE)
        sub.choices[args.topic].print_help()
    else:
        ap.print_help()
    return 0


def _terminate(_signum: int, _frame: object) -> None:
    # SIGTERM unwinds like Ctrl-C, so that a half-written submission is removed from tmp/.
    raise SystemExit(143)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    ap = build_parser()
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help()
        return EXIT_USAGE
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
