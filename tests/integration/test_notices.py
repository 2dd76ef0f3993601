"""When a task ends spoold tells the student: the ``on_finish`` hook of spoold.yaml (at most
once per task, across restarts and crashes) and a desktop notification on a real session
bus.  Real CLI and daemons (local scheduler)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.pipeline import Pipeline
from tests.conftest import require

HOOK = textwrap.dedent("""\
    import json, os, sys
    status = json.load(sys.stdin)
    line = {"stdin": status, "task": os.environ["AILABBER_TASK_ID"], "state": os.environ["AILABBER_STATE"]}
    with open(sys.argv[1], "a") as fh:
        fh.write(json.dumps(line) + "\\n")
    """)


def _hooked(tmp_path: Path, **extra: Any) -> tuple[Pipeline, Path]:
    """A pipeline whose on_finish hook appends one line per run to the returned file."""
    script = tmp_path / "hook.py"
    script.write_text(HOOK)
    runs = tmp_path / "runs.jsonl"
    p = Pipeline(tmp_path / "p", spoold_extra={"on_finish": [sys.executable, str(script), str(runs)], **extra})
    return p, runs


def _runs(runs: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in runs.read_text().splitlines()] if runs.exists() else []


def _notified(p: Pipeline, task_id: str, timeout: float = 60) -> dict[str, Any]:
    """The task's notice record once it has an outcome."""
    st = p.wait_for(task_id, lambda s: "finished_at" in s.get("notification", {}), timeout, "the notice sent")
    return dict(st["notification"])


def test_on_finish_runs_once_with_the_status_and_not_again_after_a_restart(tmp_path: Path) -> None:
    p, runs = _hooked(tmp_path)
    p.start_all()
    try:
        first = p.submit(p.project(["true"]))
        assert p.wait_terminal(first)["state"] == "completed"
        record = _notified(p, first)
        assert record["hook"]["exit_code"] == 0 and "desktop" not in record     # no session bus: no desktop
        [line] = _runs(runs)
        assert (line["task"], line["state"]) == (first, "completed")
        assert line["stdin"]["id"] == first and line["stdin"]["state"] == "completed"
        assert line["stdin"]["exit_code"] == 0

        p.kill("spoold", signal.SIGTERM)
        p.start("spoold")
        second = p.submit(p.project(["exit 3"]))
        _notified(p, second)       # the restarted spoold has passed over the first task's directory
    finally:
        p.stop_all()
    assert [(r["task"], r["state"]) for r in _runs(runs)] == [(first, "completed"), (second, "failed")]
    shown = p.cli("status", first, check=True).stdout
    assert "on_finish" in shown and "exit code 0" in shown, shown


def _restart_spoold_with(p: Pipeline, **settings: Any) -> None:
    p.kill("spoold", signal.SIGTERM)
    data = yaml.safe_load(p.spoold_cfg.read_text())
    p.spoold_cfg.write_text(yaml.safe_dump({**data, **settings}))
    p.start("spoold")


def test_status_shows_a_hook_failing_running_and_stopped(tmp_path: Path) -> None:
    p = Pipeline(tmp_path, spoold_extra={"on_finish": "/bin/sh -c 'echo oops >&2; exit 3'"})
    p.start_all()
    try:
        task = p.submit(p.project(["true"]))
        record = _notified(p, task)
        assert record["hook"]["exit_code"] == 3, record
        shown = p.cli("status", task, check=True).stdout
        line = next(ln for ln in shown.splitlines() if ln.startswith("on_finish"))
        assert "failed" in line and "exit code 3" in line, shown
        assert (p.home / "spool" / "done" / task / "on_finish.log").read_text() == "oops\n"

        release = tmp_path / "release"
        _restart_spoold_with(p, on_finish=["/bin/sh", "-c", f"until [ -e {release} ]; do sleep 0.1; done"])
        held = p.submit(p.project(["true"]))
        st = p.wait_for(held, lambda s: "started_at" in s.get("notification", {}), 60, "the notice started")
        assert "finished_at" not in st["notification"]
        assert "being sent since" in p.cli("status", held, check=True).stdout
        release.touch()
        assert _notified(p, held)["hook"]["exit_code"] == 0

        _restart_spoold_with(p, on_finish="sleep 60", on_finish_timeout=1)
        slow = p.submit(p.project(["true"]))
        record = _notified(p, slow)
        assert record["hook"]["timed_out"] is True, record
        assert "still running after 1 s" in p.cli("status", slow, check=True).stdout

        _restart_spoold_with(p, on_finish="no-such-hook-program --now")     # the CLI still works
        missing = p.submit(p.project(["true"]))
        record = _notified(p, missing)
        assert "no-such-hook-program" in record["hook"]["error"], record
        assert "no-such-hook-program" in p.cli("status", missing, check=True).stdout
    finally:
        p.stop_all()


@pytest.mark.parametrize("point", ["spoold:notice_queued", "spoold:notice_recorded"])
def test_a_crash_never_sends_a_notice_twice(tmp_path: Path, point: str) -> None:
    """Killed after queueing (before the move to done/): sent once after the restart.
    Killed after the record is written: never sent, and status says why."""
    p, runs = _hooked(tmp_path)
    p.start("remoted")
    crashing = p.start("spoold", AILABBER_CRASH_AT=point)
    try:
        task = p.submit(p.project(["true"]))
        assert crashing.wait(60) == -9, f"spoold did not reach {point}\n{p.daemon_logs()}"
        p.start("spoold")
        p.wait_terminal(task)
        queued = p.home / "spool" / "notify" / task
        deadline = time.monotonic() + 60
        while queued.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not queued.exists(), p.daemon_logs()
        if point == "spoold:notice_queued":
            assert _notified(p, task)["hook"]["exit_code"] == 0
            assert [r["task"] for r in _runs(runs)] == [task]
        else:
            shown = p.cli("status", task, check=True).stdout
            assert "spoold stopped before it ended (not run again)" in shown, shown
            assert _runs(runs) == []
    finally:
        p.stop_all()


@pytest.fixture
def session_bus(pytestconfig: pytest.Config, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real D-Bus session bus (dbus-daemon) and dbus-monitor recording its Notify calls:
    (bus address, monitor output)."""
    tools = ("dbus-daemon", "dbus-monitor", "gdbus")
    missing = [t for t in tools if shutil.which(t) is None]
    require(pytestconfig, not missing, f"{', '.join(missing)} (Debian: dbus-daemon dbus-bin libglib2.0-bin)")
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert bus.stdout is not None
    address = bus.stdout.readline().strip()
    out = tmp_path / "monitor.txt"
    with open(out, "w") as fh:
        monitor = subprocess.Popen(["dbus-monitor", "--address", address,
                                    "interface='org.freedesktop.Notifications'"], stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "NameLost" not in out.read_text() and time.monotonic() < deadline:   # it became a monitor
            time.sleep(0.1)
        yield address, out
    finally:
        for proc in (monitor, bus):
            proc.terminate()
            proc.wait(10)


def test_a_desktop_notification_reaches_the_session_bus(tmp_path: Path, session_bus: tuple[str, Path]) -> None:
    address, monitor = session_bus
    p = Pipeline(tmp_path / "p")
    p.start("remoted")
    p.start("spoold", DBUS_SESSION_BUS_ADDRESS=address)     # desktop_notifications: auto
    try:
        task = p.submit(p.project(["exit 4"]))
        record = _notified(p, task)
        assert "hook" not in record and record["desktop"]["via"] in ("gdbus", "notify-send"), record
        seen = monitor.read_text()
        assert "member=Notify" in seen, seen
        assert f'string "ailabber: task {task} failed"' in seen, seen
        assert "exit code 4" in seen, seen
        assert any(ln.startswith("desktop note") for ln in p.cli("status", task, check=True).stdout.splitlines())
    finally:
        p.stop_all()
