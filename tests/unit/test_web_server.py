"""The dashboards' server and page parts: the token on every request, GET/HEAD only, the
Host check, the security headers, a fixed list of static files, a broken page that does
not stop the server; escaping by default; SVG charts that carry every point.  The server
is the real one, on 127.0.0.1, asked with ``http.client``."""

from __future__ import annotations

import http.client
import re
import threading
from collections.abc import Iterator

import pytest

from ailabber.web.charts import MAX_DRAWN, Bar, Line, bar_chart, line_chart, thinned, ticks
from ailabber.web.html import Markup, esc, table
from ailabber.web.server import Dashboard, Query, Reply, text_reply

HOSTILE = '<script>alert("x")</script>'


class EchoSite:
    """Answers ``/`` with a hostile text escaped, ``/boom`` with an exception."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Query]] = []

    def reply(self, path: str, query: Query) -> Reply:
        self.seen.append((path, query))
        if path == "/boom":
            raise RuntimeError("a bug")
        if path == "/":
            return Reply(200, f"<p>{esc(HOSTILE)}</p>".encode())
        return text_reply(404, "404: no such page")


@pytest.fixture
def served() -> Iterator[tuple[Dashboard, EchoSite, list[str]]]:
    site, logged = EchoSite(), []
    d = Dashboard(site, 0, logged.append)
    t = threading.Thread(target=d.serve, daemon=True)
    t.start()
    yield d, site, logged
    d.close()
    t.join(10)


def ask(d: Dashboard, path: str, method: str = "GET", headers: dict[str, str] | None = None
        ) -> tuple[int, dict[str, str], bytes]:
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


Served = tuple[Dashboard, EchoSite, list[str]]


def test_every_request_needs_the_token_from_the_url_or_its_cookie(served: Served) -> None:
    d, site, logged = served
    assert d.url == f"http://127.0.0.1:{d.port}/?token={d.token}" and len(d.token) >= 40
    for path in ("/", "/?token=", f"/?token={d.token[:-1]}", f"/?token={d.token}x", "/static/dashboard.js",
                 "/task/x"):
        status, headers, body = ask(d, path)
        assert status == 403, path
        assert d.token.encode() not in body and "set-cookie" not in headers
    assert site.seen == []                                  # refused before the site is asked
    status, headers, body = ask(d, f"/?token={d.token}")
    assert status == 200 and b"&lt;script&gt;" in body and b"<script>" not in body
    cookie = headers["set-cookie"]
    assert cookie == f"ailabber-{d.port}={d.token}; Path=/; HttpOnly; SameSite=Strict"
    status, headers, _ = ask(d, "/", headers={"Cookie": f"other=1; ailabber-{d.port}={d.token}"})
    assert status == 200 and "set-cookie" not in headers
    assert ask(d, "/", headers={"Cookie": f"ailabber-{d.port}=nope"})[0] == 403
    assert ask(d, "/", headers={"Cookie": "\x7f;;=="})[0] == 403
    assert not any(d.token in line for line in logged), logged       # the log has paths, never the query


def test_only_get_and_head_are_answered(served: Served) -> None:
    d, site, _ = served
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW"):
        status, headers, _ = ask(d, f"/?token={d.token}", method)
        assert status == 405 and headers["allow"] == "GET, HEAD", method
    assert site.seen == []
    status, headers, body = ask(d, f"/?token={d.token}", "HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


def test_headers_host_check_static_files_and_a_broken_page(served: Served) -> None:
    d, _site, _ = served
    t = f"token={d.token}"
    status, headers, _ = ask(d, f"/?{t}")
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert (headers["x-content-type-options"], headers["referrer-policy"], headers["cache-control"]) == \
        ("nosniff", "no-referrer", "no-store")
    for host in ("localhost:1234", f"127.0.0.1:{d.port}", "[::1]:9"):
        assert ask(d, f"/?{t}", headers={"Host": host})[0] == 200, host
    assert ask(d, f"/?{t}", headers={"Host": "attacker.example"})[0] == 403     # DNS rebinding
    status, headers, body = ask(d, f"/static/dashboard.js?{t}")
    assert status == 200 and headers["content-type"].startswith("text/javascript") and b"refresh" in body
    for path in ("/static/../server.py", "/static/dashboard.py", "/static/", "/nothing"):
        assert ask(d, f"{path}?{t}")[0] == 404, path
    assert ask(d, f"/boom?{t}")[0] == 500
    assert ask(d, f"/?{t}")[0] == 200                        # still serving
    assert ask(d, "/?" + "&".join(f"a{i}=1" for i in range(100)) + f"&{t}")[0] == 400


def test_text_is_escaped_unless_it_is_markup() -> None:
    assert esc(HOSTILE) == "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
    assert esc(Markup("<b>ok</b>")) == "<b>ok</b>"
    out = table(("A", "B"), [[HOSTILE, Markup("<i>x</i>")]], row_ids=['"><img>'])
    assert "<script>" not in out and "<i>x</i>" in out and 'data-id="&quot;&gt;&lt;img&gt;"' in out


def _points(svg: str) -> list[int]:
    return [len(m.split()) for m in re.findall(r' points="([^"]*)"', svg)]


def test_a_chart_draws_every_point_of_every_line_and_names_them() -> None:
    svg = line_chart(HOSTILE, [Line("run a", [(1, 1.0), (2, 0.5), (3, 0.25)]), Line("run b", [(1, 2.0), (5, 1.0)]),
                               Line("run c", [])])
    assert _points(svg) == [3, 2]
    assert re.findall(r'data-points="(\d+)"', svg) == ["3", "2"]
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "run c" in svg and "no points" in svg
    assert svg.count("<circle") == 5
    flat = line_chart("flat", [Line("one", [(0, 3.0)])])     # one point, one value: still drawn
    assert _points(flat) == [1]
    many = [(float(i), float(i % 7)) for i in range(10 * MAX_DRAWN)]
    big = line_chart("big", [Line("long", many)])
    assert _points(big) == [MAX_DRAWN] and 'data-points="20000"' in big and "<circle" not in big
    assert thinned(many)[0] == many[0] and thinned(many)[-1] == many[-1]


def test_ticks_are_round_and_bars_scale_to_the_largest() -> None:
    assert ticks(0, 1) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert ticks(3, 3) == [3] and ticks(-1e308, 1e308) == [-1e308, 1e308]
    bars = bar_chart("use", [Bar("ann", 4.0, "4 h"), Bar("ben", 1.0, "1 h"), Bar(HOSTILE, 0.0, "0")])
    widths = [float(w) for w in re.findall(r'<rect class="c0" x="\d+" y="[\d.]+" width="([\d.]+)"', bars)]
    assert widths[0] == pytest.approx(4 * widths[1]) and widths[2] == 0
    assert "<script>" not in bars
