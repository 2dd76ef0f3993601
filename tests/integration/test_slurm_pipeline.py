"""remoted against a real single-node Slurm (2 fake GPUs): what is particular to Slurm (what
every backend does is in tests/contract)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.pipeline import Pipeline
from testbed.slurm_cluster import SlurmCluster
from tests.slurm_fixture import slurm_cluster  # noqa: F401


def _pipeline(base: Path, cluster: SlurmCluster, **kw: object) -> Pipeline:
    extra: dict[str, object] = {"signal_before_timeout": 0}
    extra.update(kw)
    return Pipeline(base, scheduler="slurm", kill_grace=2.0,
                    remoted_env={"SLURM_CONF": str(cluster.conf)}, remoted_extra=extra)


@pytest.fixture
def slurm_pipeline(tmp_path: Path, slurm_cluster: SlurmCluster) -> Iterator[Pipeline]:  # noqa: F811
    p = _pipeline(tmp_path, slurm_cluster)
    p.start_all()
    yield p
    p.stop_all()
    slurm_cluster.run("scancel", "--name=" + ",".join(f"ailabber-{t}" for t in p.submitted) if p.submitted
                      else "--state=PENDING", check=False)


def _jobs_named(cluster: SlurmCluster, task_id: str) -> list[str]:
    r = cluster.run("squeue", "-h", "-t", "all", f"--name=ailabber-{task_id}", "-o", "%i", check=False)
    return r.stdout.split()


def test_controller_restart_changes_no_outcome(slurm_pipeline: Pipeline, slurm_cluster: SlurmCluster) -> None:  # noqa: F811
    p = slurm_pipeline
    good = p.submit(p.project(["sleep 4"]))
    bad = p.submit(p.project(["sleep 4; exit 5"]))
    for t in (good, bad):
        p.wait_for(t, lambda s: s["state"] == "running", 60, "running")
    slurm_cluster.restart_controller()
    assert p.wait_terminal(good, 90)["state"] == "completed"
    st = p.wait_terminal(bad, 90)
    assert (st["state"], st["exit_code"]) == ("failed", 5)


def test_environment_built_once_and_reused_under_slurm(slurm_pipeline: Pipeline) -> None:
    from tests.integration.test_pipeline_env import _project

    p = slurm_pipeline
    a = p.submit(_project(p, "env-a"))
    assert p.wait_terminal(a, 180)["state"] == "completed", p.cli("logs", a).stdout
    b = p.submit(_project(p, "env-b"))
    assert p.wait_terminal(b, 180)["state"] == "completed"
    assert "built" in p.cli("logs", a).stdout and "reused" in p.cli("logs", b).stdout


def test_up_with_the_slurm_scheduler(tmp_path: Path, slurm_cluster: SlurmCluster) -> None:  # noqa: F811
    import signal
    import subprocess
    import sys

    home = tmp_path / "home"
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "task_config.toml").write_text('[resources]\nmemory = "1G"\n[run]\ncommands = ["hostname"]\n')
    env = slurm_cluster.env(AILABBER_HOME=str(home))
    up = subprocess.Popen([sys.executable, "-m", "ailabber", "up", "--scheduler", "slurm"], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sub = subprocess.run([sys.executable, "-m", "ailabber", "submit", "--json"], cwd=proj, env=env,
                             capture_output=True, text=True, check=True)
        task_id = json.loads(sub.stdout)["id"]
        r = subprocess.run([sys.executable, "-m", "ailabber", "wait", task_id, "--timeout", "90"], env=env,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        st = json.loads(subprocess.run([sys.executable, "-m", "ailabber", "status", "--json", task_id], env=env,
                                       capture_output=True, text=True).stdout)
        assert st["job_id"].isdigit()
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(60)
    assert up.returncode == 0
    assert "scheduler: slurm" in (home / "remoted.yaml").read_text()


def test_finished_jobs_are_found_in_the_jobcomp_log(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:  # noqa: F811
    import os

    from ailabber.daemonkit.remoted_settings import SlurmOptions
    from remoted.schedulers.slurm import SlurmScheduler

    ok = slurm_cluster.sbatch("--wrap", "true", f"--output={tmp_path}/o")
    bad = slurm_cluster.sbatch("--wrap", "exit 4", f"--output={tmp_path}/o")
    for j in (ok, bad):
        slurm_cluster.wait_job(j, ["COMPLETED", "FAILED"], 30)
    os.environ["SLURM_CONF"] = str(slurm_cluster.conf)
    try:
        sched = SlurmScheduler(SlurmOptions(jobcomp_log=str(slurm_cluster.jobcomp_log)))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sched.accounting(str(bad)) is None:
            time.sleep(0.2)
        a, b = sched.accounting(str(ok)), sched.accounting(str(bad))
    finally:
        del os.environ["SLURM_CONF"]
    assert a is not None and a["state"] == "COMPLETED" and a["exit_code"] == "0:0"
    assert b is not None and b["state"] == "FAILED" and b["exit_code"] == "4:0"


def test_a_burst_handed_over_at_once_gets_one_job_per_task_and_honours_a_cancel(
        tmp_path: Path, slurm_cluster: SlurmCluster) -> None:  # noqa: F811
    """Tasks that reach remoted together are submitted to Slurm concurrently: each still
    gets exactly one job, and a task whose cancel arrived with it is never submitted."""
    p = _pipeline(tmp_path, slurm_cluster)
    runs = tmp_path / "runs"
    runs.mkdir()
    p.start("spoold")
    try:
        ids = [p.submit(p.project([f"echo ran-{i} >> {runs}/count"])) for i in range(8)]
        doomed = p.submit(p.project([f"sleep 20; echo doomed >> {runs}/count"]))
        for t in [*ids, doomed]:
            p.wait_for(t, lambda s: s["stage"] == "synced", 60, "the upload")
        p.cli("cancel", doomed, check=True)
        requests = p.remote_task(doomed).parent.parent / "requests"
        deadline = time.monotonic() + 30
        while not (requests / f"{doomed}.cancel").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (requests / f"{doomed}.cancel").exists(), "the cancel request never reached the cluster side"
        p.start("remoted")
        for t in ids:
            st = p.wait_terminal(t, 120)
            assert st["state"] == "completed", st
        st = p.wait_terminal(doomed, 120)
        assert (st["state"], st["reason"]) == ("canceled", "canceled_by_user"), st
        jobs = {t: _jobs_named(slurm_cluster, t) for t in [*ids, doomed]}
        assert jobs[doomed] == [], "a task cancelled before its launch was submitted anyway"
        assert all(len(jobs[t]) == 1 for t in ids), jobs
        assert sorted((runs / "count").read_text().split()) == sorted(f"ran-{i}" for i in range(8))
    finally:
        p.stop_all()
