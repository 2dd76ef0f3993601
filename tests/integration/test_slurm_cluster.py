"""The real single-node Slurm behaves as the tests built on it assume.

If these fail, failures elsewhere that involve Slurm say nothing about ailabber.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from testbed.slurm_cluster import SlurmCluster
from testbed.strays import detach_command, kill_marked, new_marker, pid_dir, wait_gone
from tests.conftest import require
from tests.slurm_fixture import slurm_cluster  # noqa: F401

pytestmark = [pytest.mark.slurm, pytest.mark.root]

FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}


def _exit_code(cluster: SlurmCluster, job_id: int) -> str:
    out = cluster.run("scontrol", "show", "job", str(job_id), "-o").stdout
    m = re.search(r"\bExitCode=(\S+)", out)
    assert m, out
    return m.group(1)


def test_wrap_job_completes_and_writes_output(slurm_cluster: SlurmCluster,  # noqa: F811
                                              tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    job = slurm_cluster.sbatch("--output", str(out), "--wrap", "echo hi")
    assert slurm_cluster.wait_job(job, FINISHED, timeout=20) == "COMPLETED", \
        slurm_cluster.diagnostics()
    assert _exit_code(slurm_cluster, job) == "0:0"
    assert out.read_text().strip() == "hi"


def test_third_gpu_job_pends_for_resources(slurm_cluster: SlurmCluster,  # noqa: F811
                                           tmp_path: Path) -> None:
    jobs = [slurm_cluster.sbatch("--gres=gpu:1", "--output", str(tmp_path / f"{i}.out"),
                                 "--wrap", "sleep 20") for i in range(3)]
    try:
        deadline = time.monotonic() + 15
        seen: list[tuple[str, str]] = []
        while time.monotonic() < deadline:
            seen = [slurm_cluster.job_state(j) for j in jobs]
            states = sorted(s for s, _ in seen)
            if states == ["PENDING", "RUNNING", "RUNNING"]:
                break
            time.sleep(0.1)
        assert sorted(s for s, _ in seen) == ["PENDING", "RUNNING", "RUNNING"], seen
        assert [r for s, r in seen if s == "PENDING"] == ["Resources"], seen
    finally:
        slurm_cluster.run("scancel", *map(str, jobs), check=False)
        for j in jobs:
            slurm_cluster.wait_job(j, FINISHED, timeout=20)


def test_gpu_job_sees_cuda_visible_devices(slurm_cluster: SlurmCluster,  # noqa: F811
                                           tmp_path: Path) -> None:
    out = tmp_path / "cvd.txt"
    # The submitter's value would leak in through --export=ALL; Slurm must replace it.
    env = slurm_cluster.env(CUDA_VISIBLE_DEVICES="from-submitter")
    job = slurm_cluster.sbatch("--gres=gpu:1", "--output", str(out),
                               "--wrap", "echo CVD=$CUDA_VISIBLE_DEVICES", env=env)
    assert slurm_cluster.wait_job(job, FINISHED, timeout=20) == "COMPLETED"
    assert re.fullmatch(r"CVD=\d+", out.read_text().strip()), out.read_text()


def test_job_survives_controller_restart(slurm_cluster: SlurmCluster,  # noqa: F811
                                         tmp_path: Path) -> None:
    out = tmp_path / "restart.txt"
    job = slurm_cluster.sbatch("--output", str(out), "--wrap", "sleep 4; echo done")
    slurm_cluster.wait_job(job, {"RUNNING"}, timeout=15)

    slurm_cluster.restart_controller()

    assert slurm_cluster.job_state(job)[0] in {"RUNNING", "COMPLETING", "COMPLETED"}
    assert slurm_cluster.wait_job(job, FINISHED, timeout=30) == "COMPLETED", \
        slurm_cluster.diagnostics()
    assert out.read_text().strip() == "done"
    # Saved state carried over: job ids continue rather than restart at 1.
    after = slurm_cluster.sbatch("--output", str(tmp_path / "after.txt"), "--wrap", "true")
    assert after > job
    assert slurm_cluster.wait_job(after, FINISHED, timeout=20) == "COMPLETED"


def test_a_detached_process_ends_with_its_job(slurm_cluster: SlurmCluster,  # noqa: F811
                                              tmp_path: Path, pytestconfig: pytest.Config) -> None:
    require(pytestconfig, slurm_cluster.tracks_in_cgroups,
            f"Slurm tracking jobs in cgroups ({slurm_cluster.cgroup_problem})")
    marker = new_marker()
    pid_file = pid_dir(tmp_path) / "stray.pid"
    job = slurm_cluster.sbatch("--output", str(tmp_path / "out.txt"),
                               "--wrap", detach_command(marker, pid_file))
    try:
        assert slurm_cluster.wait_job(job, FINISHED, timeout=30) == "COMPLETED", \
            slurm_cluster.diagnostics()
        assert pid_file.read_text().strip().isdigit()     # the stray did start
        assert wait_gone(marker, timeout=3.0) == [], "the job's detached process outlived it"
    finally:
        kill_marked(marker)
