"""``ailabber admin web`` in a real browser: two real students on one remote root, remoted
as root with the local scheduler, one GPU and one running task per student.  Headless
Chromium shows what the staff sees: remoted alive, the queue in fair order with why each
task waits, the job holding the GPU, each student's use this week, the failure with its
reason, and the page following the course by itself; the refusals (no token: 403; POST:
405; a student starting the dashboard: refused)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

from testbed.browser import Served
from testbed.pipeline import Pipeline, owned_project, students_on_one_root
from testbed.unix_users import world_dir
from tests.integration.conftest import STUDENTS
from tests.integration.web_browser import Watched, browser, shoot, watched  # noqa: F401

ALICE, BOB = STUDENTS


def _submit(p: Pipeline, name: str, cmd: str, gpus: int) -> str:
    proj = owned_project(p, name, cmd, gpus=gpus)
    r = p.cli("submit", "--json", "--name", name, cwd=proj, check=True)
    return str(json.loads(r.stdout)["id"])


def _ids(page: Any, section: str) -> list[str]:
    rows = page.locator(f"#{section} tbody tr")
    return [rows.nth(i).get_attribute("data-id") or "" for i in range(rows.count())]


def test_the_staff_sees_the_course_and_the_page_follows_it(
        student_python: Path, browser: Any, watched: Watched) -> None:  # noqa: F811
    from playwright.sync_api import expect

    base = world_dir("ailabber-web-staff-")
    pipes = students_on_one_root(base, STUDENTS, student_python, extra={"limits": {"max_running": 1}}, gpus=1)
    alice, bob = pipes[ALICE], pipes[BOB]
    gate = base / "gate"
    wait = f"while [ ! -e {gate} ]; do sleep 0.1; done"
    served: Served | None = None
    alice.start("remoted")
    for p in pipes.values():
        p.start("spoold")
    try:
        a1 = _submit(alice, "resnet-a", wait, gpus=1)
        alice.wait_for(a1, lambda s: s["state"] == "running", 90, "alice's first task to hold the GPU")
        a2 = _submit(alice, "resnet-b", wait, gpus=1)
        b1 = _submit(bob, "bert-base", wait, gpus=1)
        b2 = _submit(bob, "typo", "exit 3", gpus=0)
        assert bob.wait_terminal(b2, 90)["reason"] == "nonzero_exit"
        bob.wait_for(b1, lambda s: s["reason"] == "waiting_for_gpu", 90, "bob's task to wait for the GPU")
        alice.wait_for(a2, lambda s: s["reason"] == "user_limit", 90, "alice's second task to wait for her limit")

        served = Served([sys.executable, "-m", "ailabber", "admin", "--remoted-config", str(alice.remoted_cfg),
                         "web", "--refresh", "1"], alice.env(), base / "admin-web.log")
        url = served.wait_url()
        assert served.lines[0].startswith(f"ailabber admin web: the course on {alice.root}, for root, "
                                          "on 127.0.0.1 only")
        assert served.lines[2].startswith(f"from your own machine: ssh -N -L {url.split(':')[2].split('/')[0]}:")
        page = watched.page
        assert page.goto(url).status == 200

        expect(page.locator("#health .health")).to_contain_text("running (pid")
        # Fair order: bob runs nothing, alice one task, so bob's task comes first.
        assert _ids(page, "queue") == [b1, a2]
        queue = page.locator("#queue tbody tr")
        assert queue.nth(0).locator("td").first.inner_text() == "1"
        expect(queue.nth(0)).to_contain_text("waiting for a free GPU")
        expect(queue.nth(1)).to_contain_text("held back: you reached your per-user limit")
        expect(queue.nth(1)).to_contain_text("the limit is 1")
        assert _ids(page, "running") == [a1]
        cells = page.locator("#running tbody tr td")
        assert [cells.nth(i).inner_text() for i in range(3)] == [socket.gethostname(), "0", ALICE]
        bars = page.locator("#usage g.bar")
        assert sorted(bars.nth(i).get_attribute("data-label") or "" for i in range(bars.count())) == [ALICE, BOB]
        assert float(page.locator(f'#usage g.bar[data-label="{ALICE}"]').get_attribute("data-value") or 0) > 0
        assert _ids(page, "failures") == [b2]
        expect(page.locator("#failures tbody tr")).to_contain_text("nonzero_exit")
        shoot(page, "staff-dashboard.png")

        # The course moves on: the page follows without a reload.
        page.evaluate("window.stayed = 'no reload'")
        tmp = base / ".gate.tmp"
        tmp.touch()
        os.replace(tmp, gate)
        for p, t in ((alice, a1), (alice, a2), (bob, b1)):
            assert p.wait_terminal(t, 120)["state"] == "completed"
        expect(page.locator("#queue .empty")).to_have_text("no task is waiting", timeout=30_000)
        expect(page.locator("#running .empty")).to_have_text("no job is running", timeout=30_000)
        assert page.evaluate("window.stayed") == "no reload"

        assert page.evaluate("fetch('/', {method: 'POST'}).then(r => r.status)") == 405
        assert watched.csp_violations() == [] and watched.dialogs == []
        stranger = browser.new_context()
        try:
            answer = stranger.new_page().goto(served.base + "/")
            assert answer.status == 403 and ALICE.encode() not in answer.body()
        finally:
            stranger.close()

        # A student may not start it: refused before anything is read or a port is opened.
        r = bob.cli("admin", "--remoted-config", str(alice.remoted_cfg), "web")
        assert r.returncode == 77 and "open http" not in r.stdout, r
        assert r.stderr.strip() == (f"ailabber: {BOB} may not run admin commands: only root may, since "
                                    f"{alice.remoted_cfg} names no admin_group")
    finally:
        gate.touch()            # jobs still waiting end (a failed test leaves no job behind)
        if served is not None:
            served.stop()
        for p in pipes.values():
            p.stop_all()
        alice.stop_all()
        shutil.rmtree(base, ignore_errors=True)
