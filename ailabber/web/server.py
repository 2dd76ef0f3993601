"""The dashboards' HTTP server, and every rule that keeps a read-only page safe on a
shared machine.

Every user of a workstation or a login node can connect to 127.0.0.1, so listening there
only keeps the network out, not the neighbours.  What keeps them out is a random token
made at each start (``secrets.token_urlsafe``), required on every request: in the URL the
command prints (``?token=``, as Jupyter does), then in a cookie the first answer sets.  It
is compared in constant time and never logged.  Without it: 403, and nothing else is
said.  Nothing on a page changes state, so any method but GET and HEAD is answered 405
before anything is read.  No URL names a file: the site gets the path and picks a page
(a task id in it is checked with ``ailabber.model.ids``), and the static files are a
fixed list read from the package.  Every answer carries a Content-Security-Policy that
allows the dashboard's own script and stylesheet only (no inline script: a name that
slipped through escaping still could not run), ``nosniff``, no referrer, no caching.

Why the standard library's ``ThreadingHTTPServer``: the pages are read-only, rendered
from files at each request, and refreshed by polling every few seconds; there is no
stream to hold open.  An ASGI stack would add a set of dependencies (and their updates)
to what root installs on the cluster for nothing these pages need.  A thread per request
keeps one slow answer (a large log) from holding the others; the number of connections
at once is capped and an idle one is dropped, so a neighbour who opens many cannot
exhaust the process.
"""

from __future__ import annotations

import argparse
import hmac
import math
import secrets
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, NamedTuple, Protocol
from urllib.parse import parse_qs, urlsplit

from ailabber.web.html import DEFAULT_REFRESH

#: The only address the dashboards listen on.
HOST = "127.0.0.1"
#: Host names a browser on this machine (or at the near end of ``ssh -L``) sends.
LOCAL_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})

HTML, TEXT = "text/html; charset=utf-8", "text/plain; charset=utf-8"
#: The files under ``static/``, the only ones ever served, by name.
STATIC = {"dashboard.css": "text/css; charset=utf-8", "dashboard.js": "text/javascript; charset=utf-8"}

SECURITY_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)

#: Connections served at once; more are closed at once.
MAX_CONNECTIONS = 32
#: Seconds a connection may stay silent before it is dropped.
IDLE_TIMEOUT = 20.0
#: Query fields a request may carry (``compare?id=...`` takes a few).
MAX_FIELDS = 64

Query = dict[str, list[str]]


class Reply(NamedTuple):
    status: int
    body: bytes
    content_type: str = HTML
    headers: tuple[tuple[str, str], ...] = ()


def text_reply(status: int, text: str) -> Reply:
    return Reply(status, (text + "\n").encode(), TEXT)


class Site(Protocol):
    """One view: the page for a path (without its query) and the query's fields."""

    def reply(self, path: str, query: Query) -> Reply: ...


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, port: int, site: Site, token: str, log: Callable[[str], None] | None):
        self.site = site
        self.token = token
        self.log = log
        self.cookie = ""
        here = resources.files(__package__).joinpath("static")
        self.static = {name: here.joinpath(name).read_bytes() for name in STATIC}
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__((HOST, port), _Handler)
        self.cookie = f"ailabber-{self.server_address[1]}"

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Handler(BaseHTTPRequestHandler):
    server_version = "ailabber-web"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    server: _Server

    def version_string(self) -> str:
        return self.server_version

    def parse_request(self) -> bool:
        """405 for anything but GET and HEAD, before the token or the path is looked at."""
        if not super().parse_request():
            return False
        if self.command not in ("GET", "HEAD"):
            self.close_connection = True
            self._send(Reply(405, b"405: this dashboard only shows pages (GET, HEAD)\n", TEXT,
                             (("Allow", "GET, HEAD"),)))
            return False
        return True

    def do_GET(self) -> None:        # noqa: N802 - the name http.server dispatches to
        self._answer()

    def do_HEAD(self) -> None:       # noqa: N802
        self._answer()

    def _answer(self) -> None:
        url = urlsplit(self.path)
        try:
            query = parse_qs(url.query, max_num_fields=MAX_FIELDS)
        except ValueError:
            self._send(text_reply(400, "400: too many query fields"))
            return
        if not self._local_host():
            self._send(text_reply(403, "403: this dashboard answers only to 127.0.0.1 or localhost"))
            return
        given = query.pop("token", [])
        from_url = bool(given) and self._matches(given[0])
        if not (from_url or self._matches(self._cookie())):
            self._send(text_reply(403, "403: this dashboard needs the token in the URL its command printed"))
            return
        reply = self._static(url.path) or self._page(url.path, query)
        if from_url:
            reply = reply._replace(headers=(*reply.headers, (
                "Set-Cookie", f"{self.server.cookie}={self.server.token}; Path=/; HttpOnly; SameSite=Strict")))
        self._send(reply)

    def _page(self, path: str, query: Query) -> Reply:
        try:
            return self.server.site.reply(path, query)
        except Exception:  # noqa: BLE001 - one broken page must not end the dashboard; the terminal says why
            traceback.print_exc(file=sys.stderr)
            return text_reply(500, "500: this page could not be made; the terminal running the dashboard says why")

    def _static(self, path: str) -> Reply | None:
        name = path.removeprefix("/static/")
        if name == path or name not in STATIC:
            return None
        return Reply(200, self.server.static[name], STATIC[name])

    def _matches(self, given: str) -> bool:
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self.server.token.encode())

    def _cookie(self) -> str:
        raw = self.headers.get("Cookie")
        if not raw:
            return ""
        try:
            jar = SimpleCookie(raw)
        except CookieError:
            return ""
        morsel = jar.get(self.server.cookie)
        return morsel.value if morsel is not None else ""

    def _local_host(self) -> bool:
        """The Host header names this machine's loopback (any port: ``ssh -L`` may forward
        another one): a page of some web site that resolves its own name to 127.0.0.1
        (DNS rebinding) is refused even before the token is asked for."""
        host = (self.headers.get("Host") or "").strip().lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name in LOCAL_NAMES

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in (*SECURITY_HEADERS, *reply.headers):
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.server.log is not None:     # the path only: the query may hold the token
            self.server.log(f"{self.command} {urlsplit(self.path).path} {code}")

    def log_message(self, format: str, *args: Any) -> None:     # noqa: A002 - the base class's name
        if self.server.log is not None:
            self.server.log(format % args)


class Dashboard:
    """One view served on 127.0.0.1, with its own token."""

    def __init__(self, site: Site, port: int = 0, log: Callable[[str], None] | None = None):
        self.token = secrets.token_urlsafe(32)
        self._server = _Server(port, site, self.token, log)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """What to open, token included."""
        return f"http://{HOST}:{self.port}/?token={self.token}"

    def serve(self) -> None:
        """Answer until interrupted (Ctrl-C, SIGTERM), then close the socket."""
        try:
            self._server.serve_forever(poll_interval=0.5)
        finally:
            self._server.server_close()

    def close(self) -> None:
        self._server.shutdown()


class Options(NamedTuple):
    """What both dashboard commands take: ``--port``, ``--refresh``, ``--verbose``."""

    port: int
    refresh: float
    verbose: bool

    @classmethod
    def of(cls, args: argparse.Namespace) -> Options:
        """The options, checked; ``ValueError`` naming the option otherwise."""
        if not 0 <= args.port <= 65535:
            raise ValueError(f"--port: must be 0 (any free port) or 1-65535, got {args.port}")
        if not (args.refresh >= 0.5 and math.isfinite(args.refresh)):
            raise ValueError(f"--refresh: must be a number of seconds >= 0.5, got {args.refresh:g}")
        return cls(args.port, args.refresh, args.verbose)


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=0,
                   help="the port on 127.0.0.1 to listen on (default: any free one, printed)")
    p.add_argument("--refresh", type=float, default=DEFAULT_REFRESH, metavar="SECONDS",
                   help=f"how often the pages update themselves (default {DEFAULT_REFRESH:g})")
    p.add_argument("-v", "--verbose", action="store_true", help="print each request (never its token)")


def _log(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)


def start(site: Site, options: Options) -> Dashboard:
    """The dashboard, listening; ``OSError`` if the port cannot be had."""
    return Dashboard(site, options.port, _log if options.verbose else None)


def run(dashboard: Dashboard, lines: list[str]) -> int:
    """Print ``lines`` (where to go), then serve until Ctrl-C (exit 0) or SIGTERM."""
    print("\n".join(lines), flush=True)
    try:
        dashboard.serve()
    except KeyboardInterrupt:
        return 0
    return 0


def ssh_hint(port: int) -> str:
    """How to reach a dashboard on this machine from one's own (the staff's view runs on
    the cluster's login node)."""
    return f"ssh -N -L {port}:{HOST}:{port} {socket.gethostname()}"
