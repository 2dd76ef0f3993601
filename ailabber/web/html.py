"""HTML built from values, escaped by default.

Everything a page shows that came from a file (task names, commands, messages, log lines,
metric names: the student's own text, or another student's on the staff page) is plain
``str`` and is escaped when it is put into markup; only ``Markup`` (what these functions
return) is inserted as it is.  There is no way to put a ``str`` into a page unescaped
short of calling ``Markup`` on it, which nothing does with a file's text.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

#: How often the pages fetch themselves again unless the command says otherwise.
DEFAULT_REFRESH = 5.0


class Markup(str):
    """Text that is already HTML (escaped where it holds values)."""

    __slots__ = ()


Cell = str | Markup


def esc(value: object) -> Markup:
    """``value`` as HTML text: ``Markup`` as it is, anything else escaped (quotes too,
    so that the result is also safe inside an attribute)."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def join(parts: Iterable[Cell], sep: str = "") -> Markup:
    return Markup(sep.join(esc(p) for p in parts))


def attrs(**values: object) -> Markup:
    """`` name="value"`` pairs, escaped; ``None`` and ``False`` leave the attribute out,
    ``True`` writes it bare.  A trailing ``_`` is dropped (``class_``), ``_`` inside a
    name becomes ``-`` (``data_points``)."""
    out = []
    for name, value in values.items():
        if value is None or value is False:
            continue
        name = name.rstrip("_").replace("_", "-")
        out.append(f" {name}" if value is True else f' {name}="{esc(value)}"')
    return Markup("".join(out))


def tag(name: str, content: Cell = "", **attributes: object) -> Markup:
    return Markup(f"<{name}{attrs(**attributes)}>{esc(content)}</{name}>")


def link(href: str, text: Cell, **attributes: object) -> Markup:
    return tag("a", text, href=href, **attributes)


def table(headers: Sequence[str], rows: Iterable[Sequence[Cell]], *, class_: str | None = None,
          row_ids: Sequence[str] | None = None, empty: str = "none") -> Markup:
    """A table with a header row; ``row_ids`` set each row's ``data-id`` (what tests and
    the refresh script find a row by).  ``empty``: what stands in for no rows."""
    body = []
    for i, row in enumerate(rows):
        rid = attrs(data_id=row_ids[i]) if row_ids is not None else ""
        body.append(f"<tr{rid}>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    if not body:
        return tag("p", empty, class_="empty")
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return Markup(f"<table{attrs(class_=class_)}><thead><tr>{head}</tr></thead>"
                  f"<tbody>{''.join(body)}</tbody></table>")


def pairs(rows: Iterable[tuple[str, Cell]]) -> Markup:
    """Label and value lines, as ``status`` prints them."""
    return Markup("<dl class=\"pairs\">" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows)
                  + "</dl>")


def section(title: str, content: Cell, *, id_: str | None = None, note: Cell = "") -> Markup:
    return Markup(f"<section{attrs(id=id_)}><h2>{esc(title)}</h2>"
                  + (f"<p class=\"note\">{esc(note)}</p>" if note else "") + f"{esc(content)}</section>")


def document(title: str, heading: Cell, live: Cell, *, refresh: float = DEFAULT_REFRESH, nav: Cell = "",
             after: Cell = "", updated: str = "") -> bytes:
    """A whole page.  ``live`` is what the refresh script replaces with the same part of
    the page fetched again; ``after`` stays (a log being followed).  No inline script or
    style: the page works under a Content-Security-Policy that allows only the
    dashboard's own files."""
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(title)}</title>"
        "<link rel=\"stylesheet\" href=\"/static/dashboard.css\">"
        "<script src=\"/static/dashboard.js\" defer></script></head>"
        f"<body{attrs(data_refresh=f'{refresh:g}')}><header><h1>{esc(heading)}</h1>"
        f"<nav>{esc(nav)}</nav><span id=\"updated\">{esc(updated)}</span></header>"
        f"<main id=\"live\">{esc(live)}</main>{esc(after)}</body></html>\n"
    ).encode("utf-8", "replace")
