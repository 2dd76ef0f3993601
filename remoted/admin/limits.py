"""``ailabber admin limits [USER] [KEY=VALUE ...]``: per-student overrides of remoted.yaml's
``limits``, or what is in force.

The keys are remoted.yaml's ``limits`` keys and the values are written as there (``4``,
``20G``, ``24:00:00``, ``null`` for no limit; no quotes needed), checked here with the same
rule (``remoted_settings.limit_value``) so that a typo fails at once with exit 2, and again
by remoted.  ``KEY=default`` removes the override.  remoted keeps the overrides
(``state/limits.json``) and enforces them from its next pass on (``remoted.user_limits``).
Without KEY=VALUE the command only reads that file.
"""

from __future__ import annotations

import argparse

from ailabber.cli.common import EXIT_USAGE, CliError
from ailabber.cli.helptext import describe
from ailabber.daemonkit.remoted_settings import LIMIT_KEYS, limit_value
from ailabber.daemonkit.yamlfile import hint
from ailabber.model.remote_layout import USERS, valid_user
from ailabber.model.render import table
from remoted.admin.ask import ask, wait_options
from remoted.admin.cli import Staff, staff
from remoted.admin.requests import SetLimits
from remoted.user_limits import limit_text, limits_for, read_overrides

#: The value that removes an override.
DEFAULT = "default"


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, f"""\
Show or change one student's limits.  The keys are remoted.yaml's limits
({', '.join(LIMIT_KEYS)}), the values written as there: 4, 20G,
24:00:00, null (no limit).  KEY=default removes the override.  remoted enforces a change
from its next pass on, and the student's whoami shows it.  Without KEY=VALUE: the limits
in force for USER, or every override when no USER is given.""", """\
  ailabber admin limits                                   every override
  ailabber admin limits alice                             alice's limits in force
  ailabber admin limits alice max_running=4 max_gpus=2 max_disk_bytes=50G
  ailabber admin limits alice max_time_limit=2-00:00:00 max_queued=null
  ailabber admin limits alice max_running=default         the course's value again""")
    p.add_argument("user", nargs="?", help="a student")
    p.add_argument("changes", nargs="*", metavar="KEY=VALUE", help="limits to set (VALUE: as in remoted.yaml, "
                                                                   "null, or default)")
    wait_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.user is not None and not valid_user(args.user):
        raise CliError(f"{args.user!r} is not a user name", EXIT_USAGE)
    values, defaults = parse_changes(args.changes)
    who = staff(args)
    if args.user is None:
        return show_all(who)
    if not (who.root / USERS / args.user).is_dir():
        raise CliError(f"no student {args.user} on {who.root} (no {USERS}/{args.user})", EXIT_USAGE)
    if not args.changes:
        return show_user(who, args.user)
    return ask(who, SetLimits(args.user, tuple(sorted(values.items())), tuple(sorted(defaults))), args)


def parse_changes(changes: list[str]) -> tuple[dict[str, int | None], list[str]]:
    """``KEY=VALUE`` words: the values to set and the keys to reset; CliError (exit 2)
    naming the first word that is wrong."""
    values: dict[str, int | None] = {}
    defaults: list[str] = []
    for word in changes:
        key, sep, text = word.partition("=")
        if not sep or not text:
            raise CliError(f"{word}: write KEY=VALUE (e.g. max_running=4)", EXIT_USAGE)
        if key not in LIMIT_KEYS:
            raise CliError(f"{key}: not a limit{hint(key, LIMIT_KEYS)} (one of {', '.join(LIMIT_KEYS)})", EXIT_USAGE)
        if key in values or key in defaults:
            raise CliError(f"{key}: given twice", EXIT_USAGE)
        if text == DEFAULT:
            defaults.append(key)
            continue
        try:
            values[key] = limit_value(key, _yaml_like(text))
        except ValueError as exc:
            raise CliError(f"{key}: {exc}", EXIT_USAGE) from None
    return values, defaults


def _yaml_like(text: str) -> object:
    """A command-line value as remoted.yaml would hold it: ``null``, a whole number, or
    the text itself (a size, a time limit), which ``limit_value`` then reads."""
    if text == "null":
        return None
    return int(text) if text.isascii() and text.isdigit() else text


def show_user(who: Staff, user: str) -> int:
    mine = read_overrides(who.root).users.get(user, {})
    now = limits_for(who.settings.limits, read_overrides(who.root), user)
    print(table(("LIMIT", "IN FORCE", "COURSE"),
                [(key, limit_text(key, getattr(now, key)) + (" (override)" if key in mine else ""),
                  limit_text(key, getattr(who.settings.limits, key))) for key in LIMIT_KEYS]))
    return 0


def show_all(who: Staff) -> int:
    overrides = read_overrides(who.root).users
    if not overrides:
        print("no overrides: every student has the course's limits (remoted.yaml)")
        return 0
    print(table(("USER", "LIMIT", "OVERRIDE", "COURSE"),
                [(user, key, limit_text(key, v), limit_text(key, getattr(who.settings.limits, key)))
                 for user, mine in sorted(overrides.items()) for key, v in sorted(mine.items())]))
    return 0
