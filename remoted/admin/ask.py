"""Asking remoted to change something: a staff command writes one request file and waits
for remoted's reply, the way a student's cancel travels, without any new service.

The request is written under a hidden temporary name, flushed, and renamed to
``<root>/admin/requests/<id>.json`` (``fsutil.atomic_write_bytes``): remoted never sees half
a request.  The command then waits for ``<root>/admin/replies/<id>.json`` and prints what
it says.  Without remoted running (nobody holds the root's lock, as ``doctor`` tells) it
says so at once: the request stays and remoted carries it out when it runs.

Exit codes: 0 done, 1 the act failed, 2 a usage error (or an invalid request), 77
refused, 3 not carried out yet (``--no-wait``, remoted stopped, or no reply in time).
"""

from __future__ import annotations

import argparse
import errno
import time
from pathlib import Path

from ailabber.cli.common import EXIT_FAIL, CliError
from ailabber.daemonkit.lock import holder_pid
from ailabber.model.ids import new_task_id
from ailabber.model.remote_layout import ADMIN, ADMIN_REPLIES, ADMIN_REQUESTS, DAEMON_LOCK
from ailabber.storage import fsutil
from remoted.admin.cli import Staff
from remoted.admin.requests import EXIT_NOT_YET, Reply, Request, encode_request

#: How long a command waits for remoted's reply by default (seconds).
DEFAULT_WAIT = 30.0
POLL_EVERY = 0.1


def wait_options(p: argparse.ArgumentParser) -> None:
    """``--wait SECONDS`` / ``--no-wait``, shared by every command that asks remoted."""
    p.add_argument("--wait", type=float, default=DEFAULT_WAIT, metavar="SECONDS",
                   help=f"how long to wait for remoted's reply (default {DEFAULT_WAIT:g})")
    p.add_argument("--no-wait", action="store_true",
                   help="leave the request for remoted and exit 3 at once")


def ask(staff: Staff, request: Request, args: argparse.Namespace) -> int:
    """Send ``request``, wait for the reply as ``args`` say, print it; the exit code."""
    rid = send(staff.root, request)
    if args.no_wait:
        print(f"request {rid} left for remoted; it carries it out on its next pass")
        return EXIT_NOT_YET
    reply = wait_reply(staff.root, rid, args.wait)
    if reply is None:
        return EXIT_NOT_YET
    print(reply.message)
    for line in reply.lines:
        print(f"  {line}")
    return reply.exit_code


def send(root: Path, request: Request) -> str:
    """Write the request for remoted; its id."""
    requests = root / ADMIN / ADMIN_REQUESTS
    rid = new_task_id()
    try:
        fsutil.atomic_write_bytes(requests / f"{rid}.json", encode_request(request), mode=0o640)
    except FileNotFoundError:
        raise CliError(f"{requests} does not exist: remoted makes it when it starts (a version with "
                       f"ailabber admin); start remoted once", EXIT_FAIL) from None
    except PermissionError:
        raise CliError(f"{requests}: permission denied (remoted gives it to admin_group; was remoted "
                       f"restarted since admin_group was set?)", EXIT_FAIL) from None
    return rid


def wait_reply(root: Path, rid: str, timeout: float) -> Reply | None:
    """remoted's reply to request ``rid``; None, with a line saying why, if there is none
    yet (remoted is not running, or did not answer within ``timeout``)."""
    path = root / ADMIN / ADMIN_REPLIES / f"{rid}.json"
    deadline = time.monotonic() + max(0.0, timeout)
    while True:
        reply = _read(path)
        if reply is not None:
            return reply
        if holder_pid(root / DAEMON_LOCK) is None:
            print(f"remoted is not running: request {rid} stays in {path.parent.parent / ADMIN_REQUESTS} "
                  f"and is carried out when remoted starts")
            return None
        if time.monotonic() >= deadline:
            print(f"remoted has not answered request {rid} within {timeout:g}s; it stays, and remoted "
                  f"carries it out on a later pass (its reply: {path})")
            return None
        time.sleep(POLL_EVERY)


def _read(path: Path) -> Reply | None:
    try:
        return Reply.parse(fsutil.read_small(path))
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.EACCES:
            raise CliError(f"{path}: permission denied", EXIT_FAIL) from None
        return None
