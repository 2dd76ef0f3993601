"""Where waiting tasks stand under a real Slurm (2 fake GPUs): Slurm's pending reason and
its own start estimate for a job in Slurm's queue, and the place in remoted's queue for a
task held back by a per-user limit."""

from __future__ import annotations

import time
from pathlib import Path

from ailabber.model.task import parse_iso
from testbed.pipeline import Pipeline, wait_until
from testbed.slurm_cluster import SlurmCluster
from tests.slurm_fixture import slurm_cluster  # noqa: F401


def test_a_pending_slurm_job_shows_slurms_reason_and_start_estimate(tmp_path: Path,
                                                                     slurm_cluster: SlurmCluster) -> None:  # noqa: F811
    """Two one-GPU jobs fill the cluster; the third waits in Slurm's queue (Resources)
    until Slurm, which plans with the time limits, says when it starts; the fourth is over
    max_running and waits in remoted's own queue, first in line."""
    p = Pipeline(tmp_path, scheduler="slurm", kill_grace=2.0, remoted_env={"SLURM_CONF": str(slurm_cluster.conf)},
                 remoted_extra={"signal_before_timeout": 0, "limits": {"max_running": 3}})
    p.start_all()
    try:
        ids = [p.submit(p.project(["sleep 300"], gpus=1, time_limit="5:00")) for _ in range(4)]

        def two_running() -> list[str] | None:      # which two of the three Slurm starts is Slurm's choice
            running = [t for t in ids[:3] if p.status(t)["state"] == "running"]
            return running if len(running) == 2 else None

        running = wait_until(two_running, "two of the three Slurm jobs to run", 90)
        waiting = next(t for t in ids[:3] if t not in running)
        began = max(parse_iso(p.status(t)["started_at"]) or 0 for t in running)
        # Slurm's backfill plans pending jobs every 30 s or so.
        third = p.wait_for(waiting, lambda s: s["reason"] == "Resources" and s.get("start_estimate"), 150,
                           "Slurm's start estimate")
        assert third["start_estimate_kind"] == "scheduler" and "queue_position" not in third
        expected = parse_iso(third["start_estimate"])
        assert expected is not None and time.time() - 5 < expected <= began + 300 + 90, (third, began)
        human = p.cli("status", waiting, check=True).stdout
        assert "reason       Resources: waiting for a free GPU/CPU on the cluster" in human
        assert "the scheduler expects it to start at" in human
        fourth = p.wait_for(ids[3], lambda s: s["reason"] == "user_limit" and s.get("queue_position"), 60,
                            "a place in remoted's queue")
        assert (fourth["queue_position"], fourth["queue_ahead"], fourth["queue_length"]) == (1, 0, 1)
        assert "start_estimate" not in fourth           # Slurm decides when: remoted does not guess
        r = p.cli("cancel", *ids)
        assert r.returncode == 0, r.stderr
        for t in ids:
            assert p.wait_terminal(t, 120)["state"] in ("canceled", "terminated")
    finally:
        p.stop_all()
        slurm_cluster.run("scancel", "--name=" + ",".join(f"ailabber-{t}" for t in p.submitted), check=False)
