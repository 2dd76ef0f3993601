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
from collections.abc import Callable

from ailabber.cli.common import EXIT_FAIL, EXIT_REFUSED, EXIT_USAGE, CliError, get_settings
from ailabber.cli.helptext import describe
from ailabber.storage.spool import Spool
from ailabber.web import server


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
    spool = Spool(get_settings().spool)
    me = own_spool(spool)
    from ailabber.web.student import StudentSite

    return serve(args, lambda refresh: StudentSite(spool, me, refresh), lambda d: [
        f"ailabber web: {me}'s tasks from {spool.root}, on {server.HOST} only (port {d.port}); Ctrl-C stops it",
        f"open {d.url}",
    ])


def serve(args: argparse.Namespace, site: Callable[[float], server.Site],
          lines: Callable[[server.Dashboard], list[str]]) -> int:
    """Start a dashboard with the options of ``server.add_options`` (one line for a bad
    option or a port it cannot listen on), print ``lines`` and serve until Ctrl-C; the
    student's ``web`` and the staff's ``admin web`` alike.  ``site`` gets the refresh."""
    try:
        options = server.Options.of(args)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    try:
        dashboard = server.start(site(options.refresh), options)
    except OSError as exc:
        raise CliError(f"--port: cannot listen on {server.HOST}:{options.port}: {exc.strerror or exc}",
                       EXIT_FAIL) from None
    return server.run(dashboard, lines(dashboard))


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
