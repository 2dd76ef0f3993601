"""The course staff's dashboard page (``ailabber admin web``): remoted's health, the queue
in fair order with why each task waits, the running jobs and the GPUs they hold, each
student's use this week as bars, and the recent failures with their reasons.

Read at each request from remoted's records (``course.course_rows``) and ``heartbeat.json``,
both in the root remoted keeps to itself: nothing in a student's directory is read, so
nothing a student writes there reaches the page except through remoted's own records.
Every student's text on it (task names, messages) is escaped like any other value
(``ailabber.web.html``).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from ailabber.daemonkit.remoted_settings import RemotedSettings
from ailabber.model.render import ago, duration, state_text
from ailabber.model.task import STATES, TaskStatus, explain
from ailabber.storage.remoted_beat import read_beat
from ailabber.web import html
from ailabber.web.charts import Bar, bar_chart
from ailabber.web.html import Cell, Markup, esc, section, tag
from ailabber.web.server import Query, Reply, text_reply
from remoted.admin.accounting import StudentUsage, Window, usage, week_start
from remoted.admin.course import TaskRow, course_rows
from remoted.admin.overview import Overview, overview

HEARTBEAT = "heartbeat.json"


class StaffSite:
    """The one page of the course, read afresh at each request."""

    def __init__(self, settings: RemotedSettings, who: str, refresh: float = html.DEFAULT_REFRESH):
        self.settings = settings
        self.who = who
        self.refresh = refresh
        #: Under the local scheduler every job runs on remoted's machine, which is this one.
        self.local_node = socket.gethostname() if settings.scheduler == "local" else None

    def reply(self, path: str, query: Query) -> Reply:
        if path != "/":
            return text_reply(404, "404: no such page")
        return Reply(200, self.page(time.time()))

    def page(self, now: float) -> bytes:
        root = self.settings.root
        rows = course_rows(root)
        view = overview(rows, now, self.local_node)
        since = week_start(now)
        live = html.join([
            section("remoted", health(root, now), id_="health"),
            section("Queue", queue_table(view, now), id_="queue",
                    note="in the order remoted offers the tasks to the scheduler: round-robin across students, "
                         "fewest running first, oldest first within a student"),
            section("Running", running_table(view, now), id_="running"),
            section("Use this week", usage_bars(usage(rows, Window(since, None), now)), id_="usage",
                    note=f"since {time.strftime('%a %Y-%m-%d %H:%M', time.localtime(since))}: each job's run in "
                         "the week times the GPUs (CPUs) it held"),
            section("Recent failures", failures_table(view, now), id_="failures", note="failed in the last 7 days"),
        ])
        heading = f"ailabber: the course on {socket.gethostname()}"
        return html.document(heading, heading, html.join([summary(view, root), live]), refresh=self.refresh,
                             nav=tag("span", f"as {self.who}", class_="muted"),
                             updated=f"updated {time.strftime('%H:%M:%S', time.localtime(now))}")


def summary(view: Overview, root: Path) -> Markup:
    counts = "".join(f"<span>{esc(s)}: <b>{view.counts[s]}</b></span>" for s in STATES if view.counts.get(s))
    return Markup(f'<p class="counts"><span>{esc(root)}</span><span>students: <b>{view.students}</b></span>'
                  f"{counts}</p>")


def health(root: Path, now: float) -> Markup:
    beat = read_beat(root / HEARTBEAT)
    if beat is None:
        return tag("p", f"no heartbeat in {root / HEARTBEAT}: remoted has not run on this root", class_="health bad")
    data = beat.data
    if beat.stopped(now):
        head = tag("p", f"remoted is not running: its last heartbeat was {duration(beat.age(now))} ago (it beats "
                        f"every {duration(beat.every)}); its log says why (journalctl -u ailabber-remoted)",
                   class_="health bad")
    else:
        head = tag("p", f"running (pid {beat.pid}), last heartbeat {duration(beat.age(now))} ago", class_="health ok")
    care = f"{data.get('active', '-')} ({data.get('queued', '-')} queued)"
    rows: list[tuple[str, Cell]] = [("scheduler", str(beat.scheduler or "-")),
                                    ("containment", str(data.get("containment") or "-")),
                                    ("tasks in its care", care)]
    return html.join([head, html.pairs(rows)])


def _state(st: TaskStatus) -> Markup:
    return tag("span", state_text(st), class_=f"state state-{st.state}")


def _name(row: TaskRow) -> str:
    return row.name or "-"


def queue_table(view: Overview, now: float) -> Markup:
    rows = [[str(w.place) if w.place is not None else "in the scheduler", w.row.user,
             tag("span", w.row.id, class_="id"), _name(w.row), str(w.row.gpus),
             ago(w.row.record.status.submitted_at, now), w.why] for w in view.queue]
    return html.table(("PLACE", "USER", "ID", "NAME", "GPUS", "SUBMITTED", "WHY IT WAITS"), rows, class_="queue",
                      row_ids=[w.row.id for w in view.queue], empty="no task is waiting")


def running_table(view: Overview, now: float) -> Markup:
    rows = []
    for h in view.running:
        elapsed = h.row.elapsed(now)
        limit = h.row.record.spec.time_limit_s if h.row.record.spec else None
        ran = "-" if elapsed is None else duration(elapsed) + (f" of {duration(limit)}" if limit else "")
        rows.append([h.node, h.gpus, h.row.user, tag("span", h.row.id, class_="id"), _name(h.row),
                     h.row.record.status.job_id or "-", ran])
    per_node: dict[str, int] = {}
    for h in view.running:
        per_node[h.node] = per_node.get(h.node, 0) + h.row.gpus
    nodes = "; ".join(f"{node}: {n} GPU(s) held" for node, n in per_node.items())
    table = html.table(("NODE", "GPUS", "USER", "ID", "NAME", "JOB", "RUN TIME"), rows, class_="running",
                       row_ids=[h.row.id for h in view.running], empty="no job is running")
    return html.join([tag("p", nodes, class_="note") if nodes else "", table])


def usage_bars(lines: list[StudentUsage]) -> Markup:
    """GPU-hours per student who ran something this week, the most first; CPU-hours when
    nobody used a GPU (a course without GPUs, or the week's start).  The figures are
    ``admin usage``'s, over the week so far."""
    use = sorted((u for u in lines if u.wall_s > 0), key=lambda u: (-u.gpu_s, -u.cpu_s, u.user))
    by_gpu = any(u.gpu_s > 0 for u in use)
    bars = [Bar(u.user, u.gpu_hours if by_gpu else u.cpu_hours,
                f"GPU {duration(u.gpu_s)}, CPU {duration(u.cpu_s)}, wall {duration(u.wall_s)}") for u in use]
    return bar_chart("GPU-hours per student this week" if by_gpu else "CPU-hours per student this week", bars)


def failures_table(view: Overview, now: float) -> Markup:
    rows = [[ago(r.record.status.finished_at, now), r.user, tag("span", r.id, class_="id"), _name(r),
             f"{r.record.status.reason}: {explain(r.record.status.reason)}" if r.record.status.reason else "-",
             r.record.status.message or "",
             "-" if r.record.status.exit_code is None else str(r.record.status.exit_code)] for r in view.failures]
    return html.table(("FINISHED", "USER", "ID", "NAME", "REASON", "MESSAGE", "EXIT"), rows, class_="failures",
                      row_ids=[r.id for r in view.failures], empty="no failure in the last 7 days")
