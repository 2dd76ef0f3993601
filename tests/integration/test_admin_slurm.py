"""The staff's cancel and hold against a real single-node Slurm (2 fake GPUs): a job
running and a job pending in Slurm's queue end with the staff's reason, and a held task is
never handed to Slurm until released."""

from __future__ import annotations

from pathlib import Path

from testbed.pipeline import Pipeline
from testbed.slurm_cluster import SlurmCluster
from tests.integration.test_admin_acts import admin, audit
from tests.integration.test_slurm_pipeline import _jobs_named, _pipeline
from tests.slurm_fixture import slurm_cluster  # noqa: F401


def test_staff_cancel_and_hold_under_slurm(tmp_path: Path, slurm_cluster: SlurmCluster) -> None:  # noqa: F811
    p = _pipeline(tmp_path, slurm_cluster)
    p.start_all()
    try:
        running = p.submit(p.project(["sleep 300"], gpus=2, time_limit="5:00"))
        p.wait_for(running, lambda s: s["state"] == "running", 90, "running in Slurm")
        pending = p.submit(p.project(["sleep 300"], gpus=2, time_limit="5:00"))
        p.wait_for(pending, lambda s: s["reason"] == "Resources", 90, "pending in Slurm's queue")

        assert admin(p, "hold", "--all", "--message", "Slurm maintenance").returncode == 0
        held = p.submit(p.project(["true"]))
        st = p.wait_for(held, lambda s: s["reason"] == "held", 60, "held")
        assert st["message"] == "Slurm maintenance" and not _jobs_named(slurm_cluster, held)

        r = admin(p, "cancel", running, pending, "--reason", "the partition is reconfigured")
        assert r.returncode == 0, r.stdout + r.stderr
        for task_id, state in ((running, "terminated"), (pending, "canceled")):
            st = p.wait_terminal(task_id, 120)
            assert (st["state"], st["reason"], st["message"]) == (
                state, "canceled_by_staff", "the partition is reconfigured"), st

        assert not _jobs_named(slurm_cluster, held)              # still never handed to Slurm
        assert admin(p, "release", "--all").returncode == 0
        assert p.wait_terminal(held, 120)["state"] == "completed"
        assert len(_jobs_named(slurm_cluster, held)) == 1
        assert [a["act"] for a in audit(p)] == ["hold", "cancel", "release"]
    finally:
        p.stop_all()
        slurm_cluster.run("scancel", "--name=" + ",".join(f"ailabber-{t}" for t in p.submitted), check=False)
