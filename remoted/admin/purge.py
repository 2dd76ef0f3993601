"""``ailabber admin purge --older-than AGE [--unpulled]``: remove finished tasks' files from
the cluster side, now, beyond what remoted.yaml's ``retention`` does on its own.

remoted removes ``users/<u>/tasks/<id>`` and ``users/<u>/outbox/<id>`` of every task that
finished AGE ago or more, through handles that never follow a student's symlink; its
records and so the usage stay (``remoted.purge``).  A task whose results the student's
spoold has not pulled yet is kept unless ``--unpulled`` is given.  The reply says what was
freed, per student.
"""

from __future__ import annotations

import argparse

from ailabber.cli.common import EXIT_USAGE, CliError
from ailabber.cli.helptext import describe
from ailabber.model.quantities import parse_age
from remoted.admin.ask import ask, wait_options
from remoted.admin.cli import staff
from remoted.admin.requests import Purge


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, """\
Remove the cluster-side files of tasks that finished AGE ago or more (their upload,
what the job wrote, their logs); remoted's records and the usage stay.  Tasks whose
results the student's spoold has not pulled yet are kept unless --unpulled is given.""", """\
  ailabber admin purge --older-than 30d
  ailabber admin purge --older-than 2w --unpulled      also tasks whose results were never fetched""")
    p.add_argument("--older-than", required=True, metavar="AGE",
                   help="finished at least this long ago: 30d, 12h, 2w (s, m, h, d, w)")
    p.add_argument("--unpulled", action="store_true",
                   help="also remove tasks whose results the student's spoold has not pulled")
    wait_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        age = parse_age(args.older_than)
    except ValueError as exc:
        raise CliError(f"--older-than: {exc}", EXIT_USAGE) from None
    who = staff(args)
    return ask(who, Purge(age, args.unpulled), args)
