"""Every backend says when a task waiting for a GPU may start: remoted's upper bound from
the time limits where it hands out the GPUs itself (fake, local), Slurm's own estimate
under Slurm (``squeue --start``; its backfill plans about every 30 s)."""

from __future__ import annotations

from ailabber.model.task import parse_iso
from tests.contract.conftest import Backend


def test_a_task_waiting_for_a_gpu_says_when_it_may_start(backend: Backend) -> None:
    blocker = backend.submit(backend.project(["sleep 300"], gpus=backend.gpus, time_limit="2:00"))
    began = parse_iso(backend.wait_for(blocker, lambda s: s["state"] == "running", 90, "running")["started_at"])
    assert began is not None
    waiting = backend.submit(backend.project(["true"], gpus=1, time_limit="2:00"))
    st = backend.wait_for(waiting, lambda s: s["reason"] == backend.waiting_reason and s.get("start_estimate"), 150,
                          "a start estimate")
    assert st["state"] == "pending" and st["start_estimate_kind"] == backend.start_estimate_kind, st
    start = parse_iso(st["start_estimate"])
    # When the blocker's time limit runs out, give or take the kill grace and Slurm's rounding.
    assert start is not None and began - 2 <= start <= began + 120 + 60, (st, began)
    assert "start" in backend.cli("status", waiting, check=True).stdout
    backend.cli("cancel", waiting, blocker, check=True)
    for t in (waiting, blocker):
        assert backend.wait_terminal(t, 90)["state"] in ("canceled", "terminated")
