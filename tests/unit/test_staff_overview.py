"""The staff's dashboard, from remoted's records: the queue in the order remoted itself
publishes (``outbox/queue.json``), why each task waits, the GPUs each job holds, and each
student's use over a period.  remoted runs in this process over the fake scheduler."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ailabber.daemonkit.remoted_settings import UserLimits
from ailabber.model.remote_layout import UserArea
from ailabber.model.task import TaskStatus, now_iso, transition
from remoted.admin.accounting import Window, usage, week_start
from remoted.admin.course import TaskRow, course_rows
from remoted.admin.overview import held, overview
from remoted.jobspec import JobSpec
from remoted.records import FINISHED, LAUNCHED, TaskRecord
from remoted.schedulers.base import JobHandle
from tests.unit.test_remoted_logic import Site, _gate, site_factory  # noqa: F401


def _places(site: Site, user: str) -> dict[str, int]:
    path = UserArea(site.root, user).path / "outbox" / "queue.json"
    return {t: e["queue_position"] for t, e in json.loads(path.read_text())["tasks"].items()}


def test_the_queue_is_in_remoteds_order_and_says_why_each_task_waits(
        site_factory: Callable[..., Site], tmp_path: Path) -> None:  # noqa: F811
    """One GPU, ann's three tasks then ben's one: ann's first runs on the GPU, ben's is
    next in line, then ann's; with a limit of one running task each, ann's two wait for
    her limit, and the page says so, in remoted's words."""
    site = site_factory(gpus=1, limits=UserLimits(max_running=1))
    gate, wait = _gate(tmp_path)
    ann, ben = site.student("ann"), site.student("ben")
    a = [ann.submit([wait], gpus=1) for _ in range(3)]
    b = ben.submit([wait], gpus=1)
    site.upload()
    site.step_until(lambda: site.status("ann", a[0])["state"] == "running", "ann's first task to run")
    site.step()
    view = overview(course_rows(site.root), 0.0, "gpu-box")
    published = {**_places(site, "ann"), **_places(site, "ben")}
    assert [(w.row.user, w.row.id, w.place) for w in view.queue] == [("ben", b, 1), ("ann", a[1], 2), ("ann", a[2], 3)]
    assert {w.row.id: w.place for w in view.queue} == published
    waits = {w.row.id: w.why for w in view.queue}
    assert waits[b].startswith("waiting_for_gpu: waiting for a free GPU ("), waits[b]
    assert waits[a[1]] == ("user_limit: held back: you reached your per-user limit "
                           "(you have 1 task(s) running; the limit is 1)"), waits[a[1]]
    assert [(h.row.id, h.node, h.gpus) for h in view.running] == [(a[0], "gpu-box", "0")]
    assert view.counts == {"running": 1, "pending": 3} and view.students == 2
    gate.touch()
    for user, t in [("ann", x) for x in a] + [("ben", b)]:
        assert site.final(user, t)["state"] == "completed"
    done = overview(course_rows(site.root), 0.0, "gpu-box")
    assert done.queue == [] and done.running == [] and done.counts == {"completed": 4}


def _row(user: str, task_id: str, *, started: float | None, finished: float | None, gpus: int = 1, cpus: int = 2,
         handle: JobHandle | None = None, state: str = "completed") -> TaskRow:
    st = TaskStatus(id=task_id, owner=user, submitted_at=now_iso(0))
    history = []                       # as remoted keeps it: the events of each change
    if started is not None:
        st, ev = transition(st, "running", now=started)
        history.append(ev)
        if finished is not None:
            st, ev = transition(st, state, now=finished)
            history.append(ev)
    spec = JobSpec(task_id, user, "/w", "/r", "/l", ["true"], gpus=gpus, cpus=cpus)
    rec = TaskRecord(task_id, user, st, spec, FINISHED if st.terminal else LAUNCHED, handle, history=history)
    return TaskRow(user, rec, st.terminal)


def test_the_pages_bars_are_admin_usage_over_the_week_so_far() -> None:
    from remoted.admin.dashboard import usage_bars

    h = 3600.0
    rows = [
        _row("ann", "1", started=10 * h, finished=12 * h, gpus=2),          # 2 h inside, 2 GPUs
        _row("ann", "2", started=8 * h, finished=11 * h, gpus=1),           # 1 h of its 3 inside
        _row("ben", "3", started=11 * h, finished=None, gpus=0, cpus=4),    # running: until now
        _row("cat", "4", started=1 * h, finished=2 * h),                    # before the week: no bar
    ]
    lines = usage(rows, Window(10 * h, None), now=13 * h)
    page = str(usage_bars(lines))
    assert page.count("<g class=\"bar\"") == 2 and "ann" in page and "ben" in page and "cat" not in page
    assert page.index("ann") < page.index("ben")                            # the most GPU-hours first


def test_a_week_starts_on_monday_at_midnight() -> None:
    import time

    now = time.mktime((2026, 12, 3, 15, 30, 0, 0, 0, -1))        # a Thursday
    start = time.localtime(week_start(now))
    assert (start.tm_year, start.tm_mon, start.tm_mday, start.tm_hour, start.tm_min, start.tm_wday) == \
        (2026, 11, 30, 0, 0, 0)


def test_the_gpus_a_job_holds_and_its_node_are_what_its_record_says() -> None:
    local = _row("ann", "1", started=0, finished=None, gpus=2, handle=JobHandle("local-7", {"gpus": [1, 3]}))
    assert held(local, "box").node == "box" and held(local, "box").gpus == "1,3"
    slurm = _row("ann", "2", started=0, finished=None, gpus=2, handle=JobHandle("42", {"run_dir": "/r"}))
    assert held(slurm, None) == (slurm, "not recorded", "2")
    placed = _row("ann", "3", started=0, finished=None, gpus=1, handle=JobHandle("43", {"nodes": "node07"}))
    assert held(placed, None).node == "node07"
    cpu_only = _row("ann", "4", started=0, finished=None, gpus=0, handle=JobHandle("44", {}))
    assert held(cpu_only, None).gpus == "none"


def test_recent_failures_are_newest_first_and_stop_at_a_week() -> None:
    day = 86400.0
    rows = [_row("ann", "old", started=0, finished=1, state="failed"),
            _row("ann", "a", started=9 * day, finished=9 * day + 5, state="failed"),
            _row("ben", "b", started=9 * day, finished=9 * day + 9, state="failed"),
            _row("ben", "ok", started=9 * day, finished=9 * day + 9)]
    view = overview(rows, 10 * day, None)
    assert [r.id for r in view.failures] == ["b", "a"]
