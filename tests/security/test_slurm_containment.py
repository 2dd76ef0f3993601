"""Under Slurm, nothing a task starts outlives it: not when it ends, not when cancelled.

A task that leaves a detached process behind (``setsid nohup ... &``, re-parented to init)
would otherwise keep running after its job ends: outside its time limit, on GPUs Slurm
has handed to the next job, unaccounted.  The job wrapper kills the strays it finds, but
it runs as the student, and these strays answer SIGTERM with a fresh copy of themselves,
which no list-then-kill catches.  Only a kill of the job's whole cgroup does, so this
holds with ``proctrack/cgroup``; with ``proctrack/linuxproc`` these tests fail.  The same
remoted also tells the admin which of the two is in force (``doctor``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.pipeline import Pipeline
from testbed.slurm_cluster import SlurmCluster
from testbed.strays import detach_command, kill_marked, new_marker, pid_dir, wait_gone
from tests.conftest import require
from tests.slurm_fixture import slurm_cluster  # noqa: F401

pytestmark = [pytest.mark.slurm, pytest.mark.root]

#: How long after the final state a stray may still be seen (the state is published only
#: once Slurm has ended the job, so this is slack for a busy machine, not a speed claim).
GONE_WITHIN = 3.0


@pytest.fixture
def contained_cluster(slurm_cluster: SlurmCluster, pytestconfig: pytest.Config) -> SlurmCluster:  # noqa: F811
    require(pytestconfig, slurm_cluster.tracks_in_cgroups,
            f"Slurm tracking jobs in cgroups ({slurm_cluster.cgroup_problem})")
    return slurm_cluster


@pytest.fixture
def pipeline(tmp_path: Path, contained_cluster: SlurmCluster) -> Iterator[Pipeline]:
    p = Pipeline(tmp_path, scheduler="slurm", kill_grace=2.0,
                 remoted_env={"SLURM_CONF": str(contained_cluster.conf)},
                 remoted_extra={"signal_before_timeout": 0})
    p.start_all()
    yield p
    p.stop_all()
    if p.submitted:
        contained_cluster.run("scancel", "--name=" + ",".join(f"ailabber-{t}" for t in p.submitted),
                              check=False)


@pytest.fixture
def marker() -> Iterator[str]:
    m = new_marker()
    yield m
    kill_marked(m)    # a failed test must not leave a 900 s sleeper behind


def test_a_stray_ends_with_its_completed_task(pipeline: Pipeline, marker: str, tmp_path: Path) -> None:
    pid_file = pid_dir(tmp_path) / "stray.pid"
    stray = detach_command(marker, pid_file, respawn_on_sigterm=True)
    task_id = pipeline.submit(pipeline.project([stray, "echo left-a-stray"]))

    st = pipeline.wait_terminal(task_id, 120)

    assert st["state"] == "completed", (st, pipeline.cli("logs", task_id).stdout)
    assert pid_file.read_text().strip().isdigit()          # the stray did run
    assert wait_gone(marker, GONE_WITHIN) == [], f"{task_id} is {st['state']} but its stray still runs"


def test_a_stray_ends_with_its_cancelled_task(pipeline: Pipeline, marker: str, tmp_path: Path) -> None:
    pid_file = pid_dir(tmp_path) / "stray.pid"
    stray = detach_command(marker, pid_file, respawn_on_sigterm=True)
    task_id = pipeline.submit(pipeline.project([stray, "sleep 600"]))
    deadline = time.monotonic() + 120
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, f"the stray never started: {pipeline.status(task_id)}"
        time.sleep(0.2)

    pipeline.cli("cancel", task_id, check=True)
    st = pipeline.wait_terminal(task_id, 120)

    assert st["state"] == "terminated", st
    assert wait_gone(marker, GONE_WITHIN) == [], f"{task_id} is {st['state']} but its stray still runs"


def test_doctor_finds_slurm_containing_jobs(pipeline: Pipeline, contained_cluster: SlurmCluster,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # The admin's shell reaches the cluster the way remoted does.
    monkeypatch.setenv("SLURM_CONF", str(contained_cluster.conf))
    r = pipeline.cli("doctor", "--json", "--remoted-config", str(pipeline.remoted_cfg), timeout=120)
    checks = {c["name"]: c for c in json.loads(r.stdout)}
    check = checks["slurm job containment"]
    assert check["ok"], check
    assert "proctrack/cgroup" in check["detail"] and "task/cgroup" in check["detail"], check
