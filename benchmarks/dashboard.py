"""The dashboards with a course's worth of tasks: the staff's page over 500 tasks of 50
students, and a student's page over 500 tasks in their spool.

The records are written by the product's own writers: remoted's ``RecordStore.save``
(queued, running with the GPU they hold, completed and failed tasks, spread over the
last six days) and, for the student, ``ailabber submit``'s ``submit`` into a real spool,
then each task's status moved on with ``transition``, ``statusfile.record`` and the
spool's own moves.  Each figure is a whole answer: a GET of the page from the running
command (``ailabber admin web``, ``ailabber web``) over HTTP on 127.0.0.1, rendered from
the files at that request, as the page's own refresh asks for it.  The floor is reading
and parsing the same 500 JSON files in one process, which any page over them must do.
"""

from __future__ import annotations

import grp
import http.client
import json
import os
import sys
import time
from pathlib import Path

import yaml

from ailabber.model import ids
from ailabber.model.task import TaskStatus, now_iso, transition
from ailabber.storage import fsutil, statusfile
from ailabber.storage.spool import DONE, NEW, SYNCED, Spool
from ailabber.workstation.submit import submit
from benchmarks.common import Ctx, Row, median, ratio, write_config
from remoted.jobspec import JobSpec
from remoted.records import LAUNCHED, RecordStore, TaskRecord
from remoted.schedulers.base import JobHandle
from testbed.browser import Served

STUDENTS, PER_STUDENT = 50, 10
STAFF = ("dashboard, 500 tasks from 50 students: staff page render", "s", "< 1 s")
STUDENT = ("dashboard, 500 tasks in the spool: student page render", "s", "< 1 s")
FIGURES = (STAFF, STUDENT)
LIMIT = 1.0


def course(root: Path, now: float) -> int:
    """500 records of 50 students: per student 6 finished (one failed), 2 running (one
    GPU each), 2 queued.  Returns how many rows the staff's page should show in its queue,
    running and failures tables together."""
    store = RecordStore(root)
    store.ensure()
    n = 0
    with fsutil.deferred_fsync(root):
        for s in range(STUDENTS):
            user = f"student{s:02d}"
            for k in range(PER_STUDENT):
                t = now - 6 * 86400 + n * 1000
                task_id = ids.new_task_id(t)
                spec = JobSpec(task_id, user, f"/w/{task_id}", f"/r/{task_id}", f"/l/{task_id}", ["python train.py"],
                               gpus=1, cpus=4, time_limit_s=4 * 3600)
                st, _ = transition(TaskStatus(id=task_id, owner=user, submitted_at=now_iso(t)), "pending", "queued",
                                   now=t)
                rec = TaskRecord(task_id, user, st, spec, order=n)
                store.save(rec)
                if k < 8:
                    st, _ = transition(st, "running", now=t + 60, job_id=f"local-{10_000 + n}")
                    store.save(rec, status=st, phase=LAUNCHED,
                               handle=JobHandle(f"local-{10_000 + n}", {"gpus": [n % 8]}))
                if k < 6:
                    state, reason = ("failed", "nonzero_exit") if k == 0 else ("completed", None)
                    st, _ = transition(st, state, reason, now=t + 1800, exit_code=1 if k == 0 else 0,
                                       message="command 1 exited with 1" if k == 0 else None)
                    store.save(rec, status=st)
                n += 1
    return STUDENTS * (2 + 2 + 1)


def spool_of(home: Path, work: Path, n: int) -> Spool:
    """``n`` tasks submitted by ``submit``; then, of every five, one left waiting for the
    upload, one running, two completed and one failed."""
    spool = Spool(home / "spool")
    spool.ensure()
    project = work / "project"
    project.mkdir(parents=True)
    (project / "train.py").write_text("print('training')\n")
    write_config(project, ["python train.py --lr 0.1 --epochs 20"])
    with fsutil.deferred_fsync(spool.root):
        for i in range(n):
            task_id = submit(project / "task_config.toml", spool, name=f"run-{i:03d}").task_id
            if i % 5 == 0:
                continue
            task_dir = spool.stage_dir(NEW) / task_id
            st = statusfile.read_status(task_dir)
            assert st is not None
            for state, reason in (("pending", "queued"), ("running", None)):
                st, ev = transition(st, state, reason)
                statusfile.record(task_dir, st, ev)
            spool.move(task_id, NEW, SYNCED)
            if i % 5 == 1:
                continue
            st, ev = transition(st, "failed" if i % 5 == 4 else "completed", "nonzero_exit" if i % 5 == 4 else None,
                                exit_code=1 if i % 5 == 4 else 0)
            statusfile.record(spool.stage_dir(SYNCED) / task_id, st, ev)
            spool.move(task_id, SYNCED, DONE)
    return spool


def _get(served: Served) -> bytes:
    c = http.client.HTTPConnection("127.0.0.1", int(served.base.rsplit(":", 1)[1]), timeout=60)
    try:
        c.request("GET", "/?" + served.url.split("?", 1)[1])
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"GET / answered {r.status}: {body[:300]!r}")
        return body
    finally:
        c.close()


def _timed_gets(served: Served, reps: int) -> tuple[list[float], bytes]:
    served.wait_url()
    body = _get(served)                     # the first answer imports the page's modules: not counted
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        body = _get(served)
        times.append(time.perf_counter() - t0)
    return times, body


def _read_all(paths: list[Path]) -> float:
    t0 = time.perf_counter()
    for p in paths:
        json.loads(p.read_bytes())
    return time.perf_counter() - t0


def run(ctx: Ctx) -> list[Row]:
    base = ctx.scratch / "dashboard"
    root, home = base / "remote", base / "home"
    root.mkdir(parents=True)
    home.mkdir(parents=True)
    reps = ctx.n(9, 3)
    env = dict(os.environ, AILABBER_HOME=str(home))

    rows_expected = course(root, time.time())
    cfg = base / "remoted.yaml"
    cfg.write_text(yaml.safe_dump({"root": str(root), "scheduler": "local", "gpus": 8,
                                   "admin_group": grp.getgrgid(os.getgid()).gr_name}))
    fsutil.atomic_write_json(root / "heartbeat.json", {"pid": os.getpid(), "at": time.time(), "every": 5.0,
                                                       "scheduler": "local", "containment": "cgroup",
                                                       "active": 200, "queued": 100})
    staff = Served([sys.executable, "-m", "ailabber", "admin", "--remoted-config", str(cfg), "web"], env,
                   base / "admin-web.log")
    try:
        staff_t, page = _timed_gets(staff, reps)
    finally:
        staff.stop()
    shown = page.count(b"<tr data-id=")
    if shown != rows_expected:
        raise RuntimeError(f"the staff's page shows {shown} task rows, not {rows_expected}")
    records = sorted((root / "state").glob("*/*/*.json"))

    spool = spool_of(home, base / "work", STUDENTS * PER_STUDENT)
    student = Served([sys.executable, "-m", "ailabber", "web"], env, base / "web.log")
    try:
        student_t, page = _timed_gets(student, reps)
    finally:
        student.stop()
    shown = page.count(b"<tr data-id=")
    if shown != STUDENTS * PER_STUDENT:
        raise RuntimeError(f"the student's page shows {shown} task rows, not {STUDENTS * PER_STUDENT}")
    statuses = sorted(spool.root.glob("*/*/status.json"))

    def row(spec: tuple[str, str, str], xs: list[float], files: list[Path], what: str) -> Row:
        v, floor = median(xs), median([_read_all(files) for _ in range(reps)])
        return Row(*spec, value=v, floor=floor, ratio=ratio(v, floor), met=v < LIMIT,
                   floor_what=f"reading and parsing the {len(files)} {what} in one process",
                   notes=f"median of {len(xs)} GETs of the page over HTTP on 127.0.0.1, rendered at each request")

    return [row(STAFF, staff_t, records, "records in state/"),
            row(STUDENT, student_t, statuses, "status.json files")]
