"""``ailabber web``: the student's dashboard, in a browser, from their own spool.

It serves only the spool of the user who starts it, read with that user's rights: the
spool must belong to the real uid running the command (root is refused another user's
spool), so that nobody serves someone else's files to whoever holds the token.  What it
serves and how is ``ailabber/web/``.
"""

from __future__ import annotations

import argparse
import os
import pwd

from ailabber.cli.common import EXIT_FAIL, EXIT_USAGE, CliError, get_settings
from ailabber.cli.helptext import describe
from ailabber.storage.spool import Spool
from ailabber.web import server

#: Exit code of a refused start (sysexits' EX_NOPERM), as ``ailabber admin`` refuses.
EXIT_REFUSED = 77


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, """\
Show your tasks in a web browser: their states and timelines, each task's log as it
grows, and charts of the metrics your jobs write to $AILABBER_METRICS, with several
runs overlaid to compare them.  The pages update themselves.

It listens on 127.0.0.1 only and prints the URL to open, with a token that changes at
every start: without it the pages are refused, so other users of this machine cannot
read them.  It reads your spool only, like list and status, and changes nothing.""", """\
  ailabber web                                  any free port; open the URL it prints
  ailabber web --port 8765                      a port of your choice
  ailabber web --refresh 2                      update the pages every 2 seconds""")
    server.add_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        options = server.Options.of(args)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    spool = Spool(get_settings().spool)
    me = own_spool(spool)
    from ailabber.web.student import StudentSite

    try:
        dashboard = server.start(StudentSite(spool, me, options.refresh), options)
    except OSError as exc:
        raise CliError(f"--port: cannot listen on {server.HOST}:{options.port}: {exc.strerror or exc}",
                       EXIT_FAIL) from None
    return server.run(dashboard, [
        f"ailabber web: {me}'s tasks from {spool.root}, on {server.HOST} only (port {dashboard.port}); "
        "Ctrl-C stops it",
        f"open {dashboard.url}",
    ])


def own_spool(spool: Spool) -> str:
    """The name of the user running this command, once the spool is known to be theirs."""
    uid = os.getuid()
    me = _name(uid)
    try:
        st = os.stat(spool.root)
    except FileNotFoundError:
        raise CliError(f"no spool at {spool.root} yet: it is made by the first ailabber submit "
                       "(or by spoold's start)", EXIT_FAIL) from None
    if st.st_uid != uid:
        raise CliError(f"{spool.root} belongs to {_name(st.st_uid)}, not to {me}: ailabber web serves only "
                       "the spool of the user who starts it", EXIT_REFUSED)
    return me


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
