"""``ailabber admin hold`` / ``admin release``: keep queued tasks of some students, or of
everyone (a maintenance drain), from starting, and let them start again.

Held tasks stay ``pending`` with the reason ``held`` and the message given; running tasks
are untouched.  The hold is remoted's own state (``state/holds.json``, ``remoted.holds``):
it survives a restart, and ``admin tasks`` and ``doctor --remoted-config`` show it.
"""

from __future__ import annotations

import argparse

from ailabber.cli.common import EXIT_USAGE, CliError
from ailabber.cli.helptext import describe
from ailabber.model.remote_layout import USERS, valid_user
from remoted.admin.ask import ask, wait_options
from remoted.admin.cli import Staff, staff
from remoted.admin.requests import Hold, Release, RequestError, text


def configure_hold(p: argparse.ArgumentParser) -> None:
    describe(p, """\
Hold the queued tasks of one or more students (--user), or of everyone (--all): they
stay pending with the reason held and your --message, and nothing new of theirs starts
until you release them.  Running tasks go on.  The hold outlives a restart of remoted.""", """\
  ailabber admin hold --all --message "GPU node maintenance until 14:00"
  ailabber admin hold --user alice --message "please see a TA about your job sizes"
  ailabber admin release --all""")
    _whom(p)
    p.add_argument("--message", help="one line the students read in their status")
    wait_options(p)
    p.set_defaults(func=run_hold)


def configure_release(p: argparse.ArgumentParser) -> None:
    describe(p, """\
Release a hold: the students' queued tasks start again from remoted's next pass.
--all lifts the hold on the whole queue; a student held on their own stays held until
released by name (the reply names them).""", """\
  ailabber admin release --all
  ailabber admin release --user alice""")
    _whom(p)
    wait_options(p)
    p.set_defaults(func=run_release)


def _whom(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user", action="append", default=[], metavar="USER", help="one student (repeatable)")
    p.add_argument("--all", action="store_true", help="the whole queue")


def run_hold(args: argparse.Namespace) -> int:
    try:
        message = text(args.message, "--message")
    except RequestError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    _check_whom(args)
    who = staff(args)
    return ask(who, Hold(_students(who, args.user), args.all, message), args)


def run_release(args: argparse.Namespace) -> int:
    _check_whom(args)
    who = staff(args)
    return ask(who, Release(_students(who, args.user), args.all), args)


def _check_whom(args: argparse.Namespace) -> None:
    if bool(args.user) == args.all:
        raise CliError("whom? give --user USER (repeatable) or --all, not both", EXIT_USAGE)
    for user in args.user:
        if not valid_user(user):
            raise CliError(f"--user: {user!r} is not a user name", EXIT_USAGE)


def _students(who: Staff, users: list[str]) -> tuple[str, ...]:
    """The students named, each of whom must have a directory on this root (a typo would
    hold nobody, silently)."""
    for user in users:
        if not (who.root / USERS / user).is_dir():
            raise CliError(f"--user: no student {user} on {who.root} (no {USERS}/{user})", EXIT_USAGE)
    return tuple(sorted(set(users)))
