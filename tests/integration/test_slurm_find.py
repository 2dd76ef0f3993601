"""After a crash during launch, the Slurm scheduler adopts only the task's own job, on a
real single-node Slurm with real accounts: a job of another user that carries the task's
name, or a started.json (the student's file) naming another user's job, is not adopted."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ailabber.daemonkit.remoted_settings import SlurmOptions
from ailabber.model import ids
from remoted.jobspec import STARTED_FILE, JobSpec
from remoted.schedulers.base import JobHandle, SchedulerUnavailable
from remoted.schedulers.slurm import SlurmScheduler, job_name, jobcomp_owners
from testbed.slurm_cluster import SlurmCluster, find_binary
from testbed.unix_users import can_make_users, ensure_user
from tests.conftest import require
from tests.slurm_fixture import slurm_cluster  # noqa: F401

STUDENT = "ailabber-mal"     # the one whose task is being recovered (and who may attack)
OTHER = "ailabber-vic"       # someone else on the cluster


@dataclass
class Setup:
    cluster: SlurmCluster
    sched: SlurmScheduler
    root: Path
    spec: JobSpec
    jobs: list[int]

    def sbatch_as(self, user: str, *args: str) -> int:
        """Submit a held job as ``user`` (it stays pending: nothing of it ever runs)."""
        p = pwd.getpwnam(user)
        r = subprocess.run([find_binary("sbatch") or "sbatch", "--parsable", "--hold", "--chdir=/tmp",
                            "--output=/dev/null", *args, "--wrap", "true"],
                           env=self.cluster.env(), cwd="/tmp", capture_output=True, text=True, timeout=30,
                           user=p.pw_uid, group=p.pw_gid, extra_groups=[], check=False)
        assert r.returncode == 0, r.stderr
        job = int(r.stdout.strip().split(";")[0])
        self.jobs.append(job)
        return job

    def forge_started(self, job_id: object) -> None:
        """The student's own started.json in their task's run/, naming ``job_id``."""
        run = Path(self.spec.run_dir)
        (run / STARTED_FILE).write_text(json.dumps({"pid": 1, "phase": "commands",
                                                    "started_at": "2026-01-01T00:00:00Z",
                                                    "slurm_job_id": job_id}))
        p = pwd.getpwnam(STUDENT)
        os.chown(run / STARTED_FILE, p.pw_uid, p.pw_gid)


@pytest.fixture
def setup(tmp_path: Path, slurm_cluster: SlurmCluster,  # noqa: F811
          pytestconfig: pytest.Config, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    ok, why = can_make_users()
    require(pytestconfig, ok, why)
    for name in (STUDENT, OTHER):
        ensure_user(name)
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    root = tmp_path / "root"
    task_id = ids.new_task_id()
    run = root / "users" / STUDENT / "tasks" / task_id / "run"
    run.mkdir(parents=True)
    p = pwd.getpwnam(STUDENT)
    os.chown(run, p.pw_uid, p.pw_gid)
    spec = JobSpec(task_id=task_id, user=STUDENT, workdir=str(run.parent), run_dir=str(run),
                   log_dir=str(run.parent / "logs"), commands=["true"], uid=p.pw_uid, gid=p.pw_gid)
    sched = SlurmScheduler(SlurmOptions(jobcomp_log=str(slurm_cluster.jobcomp_log)), root=root)
    s = Setup(slurm_cluster, sched, root, spec, [])
    yield s
    if s.jobs:
        slurm_cluster.run("scancel", *map(str, s.jobs), check=False)


def test_another_users_job_of_the_same_name_is_not_adopted(setup: Setup) -> None:
    s = setup
    name = job_name(s.spec.task_id)
    others = [s.sbatch_as(OTHER, f"--job-name={name}"), s.cluster.sbatch(
        "--hold", "--output=/dev/null", f"--job-name={name}", "--wrap", "true")]   # and root's
    s.jobs.append(others[1])
    assert s.sched.find(s.spec) is None
    own = s.sbatch_as(STUDENT, f"--job-name={name}")
    handle = s.sched.find(s.spec)
    assert handle is not None and handle.job_id == str(own)
    assert handle.data["uid"] == s.spec.uid


def test_a_started_json_naming_another_users_job_is_not_adopted(setup: Setup) -> None:
    s = setup
    name = job_name(s.spec.task_id)
    victim = s.sbatch_as(OTHER, f"--job-name={name}")
    s.forge_started(victim)
    assert s.sched.find(s.spec) is None
    s.forge_started(str(victim))
    assert s.sched.find(s.spec) is None
    # The student's own job, but another task's (another name): not this task's job.
    other_task = s.sbatch_as(STUDENT, f"--job-name={job_name(ids.new_task_id())}")
    s.forge_started(other_task)
    assert s.sched.find(s.spec) is None


def test_a_started_json_naming_a_job_slurm_does_not_know_is_not_adopted(setup: Setup) -> None:
    """An id no record confirms (here one not handed out yet: it could become anyone's
    job) is not adopted; the task is queued again instead."""
    s = setup
    latest = s.sbatch_as(STUDENT, "--job-name=ailabber-probe")
    s.forge_started(latest + 1_000_000)
    assert s.sched.job_owners(str(latest + 1_000_000)) == []
    assert s.sched.find(s.spec) is None


def test_who_owns_a_job_as_squeue_and_the_jobcomp_log_say(setup: Setup) -> None:
    """The records ``find`` relies on, read from the real squeue and the real jobcomp log
    (a finished job of the student, and one of someone else)."""
    s = setup
    name = job_name(s.spec.task_id)
    mine = s.sbatch_as(STUDENT, f"--job-name={name}")
    theirs = s.sbatch_as(OTHER, f"--job-name={name}")
    uid, other_uid = str(pwd.getpwnam(STUDENT).pw_uid), str(pwd.getpwnam(OTHER).pw_uid)
    assert s.sched.job_owners(str(mine)) == [(uid, name)]
    assert s.sched.job_owners(str(theirs)) == [(other_uid, name)]
    s.cluster.run("scontrol", "release", str(mine), str(theirs))
    for job in (mine, theirs):
        s.cluster.wait_job(job, ["COMPLETED"], 60)
    log = s.cluster.jobcomp_log

    def logged() -> bool:
        return bool(jobcomp_owners(log, str(mine)) and jobcomp_owners(log, str(theirs)))

    deadline = time.monotonic() + 30
    while not logged() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert jobcomp_owners(log, str(mine)) == [(uid, name)]
    assert jobcomp_owners(log, str(theirs)) == [(other_uid, name)]


def test_an_unknown_account_is_not_taken_for_no_job(setup: Setup) -> None:
    """squeue answers ``--user`` with an unknown uid by "Invalid user" and no rows, yet
    exits 0: that is not knowing, which must never queue the task again."""
    s = setup
    s.spec.uid = 3_999_999
    with pytest.raises(SchedulerUnavailable):
        s.sched.find(s.spec)


def test_a_cancel_slurm_could_not_take_is_reported_and_taken_later(
        setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """scancel that cannot reach the controller raises SchedulerUnavailable (remoted then
    keeps the cancel on record and sends it on its next poll) instead of being taken for
    sent; once the controller answers the job is cancelled, and cancelling a job that has
    already ended is no error."""
    s = setup
    job = s.sbatch_as(STUDENT, f"--job-name={job_name(s.spec.task_id)}")
    handle = JobHandle(str(job), {"uid": s.spec.uid, "gid": s.spec.gid})
    # The same cluster with a controller port nobody serves, beside the real configuration
    # (scancel runs as the student, who can read that directory).
    unreachable = s.cluster.conf.with_name("slurm-unreachable.conf")
    unreachable.write_text("\n".join(line for line in s.cluster.conf.read_text().splitlines()
                                     if not line.startswith("SlurmctldPort")) + "\nSlurmctldPort=1\n")
    monkeypatch.setenv("SLURM_CONF", str(unreachable))
    with pytest.raises(SchedulerUnavailable, match="Unable to contact"):
        s.sched.cancel(handle)
    assert s.cluster.job_state(job)[0] == "PENDING"
    monkeypatch.setenv("SLURM_CONF", str(s.cluster.conf))
    s.sched.cancel(handle)
    assert s.cluster.wait_job(job, ["CANCELLED"], 30) == "CANCELLED"
    s.sched.cancel(handle)
