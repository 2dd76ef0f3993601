"""The staff's acts (``ailabber admin cancel/hold/release/limits/purge``) against the real
remoted over the local scheduler, seen where a student sees them: through the real spoold
pull into the student's spool.  Root is staff here; who else may act, and who may not, is
tests/security/test_admin_access.py."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.pipeline import Pipeline, _me, wait_until


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Pipeline]:
    p = Pipeline(tmp_path, gpus=1)
    p.start_all()
    yield p
    p.stop_all()


def admin(p: Pipeline, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return p.cli("admin", "--remoted-config", str(p.remoted_cfg), *args, timeout=timeout)


def audit(p: Pipeline) -> list[dict[str, object]]:
    path = p.root / "admin" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def gpu_task(p: Pipeline, seconds: int = 60) -> str:
    return p.submit(p.project([f"sleep {seconds}"], gpus=1))


def test_staff_cancel_ends_a_queued_and_a_running_task_and_the_student_reads_why(site: Pipeline) -> None:
    p = site
    running, queued = gpu_task(p), gpu_task(p)
    p.wait_for(running, lambda s: s["state"] == "running", 60, "running")
    p.wait_for(queued, lambda s: s["reason"] == "waiting_for_gpu", 60, "waiting for the GPU")
    r = admin(p, "cancel", running, queued[-6:], "--reason", "the node is going down for repair")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("cancelled 2 task(s)")
    for task_id, state in ((queued, "canceled"), (running, "terminated")):
        st = p.wait_terminal(task_id)
        assert (st["state"], st["reason"], st["message"]) == (state, "canceled_by_staff",
                                                              "the node is going down for repair"), st
        shown = p.cli("status", task_id, check=True).stdout
        assert "course staff cancelled it" in shown and "the node is going down for repair" in shown
    (line,) = audit(p)
    assert (line["who"], line["act"], line["outcome"]) == ("root", "cancel", "done")
    assert not list((p.root / "admin" / "requests").iterdir())       # carried out, then removed


def test_cancel_names_an_unknown_task_before_asking_and_a_finished_one_in_the_reply(site: Pipeline) -> None:
    p = site
    r = admin(p, "cancel", "nosuchtask")
    assert r.returncode == 2 and "nosuchtask" in r.stderr and not audit(p)
    done = p.submit(p.project(["true"]))
    p.wait_terminal(done)
    r = admin(p, "cancel", done)
    assert r.returncode == 1 and "already completed" in r.stdout, r.stdout
    assert audit(p)[-1]["outcome"] == "failed"


def test_a_request_waits_for_a_stopped_remoted_and_is_carried_out_when_it_starts(site: Pipeline) -> None:
    p = site
    task = gpu_task(p)
    p.wait_for(task, lambda s: s["state"] == "running", 60, "running")
    p.kill("remoted")
    r = admin(p, "cancel", task, "--reason", "stop")
    assert r.returncode == 3 and "remoted is not running" in r.stdout, r.stdout
    assert len(list((p.root / "admin" / "requests").glob("*.json"))) == 1
    r = admin(p, "cancel", task, "--no-wait")
    assert r.returncode == 3 and "left for remoted" in r.stdout
    p.start("remoted")
    st = p.wait_terminal(task)
    assert (st["state"], st["reason"]) == ("terminated", "canceled_by_staff")
    wait_until(lambda: not list((p.root / "admin" / "requests").glob("*.json")), "both requests carried out")
    assert [a["outcome"] for a in audit(p)] == ["done", "done"]


def test_hold_keeps_queued_tasks_pending_across_a_restart_and_release_lets_them_run(site: Pipeline) -> None:
    p = site
    running = gpu_task(p, 30)
    p.wait_for(running, lambda s: s["state"] == "running", 60, "running")
    r = admin(p, "hold", "--all", "--message", "GPU node maintenance until 14:00")
    assert r.returncode == 0 and r.stdout.startswith("held the whole queue"), r.stdout + r.stderr
    waiting = p.submit(p.project(["echo ran"]))
    st = p.wait_for(waiting, lambda s: s["reason"] == "held", 60, "held")
    assert (st["state"], st["message"]) == ("pending", "GPU node maintenance until 14:00")
    assert st["held"] is True and "queue_position" not in st                # queue.json says so too
    assert "held by course staff" in p.cli("status", waiting, check=True).stdout
    assert p.status(running)["state"] == "running"                           # running tasks go on
    p.stop_all()                                                             # the hold is remoted's state
    p.start_all()
    shown = admin(p, "tasks")
    assert shown.returncode == 0 and "the whole queue is held by root" in shown.stdout, shown.stdout
    doctor = json.loads(p.cli("doctor", "--json", "--remoted-config", str(p.remoted_cfg)).stdout)
    (holds,) = [c for c in doctor if c["name"] == "staff holds"]
    assert holds["warning"] and "GPU node maintenance" in holds["detail"]
    assert admin(p, "hold", "--user", "root", "--message", "see a TA").returncode == 0
    r = admin(p, "release", "--all")
    assert r.returncode == 0 and "still held: root is held by root" in r.stdout, r.stdout
    st = p.wait_for(waiting, lambda s: s["message"] == "see a TA", 60, "held on its own")
    assert st["reason"] == "held"
    assert admin(p, "release", "--user", "root").returncode == 0
    assert p.wait_terminal(waiting)["state"] == "completed"
    assert admin(p, "hold", "--user", "nosuchstudent").returncode == 2
    assert [a["act"] for a in audit(p)] == ["hold", "hold", "release", "release"]
    p.cli("cancel", running, check=True)
    p.wait_terminal(running)


def test_limits_override_one_student_without_a_restart_and_whoami_shows_them(site: Pipeline) -> None:
    from tests.security.test_disk_caps import client_limits

    p = site
    assert admin(p, "limits").stdout.startswith("no overrides")
    r = admin(p, "limits", "root", "max_running=1", "max_upload_bytes=2K", "max_time_limit=0:30:00")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "max_upload_bytes = 2K" in r.stdout and "max_time_limit = 0:30:00" in r.stdout
    client_limits(p, lambda d: d.get("max_running") == 1 and d.get("max_upload_bytes") == 2048)
    who = p.cli("whoami", check=True).stdout
    assert "time limit 0:30:00" in who and "at most 1 task(s) handed to the scheduler" in who, who
    mine = json.loads(p.cli("whoami", "--json", check=True).stdout)["limits"]
    assert (mine["max_running"], mine["max_upload_bytes"], mine["max_time_limit_s"]) == (1, 2048, 1800)
    big = p.project(["true"], files={"data.bin": "x" * 5000})
    refused = p.cli("submit", cwd=big)
    assert refused.returncode != 0 and "upload limit" in refused.stderr + refused.stdout
    long = p.cli("submit", cwd=p.project(["true"], time_limit="1:00:00"))
    assert long.returncode == 2 and "0:30:00" in long.stderr, long.stderr
    a, b = (p.submit(p.project(["sleep 5"], time_limit="1:00")) for _ in range(2))
    st = p.wait_for(b, lambda s: s["reason"] == "user_limit", 60, "held back by max_running")
    assert "the limit is 1" in st["message"]
    shown = admin(p, "limits", "root").stdout
    assert "max_running" in shown and "1 (override)" in shown, shown
    assert admin(p, "limits", "root", "max_running=default").returncode == 0
    assert p.wait_terminal(b)["state"] == "completed"
    assert admin(p, "limits", "root", "max_runing=2").returncode == 2
    assert "max_upload_bytes" in admin(p, "limits").stdout



def _remote_files(p: Pipeline, task_id: str) -> list[Path]:
    area = p.root / "users" / _me()
    return [d for d in (area / "tasks" / task_id, area / "outbox" / task_id) if d.exists() or d.is_symlink()]


def _record(p: Pipeline, task_id: str) -> dict[str, Any]:
    return dict(json.loads((p.root / "state" / "done" / _me() / f"{task_id}.json").read_text()))


def test_purge_removes_a_pulled_finished_tasks_files_keeps_its_record_and_leaves_a_running_one(
        site: Pipeline, tmp_path: Path) -> None:
    p = site
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not the task's")
    cmd = f"mkdir -p output && head -c 200000 /dev/urandom > output/r && ln -s {outside} output/link"
    done = p.submit(p.project([cmd], results=["output"]))
    assert p.wait_terminal(done)["state"] == "completed"
    running = p.submit(p.project(["sleep 60"]))
    p.wait_for(running, lambda s: s["state"] == "running", 60, "running")
    r = admin(p, "purge", "--older-than", "0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("freed ") and "from 1 task(s) of 1 student(s)" in r.stdout, r.stdout
    assert _remote_files(p, done) == [] and len(_remote_files(p, running)) == 2
    assert (outside / "keep.txt").read_text() == "not the task's"           # the symlink was not followed
    record = _record(p, done)
    assert record["status"]["state"] == "completed" and record["extra"]["purged_bytes"] >= 200000
    assert done in admin(p, "tasks").stdout                                 # the record stays
    assert p.cli("fetch", done, "--dest", str(tmp_path / "got"), check=True)  # the student has the results
    assert (tmp_path / "got" / "output" / "r").stat().st_size == 200000
    again = admin(p, "purge", "--older-than", "0")
    assert again.returncode == 0 and again.stdout.startswith("freed 0 B from 0 task(s)"), again.stdout
    p.cli("cancel", running, check=True)
    p.wait_terminal(running)


def test_purge_keeps_a_task_whose_results_were_never_pulled_unless_told(site: Pipeline) -> None:
    p = site
    task = p.submit(p.project(["sleep 2; mkdir -p output; echo r > output/r"], results=["output"]))
    p.wait_for(task, lambda s: s["state"] == "running", 60, "running")
    p.kill("spoold")                                     # it ends with nobody pulling its results
    wait_until(lambda: (p.root / "state" / "done" / _me() / f"{task}.json").exists(), "the task to end")
    r = admin(p, "purge", "--older-than", "0")
    assert r.returncode == 0 and "kept 1 whose results were never pulled" in r.stdout, r.stdout
    assert len(_remote_files(p, task)) == 2
    r = admin(p, "purge", "--older-than", "0", "--unpulled")
    assert r.returncode == 0 and "from 1 task(s)" in r.stdout, r.stdout
    assert _remote_files(p, task) == [] and "purged_at" in _record(p, task)["extra"]
    assert admin(p, "purge", "--older-than", "soon").returncode == 2


def test_retention_in_remoted_yaml_removes_what_was_pulled_once_due(tmp_path: Path) -> None:
    p = Pipeline(tmp_path, remoted_extra={"retention": {"max_age": 0}})
    p.start_all()
    try:
        task = p.submit(p.project(["mkdir -p output; echo r > output/r"], results=["output"]))
        assert p.wait_terminal(task)["state"] == "completed"
        assert len(_remote_files(p, task)) == 2            # applied at start and hourly: not yet
        p.procs["remoted"].send_signal(signal.SIGHUP)      # a reload applies it at once
        wait_until(lambda: not _remote_files(p, task), "the retention policy to remove the files")
        assert "purged_at" in _record(p, task)["extra"]
        assert "retention: freed" in p.daemon_logs()
    finally:
        p.stop_all()
