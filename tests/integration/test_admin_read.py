"""The course staff's read side against real daemons, real students and a real member of
staff: a Unix user in the Unix group remoted.yaml names in ``admin_group``, not root.

The staff member reads every task (``admin tasks``, ``admin show`` with the history
remoted kept), and ``admin usage`` matches the job records: what each job wrapper wrote
as its ``started_at`` and ``finished_at``.  A student is refused (exit 77) and cannot read
``state/`` at all.  Every output is parsed back (``--json``, ``--csv``)."""

from __future__ import annotations

import csv
import io
import json
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

from ailabber.model.task import parse_iso
from testbed.pipeline import Pipeline, owned_project, students_on_one_root
from testbed.unix_users import ensure_group, login_as, world_dir
from tests.integration.conftest import STUDENTS

STAFF, STAFF_GROUP = "ailabber-ta", "ailabber-staff"
#: How far a task's counted run may be from the job's own record of it: remoted sees a
#: start and an end each up to one pass late (poll_interval 0.2 s, passes of a loaded
#: two-core machine), and the wrapper's own start and end lie inside the job's span.
TOLERANCE_PER_TASK = 2.0


def run_as(user: str, python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python args`` as ``user``, as after a login: their uid, their groups, their home."""
    pw = pwd.getpwnam(user)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": pw.pw_dir, "USER": user, "LANG": "C.UTF-8"}
    return subprocess.run([str(python), *args], env=env, capture_output=True, text=True, timeout=120, cwd="/",
                          **login_as(user))


def admin(user: str, python: Path, cfg: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = run_as(user, python, "-m", "ailabber", "admin", "--remoted-config", str(cfg), *args)
    if check and r.returncode != 0:
        raise AssertionError(f"admin {' '.join(args)} as {user} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def job_record(p: Pipeline, task_id: str) -> dict[str, Any]:
    """The job wrapper's own record of how long the job ran (run/result.json)."""
    return dict(json.loads((p.remote_task(task_id) / "run" / "result.json").read_text()))


def wrapper_seconds(p: Pipeline, task_id: str) -> float:
    rec = job_record(p, task_id)
    start, end = parse_iso(rec["started_at"]), parse_iso(rec["finished_at"])
    assert start is not None and end is not None, rec
    return end - start


def usage_csv(out: str) -> dict[str, dict[str, str]]:
    return {row["user"]: row for row in csv.DictReader(io.StringIO(out))}


def test_staff_read_the_whole_course_and_a_student_cannot(student_python: Path) -> None:
    ensure_group(STAFF_GROUP, (STAFF,))
    base = world_dir("ailabber-admin-read-")
    pipes = students_on_one_root(base, STUDENTS, student_python, extra={"admin_group": STAFF_GROUP})
    alice, bob = (pipes[n] for n in STUDENTS)
    cfg = alice.remoted_cfg
    alice.start("remoted")
    for p in pipes.values():
        p.start("spoold")
    try:
        ok_project = owned_project(alice, "a-ok", "sleep 3; mkdir -p output; echo ok > output/r", gpus=1)
        a_ok = json.loads(alice.cli("submit", "--json", "--name", "baseline run", cwd=ok_project, check=True).stdout)["id"]
        a_bad = alice.submit(owned_project(alice, "a-bad", "sleep 2; exit 3"))
        b_gpu = bob.submit(owned_project(bob, "b-gpu", "sleep 3; mkdir -p output", gpus=1))
        b_cut = bob.submit(owned_project(bob, "b-cut", "sleep 300"))
        bob.wait_for(b_cut, lambda s: s["state"] == "running" and s["reason"] is None, 90, "running its command")
        bob.cli("cancel", b_cut, check=True)
        finals = {t: p.wait_terminal(t, 120)["state"] for p, t in
                  ((alice, a_ok), (alice, a_bad), (bob, b_gpu), (bob, b_cut))}
        assert finals == {a_ok: "completed", a_bad: "failed", b_gpu: "completed", b_cut: "terminated"}

        # --- the records are the staff's to read, and no student's ---------------------
        state = alice.root / "state"
        st = os.stat(state)
        assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o750, ensure_group(STAFF_GROUP).gr_gid)
        peek = ("-c", "import os, sys; os.listdir(sys.argv[1])", str(state))
        assert "PermissionError" in run_as(STUDENTS[0], student_python, *peek).stderr
        record = state / "done" / STUDENTS[1] / f"{b_gpu}.json"
        assert record.exists()
        read = run_as(STUDENTS[1], student_python, "-c", "import sys; open(sys.argv[1]).read()", str(record))
        assert "PermissionError" in read.stderr, read
        assert run_as(STAFF, student_python, *peek).returncode == 0

        refused = admin(STUDENTS[0], student_python, cfg, "tasks", check=False)
        assert refused.returncode == 77, refused
        assert f"{STUDENTS[0]} may not run admin commands" in refused.stderr
        assert "'ailabber-staff'" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
        for verb in (("show", a_ok), ("usage",)):
            assert admin(STUDENTS[1], student_python, cfg, *verb, check=False).returncode == 77

        # --- tasks and show ---------------------------------------------------------------
        rows = json.loads(admin(STAFF, student_python, cfg, "tasks", "--json").stdout)
        assert {(r["user"], r["id"], r["state"]) for r in rows} == {
            (STUDENTS[0], a_ok, "completed"), (STUDENTS[0], a_bad, "failed"),
            (STUDENTS[1], b_gpu, "completed"), (STUDENTS[1], b_cut, "terminated")}
        assert all(r["elapsed_s"] > 0 and r["job_id"] for r in rows)
        assert {r["id"]: r["name"] for r in rows}[a_ok] == "baseline run"     # the name the student gave
        text = admin(STAFF, student_python, cfg, "tasks", "--user", STUDENTS[1], "--state", "terminated").stdout
        assert b_cut in text and b_gpu not in text and "canceled_by_user" in text

        bad = json.loads(admin(STAFF, student_python, cfg, "show", f"{STUDENTS[0]}/{a_bad}", "--json").stdout)
        assert (bad["state"], bad["reason"], bad["exit_code"], bad["cancelled_by"]) == ("failed", "nonzero_exit", 3, None)
        assert bad["commands"] == ["sleep 2; exit 3"] and bad["history_kept"]
        seen = [(e["state"], e["reason"]) for e in bad["history"]]
        assert seen[0] == ("pending", "queued") and ("pending", "launching") in seen
        assert ("running", None) in seen and seen[-1] == ("failed", "nonzero_exit")
        assert [e["seq"] for e in bad["history"]] == list(range(1, len(seen) + 1))
        # The history is the one the student's side received.
        events = [json.loads(line) for line in
                  (bob.home / "spool" / "done" / b_cut / "events.jsonl").read_text().splitlines()]
        cut = json.loads(admin(STAFF, student_python, cfg, "show", b_cut[-6:], "--json").stdout)
        assert [(e["seq"], e["at"], e["state"], e["reason"]) for e in cut["history"]] == \
            [(e["remote_seq"], e["at"], e["state"], e["reason"]) for e in events if e.get("source") == "remote"]
        assert cut["user"] == STUDENTS[1] and cut["cancelled_by"] == STUDENTS[1]
        shown = admin(STAFF, student_python, cfg, "show", b_cut).stdout
        assert f"cancelled by  {STUDENTS[1]} (their own request)" in shown
        assert "history:" in shown and "canceled_by_user" in shown and "sleep 300" in shown
        missing = admin(STAFF, student_python, cfg, "show", "nosuchtask", check=False)
        assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "nosuchtask" in missing.stderr

        # --- usage against the job records ------------------------------------------------
        report = usage_csv(admin(STAFF, student_python, cfg, "usage", "--csv").stdout)
        assert set(report) == {*STUDENTS, "TOTAL"}
        mine = {STUDENTS[0]: (alice, (a_ok, a_bad), (a_ok,)), STUDENTS[1]: (bob, (b_gpu, b_cut), (b_gpu,))}
        for user, (p, tasks, gpu_tasks) in mine.items():
            line = report[user]
            wall = sum(wrapper_seconds(p, t) for t in tasks)
            gpu = sum(wrapper_seconds(p, t) for t in gpu_tasks)
            assert abs(float(line["wall_hours"]) * 3600 - wall) <= TOLERANCE_PER_TASK * len(tasks), (line, wall)
            assert abs(float(line["gpu_hours"]) * 3600 - gpu) <= TOLERANCE_PER_TASK * len(gpu_tasks), (line, gpu)
            # one CPU each: CPU-hours are the wall time here
            assert abs(float(line["cpu_hours"]) - float(line["wall_hours"])) < 1e-3, line
            assert int(line["disk_bytes"]) > 0, line         # remoted measured the area (the default quota)
        assert report[STUDENTS[0]]["completed"] == "1" and report[STUDENTS[0]]["failed"] == "1"
        assert report[STUDENTS[1]]["completed"] == "1" and report[STUDENTS[1]]["terminated"] == "1"
        assert report["TOTAL"]["completed"] == "2"
        assert abs(float(report["TOTAL"]["wall_hours"]) - sum(float(report[u]["wall_hours"]) for u in STUDENTS)) < 1e-3
        # A window that ended before the first task: nothing in it, every student listed.
        before = usage_csv(admin(STAFF, student_python, cfg, "usage", "--until", "2020-01-01", "--csv").stdout)
        assert all(float(before[u]["wall_hours"]) == 0 and before[u]["completed"] == "0" for u in STUDENTS)
        table = admin(STAFF, student_python, cfg, "usage").stdout
        assert table.splitlines()[1].split()[:5] == ["USER", "COMPLETED", "FAILED", "CANCELED", "TERMINATED"]
        assert table.splitlines()[-1].startswith("TOTAL") or "TOTAL" in table.splitlines()[-2]
        wrong = admin(STAFF, student_python, cfg, "usage", "--since", "last monday", check=False)
        assert wrong.returncode == 2 and wrong.stderr.startswith("ailabber: --since: 'last monday' is neither")
    finally:
        for p in pipes.values():
            p.stop_all()
        shutil.rmtree(base, ignore_errors=True)
