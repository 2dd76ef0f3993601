"""``ailabber cancel`` of several tasks at once: ids, ``--state``, ``--all``, with the real
CLI and daemons (local scheduler, one GPU, so a second GPU task stays pending)."""

from __future__ import annotations

from pathlib import Path

from testbed.pipeline import Pipeline


def _lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.strip()]


def test_cancel_by_state_then_all_then_ids_with_a_finished_one(pipeline: Pipeline) -> None:
    done = pipeline.submit(pipeline.project(["true"]))
    assert pipeline.wait_terminal(done)["state"] == "completed"
    running = pipeline.submit(pipeline.project(["sleep 120"], gpus=1))
    pipeline.wait_for(running, lambda s: s["state"] == "running", 60, "running")
    waiting = pipeline.submit(pipeline.project(["sleep 120"], gpus=1))
    pipeline.wait_for(waiting, lambda s: s["reason"] == "waiting_for_gpu", 60, "waiting for the GPU")

    r = pipeline.cli("cancel", "--state", "pending")
    assert r.returncode == 0, r
    assert _lines(r.stdout) == [f"cancel requested for {waiting}"]
    assert pipeline.wait_terminal(waiting)["state"] == "canceled"
    assert pipeline.status(running)["state"] == "running"

    r = pipeline.cli("cancel", "--all")
    assert r.returncode == 0, r
    assert _lines(r.stdout) == [f"cancel requested for {running}"]      # finished ones are not "all"
    assert pipeline.wait_terminal(running)["state"] == "terminated"

    r = pipeline.cli("cancel", done, running, "--state", "completed")
    assert r.returncode == 2 and "not both" in r.stderr, r
    r = pipeline.cli("cancel", done[-6:], waiting[-6:])
    assert r.returncode == 0, r
    assert _lines(r.stdout) == [f"{done} is already completed; nothing to cancel",
                                f"{waiting} is already canceled; nothing to cancel"]
    r = pipeline.cli("cancel", "--all")
    assert (r.returncode, _lines(r.stdout)) == (0, ["no tasks to cancel"]), r


def test_cancel_refuses_an_unknown_state_and_a_missing_choice(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    task = p.submit(p.project(["true"]))
    r = p.cli("cancel", "--state", "pendng")
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--state" in lines[0] and "'pending'" in lines[0], lines
    r = p.cli("cancel")
    assert r.returncode == 2 and "--all" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r
    assert not (p.home / "spool" / "requests" / f"{task}.cancel").exists()
    r = p.cli("cancel", "--state", "pending", "--state", "running")
    assert r.returncode == 0 and _lines(r.stdout)[0] == f"cancel requested for {task}", r
    assert (p.home / "spool" / "requests" / f"{task}.cancel").exists()
