"""``admin usage`` checked against Slurm's own accounting: two real students run GPU jobs
on the real single-node Slurm (two GPUs, so some jobs wait in Slurm's queue), and the
wall time and GPU-hours a real member of staff reads match the elapsed time Slurm
recorded for each job (the fixture keeps no slurmdbd: its jobcomp/filetxt log, the
record remoted itself falls back to, ``remoted.schedulers.slurm.jobcomp_lines``)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import datetime
from pathlib import Path

from remoted.schedulers.slurm import jobcomp_lines
from testbed.pipeline import owned_project, students_on_one_root, wait_until
from testbed.slurm_cluster import SlurmCluster
from testbed.unix_users import ensure_group, world_dir
from tests.integration.conftest import STUDENTS
from tests.integration.test_admin_read import STAFF, STAFF_GROUP, admin
from tests.slurm_fixture import slurm_cluster  # noqa: F401

#: Slurm records whole seconds (up to 1 s off a job's length), and remoted sees a job's
#: start and end each up to one pass late (poll_interval 0.2 s, a squeue per poll, a
#: loaded machine).  A run counted from the launch instead would be off by the time
#: the job waited in Slurm's queue: 6 s and more for the later jobs here.
TOLERANCE_PER_TASK = 2.5
JOB = "sleep 6"


def _elapsed(line: dict[str, str]) -> float:
    return (datetime.fromisoformat(line["EndTime"]) - datetime.fromisoformat(line["StartTime"])).total_seconds()


def test_usage_matches_slurms_accounting(student_python: Path, slurm_cluster: SlurmCluster) -> None:  # noqa: F811
    ensure_group(STAFF_GROUP, (STAFF,))
    base = world_dir("ailabber-admin-slurm-")
    log = slurm_cluster.jobcomp_log
    pipes = students_on_one_root(base, STUDENTS, student_python, "slurm", {"SLURM_CONF": str(slurm_cluster.conf)},
                                 extra={"admin_group": STAFF_GROUP, "slurm": {"jobcomp_log": str(log)}}, gpus=2)
    alice, bob = (pipes[n] for n in STUDENTS)
    alice.start("remoted")
    for p in pipes.values():
        p.start("spoold")
    submitted: dict[str, list[str]] = {}
    try:
        for i in range(3):
            for p in (alice, bob):
                t = p.submit(owned_project(p, f"g{i}", JOB, gpus=1))
                submitted.setdefault(p.client_user or "", []).append(t)
        cpu_only = bob.submit(owned_project(bob, "c0", "sleep 2"))
        jobs: dict[str, tuple[str, str]] = {}            # task -> (student, Slurm job id)
        for p in (alice, bob):
            for t in submitted[p.client_user or ""] + ([cpu_only] if p is bob else []):
                st = p.wait_terminal(t, 180)
                assert st["state"] == "completed", st
                jobs[t] = (p.client_user or "", st["job_id"])
        lines = {t: wait_until(lambda j=j: jobcomp_lines(log, j), f"job {j} in the jobcomp log")[-1]
                 for t, (_u, j) in jobs.items()}

        cfg = alice.remoted_cfg
        rows = {r["id"]: r for r in json.loads(admin(STAFF, student_python, cfg, "tasks", "--json").stdout)}
        report = {r["user"]: r for r in csv.DictReader(io.StringIO(
            admin(STAFF, student_python, cfg, "usage", "--csv").stdout))}
        for user in STUDENTS:
            mine = [t for t, (u, _j) in jobs.items() if u == user]
            wall = sum(_elapsed(lines[t]) for t in mine)
            gpu = sum(_elapsed(lines[t]) * rows[t]["gpus"] for t in mine)
            got = report[user]
            why = (got, {t: (lines[t]["StartTime"], lines[t]["EndTime"], rows[t]["elapsed_s"]) for t in mine})
            assert abs(float(got["wall_hours"]) * 3600 - wall) <= TOLERANCE_PER_TASK * len(mine), why
            assert abs(float(got["gpu_hours"]) * 3600 - gpu) <= TOLERANCE_PER_TASK * len(mine), why
            assert got["completed"] == str(len(mine)), got
            for t in mine:          # each task alone, and where Slurm ran it
                assert abs(rows[t]["elapsed_s"] - _elapsed(lines[t])) <= TOLERANCE_PER_TASK, (t, why)
                assert rows[t]["node"] == lines[t]["NodeList"], (rows[t], lines[t])
        # Some jobs waited in Slurm's queue: what the test tells apart from a launch.
        waited = [t for t in jobs if (datetime.fromisoformat(lines[t]["StartTime"])
                                      - datetime.fromisoformat(lines[t]["SubmitTime"])).total_seconds() >= 4]
        assert waited, lines
        shown = json.loads(admin(STAFF, student_python, cfg, "show", waited[0], "--json").stdout)
        assert any(e["state"] == "pending" and e["reason"] not in ("queued", "launching") for e in shown["history"]), \
            shown["history"]        # Slurm's own pending reason (Resources, Priority) is in the history
    finally:
        for p in pipes.values():
            p.stop_all()
        slurm_cluster.run("scancel", "--name=" + ",".join(f"ailabber-{t}" for ts in submitted.values() for t in ts),
                          check=False)
        shutil.rmtree(base, ignore_errors=True)
