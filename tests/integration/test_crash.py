"""SIGKILL either daemon at any point of the pipeline: no task is lost, none runs twice.

Each task appends one line to a file outside ailabber's directories each time its command
runs, so "ran exactly once" is counted, not assumed.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from testbed.pipeline import Pipeline


def _counted_task(p: Pipeline, runs: Path, name: str, seconds: float = 0.5) -> str:
    runs.mkdir(exist_ok=True)
    return p.submit(p.project([f"echo ran >> {runs / name}; sleep {seconds}"], name=name))


def _runs(runs: Path, name: str) -> int:
    f = runs / name
    return len(f.read_text().splitlines()) if f.exists() else 0


@pytest.mark.parametrize("which,point", [
    ("spoold", "spoold:after_push"),
    ("remoted", "remoted:after_accept_rename"),
    ("remoted", "remoted:after_accept"),
    ("remoted", "remoted:before_submit"),
    ("remoted", "remoted:after_submit"),
])
def test_crash_at_named_point_then_restart(tmp_path: Path, which: str, point: str) -> None:
    p = Pipeline(tmp_path)
    runs = tmp_path / "runs"
    other = "remoted" if which == "spoold" else "spoold"
    p.start(other)
    crashing = p.start(which, AILABBER_CRASH_AT=point)
    try:
        task_id = _counted_task(p, runs, "t1")
        assert crashing.wait(60) == -9, f"{which} did not reach {point}\n{p.daemon_logs()}"
        p.start(which)
        st = p.wait_terminal(task_id)
        assert st["state"] == "completed", st
        assert _runs(runs, "t1") == 1
        time.sleep(1.5)   # a late duplicate would show up here
        assert _runs(runs, "t1") == 1
        users = list((p.root / "users").iterdir())
        assert len(users) == 1
        assert [x.name for x in (users[0] / "tasks").iterdir()] == [task_id]
        assert list((users[0] / "incoming" / "commit").iterdir()) == []
    finally:
        p.stop_all()


def test_kill_remoted_while_task_runs_keeps_tracking_it(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    runs = tmp_path / "runs"
    p.start_all()
    try:
        task_id = _counted_task(p, runs, "long", seconds=3)
        p.wait_for(task_id, lambda s: s["state"] == "running", 60, "running")
        p.kill("remoted")
        time.sleep(1)
        p.start("remoted")
        st = p.wait_terminal(task_id)
        assert st["state"] == "completed" and _runs(runs, "long") == 1
    finally:
        p.stop_all()


def test_random_kills_lose_nothing_and_run_nothing_twice(tmp_path: Path) -> None:
    rng = random.Random(20261128)
    p = Pipeline(tmp_path, gpus=2)
    runs = tmp_path / "runs"
    p.start_all()
    names = [f"task{i}" for i in range(8)]
    ids: dict[str, str] = {}
    try:
        for i, name in enumerate(names):
            ids[name] = _counted_task(p, runs, name, seconds=rng.choice([0.2, 0.8, 1.5]))
            if i % 2 == 1:
                victim = rng.choice(["spoold", "remoted"])
                time.sleep(rng.uniform(0, 0.6))
                p.kill(victim)
                p.start(victim)
        for _ in range(4):
            time.sleep(rng.uniform(0.2, 1.0))
            victim = rng.choice(["spoold", "remoted"])
            p.kill(victim)
            p.start(victim)
        for name, task_id in ids.items():
            st = p.wait_terminal(task_id, timeout=120)
            assert st["state"] == "completed", (name, st)
        time.sleep(1.5)
        assert {n: _runs(runs, n) for n in names} == {n: 1 for n in names}
    finally:
        p.stop_all()


def test_a_burst_waiting_in_the_spool_goes_up_in_batches_and_runs_once(tmp_path: Path) -> None:
    p = Pipeline(tmp_path, gpus=0)
    runs = tmp_path / "runs"
    ids = {f"b{i}": _counted_task(p, runs, f"b{i}", seconds=0) for i in range(30)}   # daemons still down
    p.start_all()
    try:
        for name, task_id in ids.items():
            assert p.wait_terminal(task_id, 120)["state"] == "completed", name
        assert {n: _runs(runs, n) for n in ids} == {n: 1 for n in ids}
        log = "\n".join(f.read_text() for f in p.logdir.glob("spoold-*.log"))
        batch_pushes = [ln for ln in log.splitlines() if "rsync:" in ln and "--out-format=%n|%b" in ln]
        assert batch_pushes and max(ln.count("/task.toml") for ln in batch_pushes) >= 10   # together, not one by one
        st = p.status(ids["b0"])
        assert st["upload_bytes_total"] > 0 and st["upload_bytes_sent"] > 0
    finally:
        p.stop_all()
