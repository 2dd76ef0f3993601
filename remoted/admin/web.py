"""``ailabber admin web``: the course staff's dashboard, served on the cluster's login
node to 127.0.0.1 only, with a per-start token, and reached from the staff's own machine
through an ssh port forward.  Staff only (``cli.staff``), checked before anything is
read or any port is opened; the page is ``dashboard.py``, the server ``ailabber/web/``.
"""

from __future__ import annotations

import argparse

from ailabber.cli.helptext import describe
from ailabber.cli.web import serve
from ailabber.web import server
from remoted.admin.cli import staff


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, """\
Serve the course's dashboard: remoted's health, the queue in fair order with why each
task waits, the running jobs and the GPUs they hold, each student's use this week, and
the recent failures.  The page updates itself and changes nothing.

It listens on 127.0.0.1 only and prints the URL to open, with a token that changes at
every start, and the ssh command that brings the port to your own machine.""", """\
  ailabber admin web
  ailabber admin web --port 8765                then, on your machine: ssh -N -L 8765:127.0.0.1:8765 login-node
  ailabber admin --remoted-config /srv/ailabber/remoted.yaml web""")
    server.add_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    who = staff(args)
    from remoted.admin.dashboard import StaffSite

    return serve(args, lambda refresh: StaffSite(who.settings, who.who, refresh), lambda d: [
        f"ailabber admin web: the course on {who.root}, for {who.who}, on {server.HOST} only "
        f"(port {d.port}); Ctrl-C stops it",
        f"open {d.url}",
        f"from your own machine: {server.ssh_hint(d.port)}  (then open the same URL there)",
    ])
