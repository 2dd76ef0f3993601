"""What a student sees while a task is on its way, with the real CLI and daemons (local
scheduler): upload progress, the place in the queue and the start bound, the job limits
and current use in ``whoami``, limits checked at ``submit``, and ``wait``'s lines."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from ailabber.model.task import parse_iso
from testbed.pipeline import Pipeline, wait_until


def _gate(base: Path) -> tuple[Path, str]:
    """A file the test creates to let jobs finish, and the command that waits for it."""
    gate = base / "gate"
    return gate, f"while [ ! -e {gate} ]; do sleep 0.1; done"


def test_a_throttled_upload_shows_bytes_rate_and_time_left(tmp_path: Path) -> None:
    """At 128 KiB/s a 4 MB upload takes half a minute; spoold publishes its progress about
    once a second, and status --json, status and list show it while it lasts."""
    p = Pipeline(tmp_path, spoold_extra={"upload_bwlimit": 128})
    p.start_all()
    try:
        proj = p.project(["true"], files={"notes.txt": "x\n"})
        (proj / "data.bin").write_bytes(os.urandom(4_000_000))
        task_id = p.submit(proj)
        first = p.wait_for(task_id, lambda s: s["reason"] == "uploading" and s.get("upload_rate")
                           and 0 < s["upload_bytes_sent"] < s["upload_bytes_total"], 90, "upload progress with a rate")
        assert first["upload_bytes_total"] > 4_000_000 and first["upload_eta_s"] > 0 and first["upload_progress_at"]

        def while_uploading(args: tuple[str, ...], pattern: str) -> str:
            def probe() -> str | None:
                out = p.cli(*args, check=True).stdout
                if re.search(pattern, out):
                    return out
                assert p.status(task_id)["reason"] == "uploading", f"the upload ended before {args} showed it"
                return None
            return str(wait_until(probe, f"{args} to show the upload", 90))

        while_uploading(("status", task_id), r"upload +[\d.]+ [KM]?B of [\d.]+ MB \(\d+%\), [\d.]+ KB/s, "
                                             r"at most \d+(s|m\d\ds) left")
        while_uploading(("list",), r"uploading \(\d+%, [\d.]+ KB/s, \d+(s|m\d\ds) left\)")
        later = p.wait_for(task_id, lambda s: s["reason"] != "uploading"
                           or s["upload_bytes_sent"] > first["upload_bytes_sent"], 90, "the figure to grow")
        assert later["upload_bytes_sent"] > first["upload_bytes_sent"]
        final = p.wait_terminal(task_id, 120)
        assert final["state"] == "completed"
        assert final["upload_bytes_sent"] == final["upload_bytes_total"] and final["upload_eta_s"] == 0
    finally:
        p.stop_all()


def test_tasks_beyond_the_gpus_show_their_place_and_a_start_bound(tmp_path: Path) -> None:
    gate, wait = _gate(tmp_path)
    p = Pipeline(tmp_path, gpus=1)
    p.start_all()
    try:
        ids = [p.submit(p.project([wait], gpus=1, time_limit="5:00")) for _ in range(3)]
        first = p.wait_for(ids[0], lambda s: s["state"] == "running", 60, "the first task to run")
        started = parse_iso(first["started_at"])
        assert started is not None
        # Both accepted: the queue is whole (a task accepted alone first sees a queue of one).
        waiting = [p.wait_for(t, lambda s: s.get("queue_length") == 2, 60, "a place in a queue of two")
                   for t in ids[1:]]
        assert [(s["queue_position"], s["queue_ahead"], s["queue_length"]) for s in waiting] == [(1, 0, 2), (2, 1, 2)]
        for n, s in enumerate(waiting, start=1):
            bound = parse_iso(s["start_estimate"])
            assert s["start_estimate_kind"] == "upper_bound" and bound is not None
            # The first task's time limit (and kill grace), then one more per task ahead.
            assert abs(bound - (started + n * (300 + 2))) < 2, (s, started)
        human = p.cli("status", ids[2], check=True).stdout
        assert "queue        2nd of 2 in the course queue (1 ahead)" in human
        assert "at the latest, if every task ahead runs to its time limit" in human
        assert first.get("queue_position") is None          # a running task has no place in the queue
        gate.touch()
        for t in ids:
            assert p.wait_terminal(t, 90)["state"] == "completed"
        assert "queue_position" not in p.status(ids[2])
    finally:
        p.stop_all()


def _published_limits(p: Pipeline) -> Path:
    """Start remoted first, with the student's area made by the admin, so that spoold's
    first pull already finds limits.json."""
    import pwd

    area = p.root / "users" / pwd.getpwuid(os.getuid()).pw_name
    area.mkdir(parents=True)
    p.start("remoted")
    wait_until(lambda: (area / "limits.json").exists(), "remoted to publish limits.json", 90)
    p.start("spoold")
    local = p.home / "spool" / "limits.json"
    wait_until(local.exists, "spoold to pull limits.json", 90)
    return local


def test_submit_refuses_what_the_cluster_could_never_run(tmp_path: Path) -> None:
    p = Pipeline(tmp_path, gpus=1, remoted_extra={"limits": {"max_time_limit": "1:00:00", "max_memory": "2G"}})
    try:
        limits = json.loads(_published_limits(p).read_text())
        assert (limits["max_gpus_per_task"], limits["max_time_limit_s"], limits["max_memory_mb"]) == (1, 3600, 2048)
        for kw, line in (({"gpus": 2}, "resources.gpus: asks for 2 GPU(s); the cluster allows at most 1 per task"),
                         ({"time_limit": "2:00:00"},
                          "resources.time_limit: asks for 2:00:00; the cluster allows at most 1:00:00 per task"),
                         ({"memory": "4G"}, "resources.memory: asks for 4G; the cluster allows at most 2G per task")):
            r = p.cli("submit", cwd=p.project(["true"], **kw))
            assert r.returncode == 2, r.stdout + r.stderr
            assert r.stderr == f"ailabber: task_config.toml: {line}\n"
        assert p.cli("list", check=True).stdout.strip() == "no tasks"
        ok = p.submit(p.project(["true"], gpus=1, time_limit="1:00:00", memory="2G"))
        assert p.wait_terminal(ok)["state"] == "completed"
    finally:
        p.stop_all()


def test_without_limits_json_submit_proceeds_and_remoted_enforces(tmp_path: Path) -> None:
    p = Pipeline(tmp_path, remoted_extra={"limits": {"max_time_limit": "30:00"}})
    task_id = p.submit(p.project(["true"], time_limit="45:00"))    # daemons down: no limits.json yet
    p.start_all()
    try:
        st = p.wait_terminal(task_id)
        assert (st["state"], st["reason"]) == ("failed", "unsatisfiable")
        assert st["message"] == "resources.time_limit: asks for 0:45:00; the cluster allows at most 0:30:00 per task"
    finally:
        p.stop_all()


def test_whoami_shows_the_job_limits_and_what_is_in_use(tmp_path: Path) -> None:
    gate, wait = _gate(tmp_path)
    p = Pipeline(tmp_path, gpus=1, remoted_extra={"limits": {"max_time_limit": "1:00:00", "max_memory": "2G",
                                                             "max_running": 3, "max_queued": 5}})
    try:
        _published_limits(p)
        ids = [p.submit(p.project([wait], gpus=1)) for _ in range(2)]
        p.wait_for(ids[0], lambda s: s["state"] == "running", 60, "the first task to run")

        def in_use() -> dict[str, Any] | None:
            who = json.loads(p.cli("whoami", "--json", check=True).stdout)["limits"]
            return who if (who["running"], who["queued"]) == (1, 1) else None

        limits = wait_until(in_use, "whoami to count one running and one queued task", 90)
        assert (limits["gpus_in_use"], limits["pending"], limits["launched"]) == (1, 1, 1)
        assert (limits["max_running"], limits["max_queued"], limits["max_gpus"]) == (3, 5, None)
        human = p.cli("whoami", check=True).stdout
        assert re.search(r"task_limits +at most 1 GPU\(s\), time limit 1:00:00, 2G of memory\n", human), human
        assert re.search(r"user_limits +at most 3 task\(s\) handed to the scheduler, 5 task\(s\) waiting in "
                         r"the queue at once\n", human), human
        assert re.search(r"in_use +1 running, 1 waiting, 1 GPU\(s\) in use \(1 task\(s\) handed to the scheduler, "
                         r"1 in remoted's queue\)", human), human
        assert re.search(r"disk_quota +[\d.]+ [KM]?B used of ", human), human
        gate.touch()
        for t in ids:
            p.wait_terminal(t)
    finally:
        p.stop_all()


def test_wait_prints_plain_lines_on_each_change_and_where_the_results_are(tmp_path: Path) -> None:
    """Output that is no terminal: one line per state or reason, then the end, then the
    results directory (``submit --wait`` the same, after its own lines)."""
    gate, wait = _gate(tmp_path)
    p = Pipeline(tmp_path, gpus=1)
    p.start_all()
    try:
        holder = p.submit(p.project([wait], gpus=1))
        p.wait_for(holder, lambda s: s["state"] == "running", 60, "the first task to run")
        proj = p.project(["sleep 3; mkdir -p output; echo 1 > output/r"], gpus=1, results=["output"])
        import subprocess
        import sys

        waiter = subprocess.Popen([sys.executable, "-m", "ailabber", "submit", "--wait"], cwd=proj, env=p.env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert waiter.stdout is not None
        lines = [waiter.stdout.readline()]                    # "submitted <id> ..."
        task_id = lines[0].split()[1]
        lines.append(waiter.stdout.readline())                # "  status: ..."
        while "in the course queue" not in lines[-1]:
            lines.append(waiter.stdout.readline())
            assert lines[-1], (lines, p.daemon_logs())
        gate.touch()
        out, err = waiter.communicate(timeout=120)
        lines += out.splitlines(keepends=True)
        assert waiter.returncode == 0, (lines, err)
        changes = [ln.rstrip("\n") for ln in lines[2:-2]]
        assert all(re.match(r"\d\d:\d\d:\d\d (pending|running)", ln) for ln in changes), changes
        said = [re.match(r"\S+ (\w+(?: \(\w+\))?)", ln).group(1) for ln in changes]  # type: ignore[union-attr]
        assert len(said) == len(set(said)), said           # each change once
        assert any("pending (waiting_for_gpu): waiting for a free GPU; 1st of 1 in the course queue (0 ahead); "
                   "starts by" in ln for ln in changes), changes
        assert said[-1] == "running" and "of its 10m00s time limit" in changes[-1], changes
        assert lines[-2] == f"{task_id} completed\n"
        results = p.home / "spool" / "done" / task_id / "results"
        assert lines[-1] == f"results: {results}    (ailabber fetch {task_id[-6:]} copies them with the logs)\n"
        assert (results / "output" / "r").read_text() == "1\n"
        # wait on a task that has ended: the end and the results at once.
        again = p.cli("wait", task_id, check=True).stdout.splitlines()
        assert again == [f"{task_id} completed", lines[-1].rstrip("\n")]
    finally:
        p.stop_all()


def test_wait_on_a_terminal_keeps_one_line_up_to_date(tmp_path: Path) -> None:
    """On a terminal the progress is one line, redrawn in place (carriage return, erase to
    the end of the line): the only lines ``wait`` ends are the end and the results."""
    import pty
    import select
    import subprocess
    import sys

    gate, wait = _gate(tmp_path)
    p = Pipeline(tmp_path, gpus=1)
    p.start_all()
    master, slave = pty.openpty()
    try:
        holder = p.submit(p.project([wait], gpus=1))
        p.wait_for(holder, lambda s: s["state"] == "running", 60, "the first task to run")
        task_id = p.submit(p.project(["sleep 3"], gpus=1))
        waiter = subprocess.Popen([sys.executable, "-m", "ailabber", "wait", task_id], env=p.env(), stdout=slave,
                                  stderr=subprocess.PIPE, text=True)
        os.close(slave)
        seen = b""
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, (seen, p.daemon_logs())
            if select.select([master], [], [], 0.5)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:           # the terminal's other end closed: wait has exited
                    break
                if not chunk:
                    break
                seen += chunk
                if b"in the course queue" in seen and not gate.exists():
                    gate.touch()
        assert waiter.wait(30) == 0, waiter.stderr.read() if waiter.stderr else ""
        text = seen.decode()
        assert "\rpending (waiting_for_gpu): 1st of 1 in the course queue (0 ahead); starts by " in text
        assert re.search("\rrunning: \\d+s of its 10m00s time limit\x1b\\[K", text), text
        assert text.count("\n") == 2, text
        assert text.endswith(f"\r\x1b[K{task_id} completed\r\n"
                             f"results: none came back; ailabber fetch {task_id[-6:]} copies the logs\r\n"), text
    finally:
        os.close(master)
        p.stop_all()
