"""Students cannot touch each other's tasks, and are served in turn.  Real accounts, real
uids, remoted as root (that each task runs as its owner is a contract test:
tests/contract/test_owners.py)."""

from __future__ import annotations

import json
import pwd
import shutil
from pathlib import Path

from testbed.pipeline import Pipeline, owned_project, students_on_one_root
from testbed.unix_users import chown_tree, world_dir
from tests.integration.conftest import STUDENTS


def _setup(base: Path, py: Path, extra: dict[str, object] | None = None) -> dict[str, Pipeline]:
    return students_on_one_root(base, STUDENTS, py, extra=extra)


def test_a_student_cannot_cancel_anothers_task(student_python: Path) -> None:
    base = world_dir("ailabber-users-cancel-")
    pipes = _setup(base, student_python)
    alice, bob = (pipes[n] for n in STUDENTS)
    alice.start("remoted")
    bob.start("spoold")
    try:
        b = bob.submit(owned_project(bob, "pb", "sleep 3; mkdir -p output; echo ok > output/r"))
        bob.wait_for(b, lambda s: s["state"] == "running", 60, "running")
        # Alice drops a cancel request for Bob's task into her own area (all her key could do).
        req = alice.root / "users" / STUDENTS[0] / "requests"
        req.mkdir(exist_ok=True)
        (req / f"{b}.cancel").write_text("x")
        chown_tree(req, STUDENTS[0])
        st = bob.wait_terminal(b, 60)
        assert st["state"] == "completed", st
        assert not (req / f"{b}.cancel").exists()     # consumed and ignored
    finally:
        bob.stop_all()
        alice.stop_all()
        shutil.rmtree(base, ignore_errors=True)


def test_round_robin_across_students_and_per_student_limits(student_python: Path) -> None:
    base = world_dir("ailabber-users-fair-")
    pipes = _setup(base, student_python, extra={"limits": {"max_running": 2}})
    alice, bob = (pipes[n] for n in STUDENTS)
    alice.start("remoted")
    for p in pipes.values():
        p.start("spoold")
    span = ('python3 -c "import time,os,json; t=time.time(); time.sleep(1.2); os.makedirs(\'output\', exist_ok=True); '
            'json.dump([t, time.time()], open(\'output/span\', \'w\'))"')
    try:
        # Alice queues three 1-GPU tasks, then Bob one: Bob must not wait for all of Alice's.
        a_ids = [alice.submit(owned_project(alice, f"a{i}", span, gpus=1)) for i in range(3)]
        b_id = bob.submit(owned_project(bob, "b0", span, gpus=1))
        spans = {}
        for p, t in [(alice, t) for t in a_ids] + [(bob, b_id)]:
            assert p.wait_terminal(t, 120)["state"] == "completed"
            dest = Path(pwd.getpwnam(p.client_user or "").pw_dir) / "fair" / t
            p.cli("fetch", t, "--dest", str(dest), check=True)
            spans[t] = json.loads((dest / "output" / "span").read_text())
        order = sorted(spans, key=lambda t: spans[t][0])
        assert order.index(b_id) <= 1, order          # served in the first or second slot
        # Per-student limit: two running at most, the third says why it waits.
        no_gpu = "sleep 4"
        held = [alice.submit(owned_project(alice, f"h{i}", no_gpu)) for i in range(3)]
        st = alice.wait_for(held[2], lambda s: s["reason"] == "user_limit", 60, "user_limit")
        assert st["state"] == "pending" and "limit is 2" in st["message"]
        for t in held[:2]:
            alice.wait_for(t, lambda s: s["state"] == "running", 30, "running")
        assert alice.status(held[2])["state"] == "pending"
        for t in held:
            assert alice.wait_terminal(t, 60)["state"] == "completed"
    finally:
        for p in pipes.values():
            p.stop_all()
        alice.stop_all()
        shutil.rmtree(base, ignore_errors=True)
