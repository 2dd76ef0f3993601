"""The student's dashboard (``ailabber web``): their tasks, each task's status, timeline,
log and metric charts, and the charts of several tasks overlaid to compare runs.

It reads what ``list``, ``status``, ``logs`` and ``metrics`` read, from the student's own
spool and with their own rights, so it shows what spoold pulled last and works while the
daemons or the network are down.  Pages:

``/``                      every task, newest first, with boxes to tick for a comparison
``/task/<id>``             one task: status, timeline (``events.jsonl``), charts, log tail
``/task/<id>/log?offset=N`` the log's bytes from N on (what the page's script appends)
``/compare?id=A&id=B...``  one chart per series, the ticked tasks overlaid

A task id in a URL is only ever looked up among the spool's ids after ``is_task_id``
accepted it: no URL names a file.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from ailabber.model import listing, progress
from ailabber.model.ids import is_task_id
from ailabber.model.metrics import Metrics, parse
from ailabber.model.remote_layout import LOGS, METRICS
from ailabber.model.render import ago, state_text
from ailabber.model.task import PENDING, STATES, TaskStatus, explain
from ailabber.storage import statusfile
from ailabber.storage.logindex import OUTPUT_LOG, read_from
from ailabber.storage.spool import Spool
from ailabber.web import html
from ailabber.web.charts import Line, line_chart
from ailabber.web.html import Cell, Markup, esc, link, pairs, section, tag
from ailabber.web.server import TEXT, Query, Reply, text_reply
from ailabber.workstation import taskview

#: The end of the log a task's page starts with; the script then follows from there.
LOG_TAIL = 64 * 1024
#: The most the log's endpoint answers at once.
LOG_CHUNK = 256 * 1024
#: A metrics file is charted from its first this many bytes.
MAX_METRICS = 16 * 1024 * 1024
#: The list shows this much of a task's first command (its page shows more).
MAX_COMMAND = 120
#: Tasks one comparison may overlay.
MAX_COMPARED = 16

_TASK = re.compile(r"/task/([^/]+)(/log)?")


class Task(NamedTuple):
    id: str
    stage: str
    dir: Path
    status: TaskStatus


class StudentSite:
    """The pages of one spool, read afresh at each request."""

    def __init__(self, spool: Spool, user: str, refresh: float = html.DEFAULT_REFRESH):
        self.spool = spool
        self.user = user
        self.refresh = refresh

    def reply(self, path: str, query: Query) -> Reply:
        if path == "/":
            return self._page(f"{self.user}'s tasks", self.index(time.time()))
        if path == "/compare":
            return self.compare(query.get("id", []))
        m = _TASK.fullmatch(path)
        if m is None:
            return text_reply(404, "404: no such page")
        task = self._task(m[1])
        if task is None:
            return text_reply(404, f"404: no task {m[1]} in your spool")
        if m[2]:
            return self.log(task, query.get("offset", ["0"])[0])
        return self.task_page(task, time.time())

    def _task(self, task_id: str) -> Task | None:
        if not is_task_id(task_id):
            return None
        loc = self.spool.locate(task_id)
        st = self.spool.read_status(task_id) if loc is not None else None
        if loc is None or st is None:
            return None
        return Task(task_id, loc[0], loc[1], st)

    def _page(self, heading: str, live: Cell, after: Cell = "") -> Reply:
        nav = html.join([link("/", "all tasks")])
        return Reply(200, html.document(f"ailabber: {heading}", heading, live, refresh=self.refresh, nav=nav,
                                        after=after, updated=f"updated {time.strftime('%H:%M:%S')}"))

    # --- the list ------------------------------------------------------------------------
    def index(self, now: float) -> Markup:
        found = taskview.tasks_in(self.spool, None)
        entries = taskview.queue_entries(self.spool)
        counts = {s: 0 for s in STATES}
        rows, ids = [], []
        for task_id, _stage, st in reversed(found):
            counts[st.state] += 1
            cells = listing.row(st, now)
            more = progress.detail(st, entries.get(task_id), None, now, short=True) if st.state == PENDING else None
            reason = explain(st.reason) + (f" ({more})" if more else "")
            box = Markup(f'<input type="checkbox" name="id"{html.attrs(value=task_id, aria_label=task_id)}>')
            rows.append([box, link(f"/task/{task_id}", task_id, class_="id"), cells[1], state_cell(st), reason,
                         cells[4], cells[5], listing.fit(cells[6], MAX_COMMAND)])
            ids.append(task_id)
        summary = Markup('<p class="counts">' + "".join(
            f"<span>{esc(s)}: <b>{n}</b></span>" for s, n in counts.items() if n) + "</p>") if found else ""
        tasks = html.table(("", "ID", "NAME", "STATE", "REASON", "AGE", "TIME", "COMMAND"), rows, class_="tasks",
                           row_ids=ids, empty="no tasks yet: ailabber submit sends one")
        form = Markup(f'<form method="get" action="/compare">{tasks}'
                      + ('<button type="submit">compare the metrics of the ticked tasks</button>' if found else "")
                      + "</form>")
        return html.join([summary, section("Tasks", form, id_="tasks")])

    # --- one task ------------------------------------------------------------------------
    def task_page(self, task: Task, now: float) -> Reply:
        st = task.status
        name = listing.name_of(st)
        heading = f"{name} ({task.id})" if name else f"task {task.id}"
        live = html.join([
            section("Status", self.details(task, now), id_="status"),
            section("Metrics", self.charts([task]), id_="metrics"),
            section("Timeline", timeline(statusfile.read_events(task.dir)), id_="timeline"),
        ])
        text, end = self.log_tail(task.id)
        log = Markup(f"<pre{html.attrs(id='log', data_src=f'/task/{task.id}/log', data_offset=end)}>"
                     f"{esc(text)}</pre>")
        note = "" if text else "no output pulled back yet"
        return self._page(heading, live, section("Log", log, id_="output", note=note))

    def details(self, task: Task, now: float) -> Markup:
        st = task.status
        entry = taskview.queue_entries(self.spool).get(task.id) if st.state == PENDING else None
        rows: list[tuple[str, Cell]] = [("state", state_cell(st)),
                                        ("reason", f"{st.reason}: {explain(st.reason)}" if st.reason else "-")]
        if st.message:
            rows.append(("message", st.message))
        rows += listing.describe_rows(st, now)
        rows += progress.rows(st, entry, now)
        rows += [("submitted", f"{st.submitted_at or '-'} ({ago(st.submitted_at, now)})"),
                 ("started", st.started_at or "-"), ("finished", st.finished_at or "-"),
                 ("exit code", "-" if st.exit_code is None else str(st.exit_code)), ("job id", st.job_id or "-"),
                 ("spool stage", task.stage), ("updated", ago(st.updated_at, now))]
        return pairs(rows)

    def metrics(self, task_id: str) -> tuple[Metrics, bool]:
        """The task's metrics as pulled so far, and whether the file was cut at ``MAX_METRICS``."""
        try:
            with open(self.spool.outbox(task_id) / LOGS / METRICS, "rb") as fh:
                data = fh.read(MAX_METRICS + 1)
        except (FileNotFoundError, NotADirectoryError):
            data = b""
        cut = len(data) > MAX_METRICS
        if cut:
            data = data[:data.rfind(b"\n", 0, MAX_METRICS) + 1]
        return parse(data), cut

    def charts(self, tasks: Sequence[Task]) -> Markup:
        """One chart per series any of ``tasks`` wrote, each task a line of its own."""
        got = [(t, *self.metrics(t.id)) for t in tasks]
        names: dict[str, str] = {}                          # series -> its x's name, in first-seen order
        for _t, m, _cut in got:
            for s in m.series.values():
                names.setdefault(s.name, s.x_name())
        notes = [f"{label(t)}: {m.skipped_text()}" for t, m, _cut in got if m.skipped]
        notes += [f"{label(t)}: the metrics file is larger than {MAX_METRICS // 2**20} MB; its start is drawn"
                  for t, _m, cut in got if cut]
        if not names:
            waiting = any(not t.status.terminal for t in tasks)
            return tag("p", "no metrics yet: a job writes them as JSON lines to $AILABBER_METRICS" if waiting
                       else "no metrics: the job wrote none to $AILABBER_METRICS", class_="empty")
        figures = [line_chart(name, [Line(label(t), m.series[name].points if name in m.series else [])
                                     for t, m, _cut in got], x_name=x_name)
                   for name, x_name in names.items()]
        shown = html.join(tag("p", n, class_="note") for n in notes)
        return Markup(f'{shown}<div class="charts">{html.join(figures)}</div>')

    def log_tail(self, task_id: str) -> tuple[str, int]:
        """The end of the task's output (from a line start) and the offset it ends at."""
        path = self.spool.outbox(task_id) / LOGS / OUTPUT_LOG
        try:
            size = os.stat(path).st_size
        except (FileNotFoundError, NotADirectoryError):
            return "", 0
        start = max(0, size - LOG_TAIL)
        data = read_from(path, start, LOG_TAIL)
        if start:
            cut = data.find(b"\n") + 1
            start, data = start + cut, data[cut:]
        data = whole_chars(data)
        return data.decode("utf-8", "replace"), start + len(data)

    def log(self, task: Task, offset: str) -> Reply:
        if not offset.isascii() or not offset.isdigit():
            return text_reply(400, "400: offset must be a whole number of bytes")
        pos = int(offset)
        data = whole_chars(read_from(self.spool.outbox(task.id) / LOGS / OUTPUT_LOG, pos, LOG_CHUNK))
        return Reply(200, data.decode("utf-8", "replace").encode(), TEXT,
                     (("X-Next-Offset", str(pos + len(data))),))

    # --- runs side by side ---------------------------------------------------------------
    def compare(self, wanted: list[str]) -> Reply:
        if len(wanted) > MAX_COMPARED:
            return text_reply(400, f"400: compare at most {MAX_COMPARED} tasks at once (got {len(wanted)})")
        tasks, unknown = [], []
        for task_id in dict.fromkeys(wanted):
            task = self._task(task_id)
            if task is not None:
                tasks.append(task)
            else:
                unknown.append(task_id)
        parts: list[Cell] = []
        if unknown:
            parts.append(tag("p", f"not in your spool: {', '.join(unknown)}", class_="note"))
        if not tasks:
            parts.append(tag("p", "tick two or more tasks on the list of tasks, then compare them", class_="empty"))
        else:
            listed = html.table(("ID", "NAME", "STATE"), [[link(f"/task/{t.id}", t.id, class_="id"),
                                                           listing.name_of(t.status) or "-", state_cell(t.status)]
                                                          for t in tasks], row_ids=[t.id for t in tasks])
            parts += [section("Runs", listed, id_="runs"), section("Metrics", self.charts(tasks), id_="metrics")]
        return self._page(f"{len(tasks)} runs compared", html.join(parts))


def label(task: Task) -> str:
    """A run's name in a legend: its name and the end of its id, or its id."""
    name = listing.name_of(task.status)
    return f"{name} ({task.id[-6:]})" if name else task.id


def state_cell(st: TaskStatus) -> Markup:
    return tag("span", state_text(st), class_=f"state state-{st.state}")


def timeline(events: list[dict[str, object]]) -> Markup:
    rows = []
    for e in events:
        reason = e.get("reason")
        rows.append([str(e.get("at", "-")), str(e.get("state", "-")),
                     f"{reason}: {explain(str(reason))}" if reason else "",
                     str(e.get("message") or ""), "cluster" if e.get("source") == "remote" else "workstation"])
    return html.table(("AT (UTC)", "STATE", "REASON", "MESSAGE", "FROM"), rows, class_="timeline", empty="no events")


def whole_chars(data: bytes) -> bytes:
    """``data`` without a UTF-8 character cut at its end (the next read starts with it)."""
    for back in range(1, min(4, len(data)) + 1):
        b = data[-back]
        if b & 0xC0 != 0x80:              # the first byte of the last character
            need = 1 if b < 0x80 else 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            return data if need <= back else data[:-back]
    return data
