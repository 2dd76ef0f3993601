"""Each task runs as the Unix user whose directory it arrived in: real accounts, real
uids, remoted as root.  A property of the backends that switch users, so it runs against
the local scheduler and Slurm only: the fake scheduler runs every command as the test's
own account and says so (``FakeScheduler.containment``)."""

from __future__ import annotations

import json
import pwd
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.pipeline import Pipeline, owned_project, students_on_one_root
from testbed.unix_users import world_dir
from tests.integration.conftest import STUDENTS

WHO = 'mkdir -p output; id -un > output/who; id -u > output/uid; echo "{\\"uid\\": $(id -u)}" >> "$AILABBER_METRICS"'


@pytest.fixture(params=["local", "slurm"])
def students(request: pytest.FixtureRequest, student_python: Path) -> Iterator[dict[str, Pipeline]]:
    """Both students' workstations on one shared root, behind one remoted as root."""
    env = None
    if request.param == "slurm":
        env = {"SLURM_CONF": str(request.getfixturevalue("slurm_cluster").conf)}
    base = world_dir(f"ailabber-users-{request.param}-")
    pipes = students_on_one_root(base, STUDENTS, student_python, request.param, env)
    first = pipes[STUDENTS[0]]
    first.start("remoted")
    for p in pipes.values():
        p.start("spoold")
    try:
        yield pipes
    finally:
        for p in pipes.values():
            p.stop_all()
        first.stop_all()
        shutil.rmtree(base, ignore_errors=True)


def test_tasks_run_as_their_owners(students: dict[str, Pipeline], request: pytest.FixtureRequest) -> None:
    alice, bob = (students[n] for n in STUDENTS)
    a = alice.submit(owned_project(alice, "pa", WHO + "; sleep 1"))
    b = bob.submit(owned_project(bob, "pb", WHO))
    for p, t, name in ((alice, a, STUDENTS[0]), (bob, b, STUDENTS[1])):
        st = p.wait_terminal(t, 120)
        assert st["state"] == "completed", (st, p.cli("logs", t).stdout, p.daemon_logs())
        assert st["owner"] == name
        dest = Path(pwd.getpwnam(name).pw_dir) / "results" / t
        p.cli("fetch", t, "--dest", str(dest), check=True)
        assert (dest / "output" / "who").read_text().strip() == name
        assert (dest / "output" / "uid").read_text().strip() == str(pwd.getpwnam(name).pw_uid)
        # Files the job wrote on the remote side belong to the student.
        made = p.remote_task(t) / "files" / "output" / "who"
        assert made.stat().st_uid == pwd.getpwnam(name).pw_uid
        # ... and so does the metrics file it appended to in the log directory, which came back.
        metrics_file = p.remote_task(t).parent.parent / "outbox" / t / "logs" / "metrics.jsonl"
        assert metrics_file.stat().st_uid == pwd.getpwnam(name).pw_uid
        metrics = json.loads(p.cli("metrics", "--json", t, check=True).stdout)
        assert metrics["series"]["uid"]["points"] == [[1, pwd.getpwnam(name).pw_uid]]
    if "slurm" in request.node.callspec.id:
        cluster = request.getfixturevalue("slurm_cluster")
        r = cluster.run("squeue", "-h", "-t", "all", "-o", "%j|%u", check=False)
        owners = dict(line.split("|") for line in r.stdout.splitlines() if line.startswith("ailabber-2"))
        assert set(owners.values()) >= set(STUDENTS)
