"""Faults of the cluster at course scale, against a real Slurm of its own (these tests
restart and kill its daemons, so they do not share the session's cluster): a controller
restart under 20 running jobs, a node whose slurmd and jobs die, and a restart of remoted
in the middle of a burst of 500 tasks.  Outcomes must be what Slurm reports, and nothing
may run twice or be lost."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from remoted.schedulers.slurm_states import map_state
from testbed import slurm_processes
from testbed.pipeline import Pipeline, count_runs, wait_until
from testbed.slurm_cluster import SlurmCluster, available
from tests.conftest import require

RUNNING_AT_ONCE = 20


@pytest.fixture(scope="module")
def cluster(pytestconfig: pytest.Config) -> Iterator[SlurmCluster]:
    ok, why = available()
    require(pytestconfig, ok, f"a real single-node Slurm: {why}")
    # A node declaring room for 20 one-CPU jobs at once (the node may declare more than
    # the machine has: the jobs only sleep).
    c = SlurmCluster(cpus=RUNNING_AT_ONCE + 4, memory_mb=(RUNNING_AT_ONCE + 4) * 600, gpus=2)
    c.start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def pipeline(tmp_path: Path, cluster: SlurmCluster) -> Iterator[Pipeline]:
    p = Pipeline(tmp_path, scheduler="slurm", kill_grace=2.0, remoted_env={"SLURM_CONF": str(cluster.conf)},
                 remoted_extra={"signal_before_timeout": 0, "poll_interval": 0.5})
    p.start_all()
    yield p
    p.stop_all()
    cluster.run("scancel", "--state=PENDING", check=False)
    cluster.run("scancel", "--state=RUNNING", check=False)


def _jobs_named(cluster: SlurmCluster, task_id: str) -> list[str]:
    r = cluster.run("squeue", "-h", "-t", "all", f"--name=ailabber-{task_id}", "-o", "%i", check=False)
    return r.stdout.split()


def _project(p: Pipeline, name: str, seconds: int, runs: Path) -> tuple[Path, Path]:
    proj = p.project([f"sleep {seconds}"], name=name, memory="256M")
    return proj, count_runs(proj, runs / name)


def test_controller_restart_under_twenty_running_jobs_changes_no_outcome(
        pipeline: Pipeline, cluster: SlurmCluster, tmp_path: Path) -> None:
    p = pipeline
    runs = tmp_path / "runs"
    runs.mkdir(mode=0o777)
    tasks = {}
    for i in range(RUNNING_AT_ONCE):
        proj, count = _project(p, f"t{i}", 10, runs)
        tasks[p.submit(proj)] = count
    for task_id in tasks:
        p.wait_for(task_id, lambda s: s["state"] == "running", 120, "running")
    cluster.restart_controller()
    for task_id, count in tasks.items():
        st = p.wait_terminal(task_id, 180)
        assert st["state"] == "completed", (st, p.daemon_logs())
        assert count.read_text() == "ran\n"                     # ran once
        assert len(_jobs_named(cluster, task_id)) == 1           # submitted once


def _slurm_state(cluster: SlurmCluster, job_id: str) -> dict[str, str]:
    r = cluster.run("scontrol", "-o", "show", "job", job_id, check=False)
    fields = dict(w.split("=", 1) for w in r.stdout.split() if "=" in w)
    return fields


def test_a_node_whose_slurmd_and_jobs_die_ends_its_tasks_as_slurm_reports(
        pipeline: Pipeline, cluster: SlurmCluster, tmp_path: Path) -> None:
    """The node goes away under three running jobs (slurmd and its job steps killed, the
    node declared down): each task shows what Slurm reports of its job (requeued, or a
    node failure), never a state of its own, and ailabber submitted nothing twice; once
    the node is back, the tasks are still the student's to cancel."""
    p = pipeline
    runs = tmp_path / "runs"
    runs.mkdir(mode=0o777)
    tasks = {}
    for i in range(3):
        proj, count = _project(p, f"n{i}", 600, runs)
        tasks[p.submit(proj)] = count
    for task_id in tasks:
        p.wait_for(task_id, lambda s: s["state"] == "running", 120, "running")
    cluster.kill_node()
    for task_id in tasks:
        st = p.wait_for(task_id, lambda s: s["state"] != "running", 120, "the node's failure to be seen")
        jobs = _jobs_named(cluster, task_id)
        assert len(jobs) == 1, jobs
        f = _slurm_state(cluster, jobs[0])
        expected = map_state(f.get("JobState", ""), f.get("Reason"), f.get("NodeList"), f.get("ExitCode"),
                             None, was_running=True)
        assert (st["state"], st["reason"]) == (expected.state, expected.reason), (st, f)
    cluster.start_node()
    # The tasks are still the student's to end: a cancel reaches Slurm's requeued jobs.
    for task_id in tasks:
        p.cli("cancel", task_id, check=True)
    for task_id in tasks:
        st = p.wait_terminal(task_id, 120)
        jobs = _jobs_named(cluster, task_id)
        f = _slurm_state(cluster, jobs[0])
        assert len(jobs) == 1 and f.get("JobState") == "CANCELLED", (jobs, f)
        assert st["state"] in ("canceled", "terminated"), st


def test_remoted_restarted_during_a_burst_of_500_tasks(pipeline: Pipeline, cluster: SlurmCluster) -> None:
    """500 tasks committed at once (by the code behind ``ailabber submit``); remoted is
    killed while it accepts and launches them, and started again: every task ends
    completed, with exactly one Slurm job."""
    from ailabber.storage.spool import Spool
    from ailabber.workstation.submit import submit

    p = pipeline
    proj = p.project(["true"], name="burst", memory="128M")
    spool = Spool(p.home / "spool")
    ids = [submit(proj / "task_config.toml", spool).task_id for _ in range(500)]
    records = p.root / "state" / "active"

    def launched() -> int:
        return sum(len(os.listdir(d)) for d in records.iterdir()) if records.is_dir() else 0

    wait_until(lambda: launched() >= 50, "remoted to be half-way through accepting the burst", 300)
    p.kill("remoted", signal.SIGKILL)
    p.start("remoted")
    pending = set(ids)
    deadline = time.monotonic() + 900
    listed: list[dict[str, object]] = []
    while pending and time.monotonic() < deadline:
        listed = json.loads(p.cli("list", "--json", "--limit", "1000", check=True).stdout)
        pending -= {str(t["id"]) for t in listed if t["stage"] == "done"}
        time.sleep(1)
    assert not pending, (len(pending), p.daemon_logs()[-5000:])
    assert {t["state"] for t in listed if t["id"] in set(ids)} == {"completed"}
    for task_id in ids:
        assert len(_jobs_named(cluster, task_id)) == 1, task_id


def _stop_munge() -> None:
    pid = int((slurm_processes.MUNGE_DIR / "munged.pid").read_text().strip())
    assert slurm_processes.terminate(pid, timeout=10.0)
    assert not slurm_processes.munge_answers()


def test_munge_stopped_for_thirty_seconds(pipeline: Pipeline, cluster: SlurmCluster, tmp_path: Path) -> None:
    """Without munge Slurm answers nobody: a task submitted meanwhile waits as
    ``scheduler_unreachable`` (not failed), a running one carries on; once munge is back
    both end completed, each with one job."""
    p = pipeline
    runs = tmp_path / "runs"
    runs.mkdir(mode=0o777)
    proj, running_count = _project(p, "during", 40, runs)
    running = p.submit(proj)
    p.wait_for(running, lambda s: s["state"] == "running", 120, "running")
    _stop_munge()
    stopped_at = time.monotonic()
    try:
        proj, waiting_count = _project(p, "after", 1, runs)
        waiting = p.submit(proj)
        st = p.wait_for(waiting, lambda s: s["reason"] == "scheduler_unreachable", 60, "scheduler_unreachable")
        assert st["state"] == "pending" and p.status(running)["state"] == "running"
        wait_until(lambda: time.monotonic() - stopped_at >= 30, "thirty seconds without munge", 60)
        assert p.status(waiting)["state"] == "pending"
    finally:
        slurm_processes.start_munged()
    for task_id, count in ((running, running_count), (waiting, waiting_count)):
        st = p.wait_terminal(task_id, 180)
        assert st["state"] == "completed", (st, p.daemon_logs()[-3000:])
        assert count.read_text() == "ran\n" and len(_jobs_named(cluster, task_id)) == 1
