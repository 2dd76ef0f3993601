"""spoold with its key pinned to the gate: it pulls on notice, not on a timer; it notices a
killed watch channel and reopens it; a notice lost while the channel is stuck is caught by
the slow rescan (``remote_rescan_interval``).  With plain rrsync it says once that it
polls instead."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from testbed.pipeline import Pipeline, owned_project, wait_until
from tests.integration.conftest import STUDENTS
from tests.integration.test_ssh import SshSetup, ssh_site

ALICE = STUDENTS[0]


@pytest.fixture
def gated(pytestconfig: pytest.Config, student_python: Path) -> Iterator[SshSetup]:
    with ssh_site(pytestconfig, student_python, "ailabber-gated-", gate=student_python.parent / "ailabber-gate") as s:
        yield s


def _configure(p: Pipeline, **settings: Any) -> None:
    cfg = yaml.safe_load(p.spoold_cfg.read_text())
    cfg.update(settings)
    p.spoold_cfg.write_text(yaml.safe_dump(cfg))


def _spoold_log(p: Pipeline) -> str:
    return "\n".join(f.read_text(errors="replace") for f in sorted(p.logdir.glob("spoold-*.log")))


def _watching(proc: psutil.Process) -> bool:
    """A gate running ``watch`` (every rsync session also starts as the gate, then execs rrsync)."""
    try:
        return proc.environ().get("SSH_ORIGINAL_COMMAND") == "watch"
    except psutil.Error:
        return False


def _gates(area: Path) -> list[psutil.Process]:
    """The gate processes watching ``area`` on the login node (``watch``, not an rsync session)."""
    out = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if cmd and cmd[-1] == str(area) and any("ailabber-gate" in c for c in cmd) and _watching(proc):
            out.append(proc)
    return out


def test_a_quiet_task_costs_no_pull_and_its_end_comes_on_notice(gated: SshSetup) -> None:
    alice = gated.pipes[ALICE]
    alice.start("remoted")
    alice.start("spoold")
    task_id = alice.submit(owned_project(alice, "quiet", "sleep 20; echo done"))
    alice.wait_for(task_id, lambda s: s["state"] == "running", 60, "running")
    wait_until(lambda: _gates(gated.root / "users" / ALICE), "the watch channel")
    assert "polling instead" not in _spoold_log(alice)
    # The start's changes are pulled; then, while the job sleeps, nothing is: spoold's
    # poll_interval here is 0.2 s, so polling would pull a dozen times in this while.
    quiet = wait_until(lambda: _unchanged_for(alice, 2.0), "the pulls of the start to end")
    time.sleep(3.0)
    assert _pulls(alice) - quiet <= 1, _spoold_log(alice)[-3000:]
    st = alice.wait_terminal(task_id, 60)
    assert st["state"] == "completed", (st, alice.daemon_logs())
    assert "done" in alice.cli("logs", task_id, check=True).stdout
    assert _doctor(alice)["change notices"]["ok"]


def _doctor(p: Pipeline) -> dict[str, Any]:
    r = p.cli("doctor", "--json")
    return {c["name"]: c for c in json.loads(r.stdout)}


def _pulls(p: Pipeline) -> int:
    """The rsync runs spoold has logged so far."""
    return _spoold_log(p).count(" rsync: ")


def _unchanged_for(p: Pipeline, seconds: float) -> int | None:
    """The count of rsync runs if it stays the same for ``seconds``, else None."""
    before = _pulls(p)
    time.sleep(seconds)
    return before if _pulls(p) == before else None


def test_a_killed_channel_is_reopened_and_a_lost_notice_is_caught_by_the_rescan(gated: SshSetup) -> None:
    alice = gated.pipes[ALICE]
    area = gated.root / "users" / ALICE
    # A stuck channel is only given up after 3 x connect_timeout (90 s) without an answer:
    # what arrives sooner came from the slow rescan.
    _configure(alice, remote_rescan_interval=3, connect_timeout=30)
    alice.start("remoted")
    alice.start("spoold")
    long = alice.submit(owned_project(alice, "long", "sleep 600"))
    alice.wait_for(long, lambda s: s["state"] == "running", 60, "running")
    first = wait_until(lambda: _gates(area), "the watch channel")[0]
    first.kill()
    reopened = wait_until(lambda: [g for g in _gates(area) if g.pid != first.pid], "the channel to be reopened")
    assert "watch channel ended" in _spoold_log(alice)
    # The reopened channel works: a short task's end comes home.
    short = alice.submit(owned_project(alice, "short", "sleep 8"))
    alice.wait_for(short, lambda s: s["state"] == "running", 60, "running")
    stuck = reopened[0]
    stuck.send_signal(signal.SIGSTOP)              # alive, but it tells nothing any more
    try:
        st = alice.wait_terminal(short, 60)
        assert st["state"] == "completed", (st, alice.daemon_logs())
        assert "no answer" not in _spoold_log(alice)
    finally:
        if stuck.is_running():
            stuck.send_signal(signal.SIGCONT)
    alice.cli("cancel", long, check=True)
    alice.wait_terminal(long, 60)


def test_with_plain_rrsync_spoold_says_once_that_it_polls(pytestconfig: pytest.Config,
                                                          student_python: Path) -> None:
    with ssh_site(pytestconfig, student_python, "ailabber-rrsync-") as setup:
        alice = setup.pipes[ALICE]
        alice.start("remoted")
        alice.start("spoold")
        task_id = alice.submit(owned_project(alice, "polled", "echo polled"))
        assert alice.wait_terminal(task_id, 60)["state"] == "completed", alice.daemon_logs()
        assert _spoold_log(alice).count("polling instead") == 1
        notices = _doctor(alice)["change notices"]
        assert not notices["ok"] and notices["warning"] and "polls" in notices["detail"], notices
        assert os.path.exists(alice.home / "spool" / "limits.json")
