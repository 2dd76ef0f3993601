"""``ailabber web`` in a real browser: the real daemons run two tasks whose jobs write
metrics through ``$AILABBER_METRICS``; headless Chromium shows what a student sees: a row
per task, a chart per series with a point per line written, both runs overlaid, the log,
the page following a task to its end by itself, hostile text shown as text, and the
refusals (no token: 403; POST: 405; another user's spool: refused at start)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from testbed.browser import Served
from testbed.pipeline import Pipeline, wait_until
from tests.conftest import require
from tests.integration.web_browser import Watched, browser, shoot, watched  # noqa: F401

HOSTILE_SERIES = "<img src=x onerror=alert(1)>"
HOSTILE_LOG = '<script>alert("log")</script>'

#: train.sh of the finished run: a hostile log line, forty lines of loss and accuracy (a
#: curve worth looking at) and one of a series with a hostile name.
CURVE = ('awk \'BEGIN { for (i = 1; i <= %(n)d; i++) printf "{\\"step\\": %%d, \\"loss\\": %%.4f, '
         '\\"accuracy\\": %%.4f}\\n", i + %(first)d, %(scale)s * exp(-(i + %(first)d) / %(tau)s) + 0.15 '
         '+ 0.03 * sin(i), 1 - 0.9 * exp(-(i + %(first)d) / %(tau)s) }\' >> "$AILABBER_METRICS"')
FINISHED = "\n".join([
    f"echo '{HOSTILE_LOG}'",
    CURVE % {"n": 40, "first": 0, "scale": "2.3", "tau": "10"},
    f"echo '{{\"step\": 1, \"{HOSTILE_SERIES}\": 1}}' >> \"$AILABBER_METRICS\"",
]) + "\n"
#: train.sh of the running one: twenty lines, then it waits for the test's GO file, then
#: twenty more and a last line.
RUNNING = "\n".join([
    CURVE % {"n": 20, "first": 0, "scale": "2.0", "tau": "7"},
    'echo "epoch 1 done"',
    "while [ ! -e GO_FILE ]; do sleep 0.1; done",
    CURVE % {"n": 20, "first": 20, "scale": "2.0", "tau": "7"},
    'echo "all epochs done"',
]) + "\n"


def _submit(p: Pipeline, script: str, name: str, lr: str) -> str:
    """A project whose command runs ``script`` (train.sh): the list shows a plain command."""
    proj = p.project([f"bash train.sh --lr {lr}"], files={"train.sh": script}, time_limit="5:00", name=name)
    r = p.cli("submit", "--json", "--name", name, cwd=proj, check=True)
    return str(json.loads(r.stdout)["id"])


def _loss_points(p: Pipeline, task_id: str) -> int:
    m = json.loads(p.cli("metrics", task_id, "--json", check=True).stdout)
    return int(m["series"]["loss"]["count"]) if "loss" in m["series"] else 0


def _dashboard(p: Pipeline, log: Path) -> Served:
    return Served([sys.executable, "-m", "ailabber", "web", "--refresh", "1"], p.env(), log)


def _points(locator: Any) -> list[int]:
    return [len((locator.nth(i).get_attribute("points") or "").split()) for i in range(locator.count())]


def test_the_student_sees_tasks_charts_logs_and_the_page_follows_a_task(
        pipeline: Pipeline, tmp_path: Path, browser: Any, watched: Watched) -> None:  # noqa: F811
    from playwright.sync_api import expect

    go = tmp_path / "GO"
    served: Served | None = None
    try:
        done = _submit(pipeline, FINISHED, "lr-0.1", "0.1")
        live = _submit(pipeline, RUNNING.replace("GO_FILE", str(go)), "lr-0.01", "0.01")
        assert pipeline.wait_terminal(done)["state"] == "completed"
        pipeline.wait_for(live, lambda s: s["state"] == "running", 90, "the second task to run")
        wait_until(lambda: _loss_points(pipeline, live) == 20, "the running task's first points to come back", 90)

        served = _dashboard(pipeline, tmp_path / "web.log")
        url = served.wait_url()
        assert served.lines[0].startswith("ailabber web: ") and "on 127.0.0.1 only" in served.lines[0]
        page = watched.page
        assert page.goto(url).status == 200

        # The list: a row per task, newest first, names, states and commands.
        rows = page.locator("table.tasks tbody tr")
        expect(rows).to_have_count(2)
        assert [rows.nth(i).get_attribute("data-id") for i in range(2)] == [live, done]
        expect(page.locator(f'tr[data-id="{done}"]')).to_contain_text("lr-0.1")
        expect(page.locator(f'tr[data-id="{done}"] .state')).to_have_text("completed")
        expect(page.locator(f'tr[data-id="{live}"] .state')).to_have_text("running")
        assert page.locator(f'tr[data-id="{done}"] td').nth(7).inner_text() == "bash train.sh --lr 0.1"
        shoot(page, "student-tasks.png")

        # One task: a chart per series, a point per line written, hostile text as text.
        page.click(f'tr[data-id="{done}"] a')
        expect(page.locator("h1")).to_have_text(f"lr-0.1 ({done})")
        assert _points(page.locator('figure[data-series="loss"] polyline')) == [40]
        assert page.locator("figure.chart figcaption").all_inner_texts() == ["loss", "accuracy", HOSTILE_SERIES]
        assert _points(page.locator("figure.chart polyline")) == [40, 40, 1]
        expect(page.locator("#log")).to_contain_text(HOSTILE_LOG)
        expect(page.locator("#timeline tbody tr").last).to_contain_text("completed")
        assert page.locator("img").count() == 0 and page.locator("script").count() == 1
        assert watched.dialogs == []

        # Two runs compared: the ticked tasks overlaid, one line each.
        page.goto(served.base + "/")
        for task_id in (done, live):
            page.check(f'input[name="id"][value="{task_id}"]')
        page.click("form button")
        page.wait_for_url(re.compile(r"/compare\?id="))
        loss = page.locator('figure[data-series="loss"] polyline')
        assert sorted(_points(loss)) == [20, 40]
        assert sorted(loss.nth(i).get_attribute("data-label") or "" for i in range(2)) == \
            [f"lr-0.01 ({live[-6:]})", f"lr-0.1 ({done[-6:]})"]
        shoot(page, "student-compare.png")

        # The running task's page follows it to its end by itself: no reload, new state,
        # the fourth point and the log's last line.
        page.goto(f"{served.base}/task/{live}")
        expect(page.locator("#status .state")).to_have_text("running")
        expect(page.locator("#log")).to_contain_text("epoch 1 done")
        shoot(page, "student-task.png")
        page.evaluate("window.stayed = 'no reload'")
        tmp = tmp_path / ".GO.tmp"
        tmp.touch()
        os.replace(tmp, go)
        expect(page.locator("#status .state")).to_have_text("completed", timeout=120_000)
        expect(page.locator("#log")).to_contain_text("all epochs done", timeout=30_000)
        expect(page.locator('figure[data-series="loss"] polyline')).to_have_attribute("data-points", "40")
        assert page.evaluate("window.stayed") == "no reload"

        # Refusals: a POST from the page itself (with its cookie), a browser without the token.
        assert page.evaluate("fetch('/', {method: 'POST'}).then(r => r.status)") == 405
        assert watched.csp_violations() == [] and watched.dialogs == []
        stranger = browser.new_context()
        try:
            other = stranger.new_page()
            for attempt in (served.base + "/", served.base + f"/task/{done}", url[:-4] + "AAAA"):
                answer = other.goto(attempt)
                assert answer.status == 403, attempt
                assert done not in other.content() and "lr-0.1" not in other.content()
        finally:
            stranger.close()
    finally:
        go.touch()              # a job still waiting ends (a failed test leaves no job behind)
        if served is not None:
            served.stop()


def test_a_spool_of_another_user_is_refused(pytestconfig: pytest.Config, tmp_path: Path) -> None:
    """Root may serve only its own spool: the student's spool, pointed at by root's
    $AILABBER_HOME, is refused before any port is opened."""
    from testbed.unix_users import can_make_users, chown_tree, ensure_user

    ok, why = can_make_users()
    require(pytestconfig, ok, why)
    ensure_user("ailabber-alice")
    p = Pipeline(tmp_path)
    (p.home / "spool" / "new").mkdir(parents=True)
    chown_tree(p.home / "spool", "ailabber-alice")
    r = p.cli("web")
    assert r.returncode == 77, r
    assert r.stdout == ""
    assert r.stderr.strip() == (f"ailabber: {p.home / 'spool'} belongs to ailabber-alice, not to root: "
                                "ailabber web serves only the spool of the user who starts it")


def test_no_spool_and_a_taken_port_are_one_line_each(tmp_path: Path) -> None:
    import socket

    p = Pipeline(tmp_path)
    r = p.cli("web")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip() == (f"ailabber: no spool at {p.home / 'spool'} yet: it is made by the first "
                                "ailabber submit (or by spoold's start)")
    p.submit(p.project(["true"]))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = p.cli("web", "--port", str(port))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip() == f"ailabber: --port: cannot listen on 127.0.0.1:{port}: Address already in use"
    r = p.cli("web", "--refresh", "0.1")
    assert r.returncode == 2
    assert r.stderr.strip() == "ailabber: --refresh: must be a number of seconds >= 0.5, got 0.1"
