"""``ailabber admin SUBCOMMAND``: the table of subcommands (one module each) and what
every one of them shares: finding remoted's settings (``--remoted-config``) and refusing
anyone who is not staff before anything is read.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import NamedTuple

from ailabber.cli.common import EXIT_REFUSED, EXIT_USAGE, CliError
from ailabber.cli.helptext import describe
from ailabber.daemonkit.remoted_settings import RemotedSettings, load_remoted_settings
from ailabber.daemonkit.yamlfile import SettingsError
from remoted.admin.access import Refused, caller
from remoted.admin.course import TaskRow, course_rows

#: Where the admin guide installs remoted's settings.
DEFAULT_REMOTED_CONFIG = Path("/etc/ailabber/remoted.yaml")

# subcommand -> (module under remoted.admin, function that adds its arguments, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "tasks": ("tasks", "configure", "every task of every student (--user, --state, --reason, --json)"),
    "show": ("show", "configure", "one task: its record and its whole history (--json)"),
    "usage": ("usage", "configure", "per student: tasks by final state, GPU/CPU-hours, wall time, disk (--csv)"),
    "cancel": ("cancel", "configure", "cancel any student's tasks (--reason: what the student reads)"),
    "hold": ("hold", "configure_hold", "keep queued tasks of --user U or --all from starting (--message)"),
    "release": ("hold", "configure_release", "let held tasks start again (--user U or --all)"),
    "limits": ("limits", "configure", "show or override one student's limits (USER KEY=VALUE ...)"),
    "purge": ("purge", "configure", "remove finished tasks' files from the cluster (--older-than 30d)"),
    "web": ("web", "configure", "the course's dashboard in a browser (127.0.0.1, a token, reached by ssh -L)"),
}


class Staff(NamedTuple):
    """What a subcommand runs with: remoted's settings and who is asking."""

    settings: RemotedSettings
    who: str

    @property
    def root(self) -> Path:
        return self.settings.root


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, """\
The course staff's commands, on the cluster side: every student's tasks, cancels, holds,
per-student limits, usage and cleaning.  Allowed for root and for the members of the Unix
group remoted.yaml names in admin_group.""", """\
  ailabber admin tasks --state pending
  ailabber admin --remoted-config /srv/ailabber/remoted.yaml tasks --user alice""")
    p.add_argument("--remoted-config", type=Path, default=None, metavar="FILE",
                   help=f"remoted's settings (default: {DEFAULT_REMOTED_CONFIG})")
    sub = p.add_subparsers(dest="admin_verb", metavar="COMMAND")
    for name, (module, function, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, formatter_class=p.formatter_class)
        sp.add_argument("--remoted-config", type=Path, default=argparse.SUPPRESS, metavar="FILE",
                        help=f"remoted's settings (default: {DEFAULT_REMOTED_CONFIG})")
        getattr(importlib.import_module(f"remoted.admin.{module}"), function)(sp)
    p.set_defaults(func=lambda args: _no_subcommand(p))


def _no_subcommand(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return EXIT_USAGE


def staff(args: argparse.Namespace) -> Staff:
    """remoted's settings and the caller, once they are known to be staff; CliError
    (one line) otherwise."""
    path = args.remoted_config or DEFAULT_REMOTED_CONFIG
    try:
        settings = load_remoted_settings(path)
    except SettingsError as exc:
        raise CliError(f"{exc} (give remoted's settings with --remoted-config FILE)", EXIT_USAGE) from None
    try:
        return Staff(settings, caller(settings))
    except Refused as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None


def course(who: Staff) -> list[TaskRow]:
    """Every task of the course (``course.course_rows``); a record the caller may not
    read is a one-line error that says where remoted grants staff access."""
    try:
        return course_rows(who.root)
    except PermissionError as exc:
        group = who.settings.admin_group
        hint = (f"remoted gives the group '{group}' read access to its records when it starts or reloads"
                if group else f"{who.settings.source or 'remoted.yaml'} names no admin_group")
        raise CliError(f"cannot read {exc.filename or who.root}: permission denied ({hint})") from None
