"""Processes a task leaves behind die with it (local scheduler, remoted as root).

The attacker's task starts three strays, each with a unique marker in its argv and each
recording its pid before it settles in for 900 s: ``setsid nohup`` (a session of its
own), a double fork (re-parented away from the command), and one that ignores SIGTERM.
Then the task exits 0, or is cancelled, or runs into its time limit.  Once the task shows
its final state, no process with a marker may exist after a short bounded wait (up to
5 s; no speed is asserted).  The pid files prove the strays really ran, so the test
cannot pass because they never started.

Catches: a wrapper that ends only its command's process tree (a ``setsid`` or
double-forked stray is re-parented out of it, to init, as soon as the wrapper exits
after a command that ended normally), a cancel or timeout that sends TERM and never
KILL (the TERM-ignoring stray), and a scheduler that calls a task finished while its
processes still run.
"""

from __future__ import annotations

import os
import shlex
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.integration.conftest import student_python  # noqa: F401
from tests.security.hostile_site import ATTACKER, Site, marker_processes, pw

VARIANTS = ("setsid", "double-fork", "ignores-term")


@pytest.fixture(scope="module")
def site(student_python: Path) -> Iterator[Site]:  # noqa: F811
    s = Site(student_python, "ailabber-sec-strays-", kill_grace=1.0)
    s.pids = s.base / "pids"  # type: ignore[attr-defined]
    s.pids.mkdir()  # type: ignore[attr-defined]
    os.chmod(s.pids, 0o777)  # type: ignore[attr-defined]
    s.start()
    try:
        yield s
    finally:
        s.stop()


def _stray_commands(marker: str, pids: Path) -> str:
    """Shell that starts the three strays and returns once each has written its pid."""
    def sleeper(variant: str, prelude: str = "") -> str:
        pid_file = pids / f"{marker}-{variant}"
        inner = f"{prelude}echo $$ > {pid_file}; exec -a {marker}-{variant} sleep 900"
        return shlex.quote(inner)

    ignore_term = 'trap "" TERM; '
    starts = [
        f"setsid nohup bash -c {sleeper('setsid')} </dev/null >/dev/null 2>&1 &",
        f"( ( setsid bash -c {sleeper('double-fork')} </dev/null >/dev/null 2>&1 & ) & )",
        f"setsid nohup bash -c {sleeper('ignores-term', ignore_term)} </dev/null >/dev/null 2>&1 &",
    ]
    waits = " && ".join(f"until [ -s {pids / f'{marker}-{v}'} ]; do sleep 0.05; done" for v in VARIANTS)
    return "\n".join([*starts, waits])


def _survivors(marker: str, timeout: float = 5.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in marker_processes(marker) if p.status() != psutil.STATUS_ZOMBIE]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


@pytest.mark.parametrize("ending", ["exits", "canceled", "timeout"])
def test_strays_do_not_outlive_their_task(site: Site, ending: str) -> None:
    marker = f"ailabber-sec-stray-{uuid.uuid4().hex}"
    pids: Path = site.pids  # type: ignore[attr-defined]
    start = _stray_commands(marker, pids)
    if ending == "exits":
        task_id = site.push(ATTACKER, [start + "\nexit 0"])
    elif ending == "canceled":
        task_id = site.push(ATTACKER, [start + "\nsleep 60"])
    else:
        task_id = site.push(ATTACKER, [start + "\nsleep 60"], time_limit="0:04")
    pid_files = [pids / f"{marker}-{v}" for v in VARIANTS]
    try:
        if ending == "canceled":
            deadline = time.monotonic() + 30
            while not all(p.exists() and p.read_text().strip() for p in pid_files):
                assert time.monotonic() < deadline, f"the strays never started\n{site.p.daemon_logs()[-3000:]}"
                time.sleep(0.05)
            req = site.area(ATTACKER) / "requests" / f"{task_id}.cancel"
            req.write_text("")
            os.chown(req, pw(ATTACKER).pw_uid, pw(ATTACKER).pw_gid)
        st = site.wait_terminal(ATTACKER, task_id, timeout=40)
        expected = {"exits": ("completed", None), "canceled": ("terminated", "canceled_by_user"),
                    "timeout": ("failed", "timeout")}[ending]
        assert (st["state"], st["reason"]) == expected, st
        started = [p.name[len(marker) + 1:] for p in pid_files if p.exists() and p.read_text().strip()]
        assert sorted(started) == sorted(VARIANTS), f"not every stray started: {started}"
        left = _survivors(marker)
        assert not left, (f"the task is {st['state']} but {len(left)} of its processes live on: "
                          + "; ".join(f"pid {p.pid} {' '.join(p.cmdline())!r} (uid {p.uids().real})"
                                      for p in left))
    finally:
        for p in marker_processes(marker):
            try:
                p.kill()
            except psutil.Error:
                pass
