"""The whole path on one machine, with real spoold and remoted processes and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from testbed.pipeline import Pipeline, task_processes


def test_task_completes_and_fetch_returns_logs_and_results(pipeline: Pipeline, tmp_path: Path) -> None:
    proj = pipeline.project(
        ["mkdir -p output logs", "echo training; echo warn >&2; echo 0.93 > output/accuracy.txt",
         "echo step1 > logs/train.log"],
        files={"data/input.txt": "x\n"}, results=["output"], extra_toml='')
    (proj / "task_config.toml").write_text((proj / "task_config.toml").read_text() + 'logs = ["logs"]\n')
    task_id = pipeline.submit(proj)
    st = pipeline.wait_terminal(task_id)
    assert st["state"] == "completed", st
    assert st["exit_code"] == 0 and st["reason"] is None
    for key in ("id", "submitted_at", "started_at", "finished_at", "updated_at", "job_id"):
        assert st[key], key
    out = pipeline.cli("logs", task_id, check=True).stdout
    assert "training" in out and "warn" in out
    dest = tmp_path / "fetched"
    pipeline.cli("fetch", task_id, "--dest", str(dest), check=True)
    assert (dest / "output" / "accuracy.txt").read_text() == "0.93\n"
    assert (dest / "logs" / "train.log").read_text() == "step1\n"
    assert "warn" in (dest / "ailabber-logs" / "stderr.log").read_text()
    # The history is complete and in order, locally.
    events = [json.loads(l) for l in (pipeline.home / "spool" / "done" / task_id / "events.jsonl").read_text().splitlines()]
    states = [e["state"] for e in events]
    assert states[0] == "pending" and states[-1] == "completed"
    # Default destination is ./ailabber-results/<id>/
    pipeline.cli("fetch", task_id[-6:], cwd=tmp_path, check=True)
    assert (tmp_path / "ailabber-results" / task_id / "output" / "accuracy.txt").exists()


def test_failing_command_reports_its_exit_code(pipeline: Pipeline) -> None:
    proj = pipeline.project(["echo first", "exit 7", "echo never"])
    task_id = pipeline.submit(proj)
    st = pipeline.wait_terminal(task_id)
    assert (st["state"], st["reason"], st["exit_code"]) == ("failed", "nonzero_exit", 7)
    assert "never" not in pipeline.cli("logs", task_id).stdout
    assert pipeline.cli("wait", task_id).returncode == 1


def test_wait_exits_zero_only_when_completed(pipeline: Pipeline) -> None:
    task_id = pipeline.submit(pipeline.project(["sleep 1"]))
    r = pipeline.cli("wait", task_id, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "completed" in r.stdout


def test_time_limit_fails_with_timeout(pipeline: Pipeline) -> None:
    task_id = pipeline.submit(pipeline.project(["echo start; sleep 120"], time_limit="0:03"))
    st = pipeline.wait_terminal(task_id, timeout=60)
    assert (st["state"], st["reason"]) == ("failed", "timeout"), st
    started, finished = st["started_at"], st["finished_at"]
    assert started and finished


def test_cancel_while_running_terminates_the_whole_tree(pipeline: Pipeline) -> None:
    # Children, grandchildren and a process that escapes with setsid: all must end.
    proj = pipeline.project([
        "sleep 300 & (sleep 300 & wait) & setsid sleep 300 & "
        "python3 -c 'import time; print(\"ready\", flush=True); time.sleep(300)'"])
    task_id = pipeline.submit(proj)
    pipeline.wait_for(task_id, lambda s: s["state"] == "running", 60, "running")
    deadline = time.monotonic() + 30
    while "ready" not in pipeline.cli("logs", task_id).stdout and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(task_processes(task_id)) >= 4
    assert pipeline.cli("cancel", task_id[:13] + task_id[13:]).returncode == 0
    st = pipeline.wait_terminal(task_id, timeout=60)
    assert (st["state"], st["reason"]) == ("terminated", "canceled_by_user"), st
    assert task_processes(task_id) == []


def test_cancel_before_start_is_canceled(pipeline: Pipeline) -> None:
    blocker = pipeline.submit(pipeline.project(["sleep 300"], gpus=1))
    pipeline.wait_for(blocker, lambda s: s["state"] == "running", 60, "running")
    waiting = pipeline.submit(pipeline.project(["touch should-not-run"], gpus=1))
    st = pipeline.wait_for(waiting, lambda s: s["reason"] == "waiting_for_gpu", 60, "waiting_for_gpu")
    assert st["state"] == "pending"
    pipeline.cli("cancel", waiting, check=True)
    st = pipeline.wait_terminal(waiting)
    assert (st["state"], st["reason"]) == ("canceled", "canceled_by_user")
    assert st["started_at"] is None
    assert not (pipeline.remote_task(waiting) / "files" / "should-not-run").exists()
    pipeline.cli("cancel", blocker, check=True)
    assert pipeline.wait_terminal(blocker)["state"] == "terminated"


def test_cancel_before_upload_never_leaves_the_machine(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)   # daemons down: the CLI still works
    task_id = p.submit(p.project(["echo hi"]))
    assert p.cli("cancel", task_id).returncode == 0
    assert p.status(task_id)["state"] == "pending"   # only a request so far
    p.start_all()
    try:
        st = p.wait_terminal(task_id)
        assert (st["state"], st["reason"]) == ("canceled", "canceled_by_user")
        assert not p.remote_task(task_id).exists()
    finally:
        p.stop_all()


def test_two_one_gpu_tasks_on_one_gpu_never_overlap(pipeline: Pipeline, tmp_path: Path) -> None:
    cmd = ('python3 -c "import os,time,json; t0=time.time(); time.sleep(1.5); '
           'os.makedirs(\'output\', exist_ok=True); '
           'json.dump({\'start\': t0, \'end\': time.time(), \'gpu\': os.environ[\'CUDA_VISIBLE_DEVICES\']}, '
           'open(\'output/span.json\', \'w\'))"')
    ids = [pipeline.submit(pipeline.project([cmd], gpus=1, results=["output"])) for _ in range(2)]
    spans = []
    for task_id in ids:
        assert pipeline.wait_terminal(task_id)["state"] == "completed"
        dest = tmp_path / task_id
        pipeline.cli("fetch", task_id, "--dest", str(dest), check=True)
        spans.append(json.loads((dest / "output" / "span.json").read_text()))
    a, b = sorted(spans, key=lambda s: s["start"])
    assert a["end"] <= b["start"], spans
    assert a["gpu"] == b["gpu"] == "0"


def test_task_without_gpus_sees_none(pipeline: Pipeline, tmp_path: Path) -> None:
    cmd = "mkdir -p output; echo \"[$CUDA_VISIBLE_DEVICES]\" > output/gpus; echo $PYTHONUNBUFFERED > output/unbuf"
    task_id = pipeline.submit(pipeline.project([cmd], gpus=0, results=["output"]))
    assert pipeline.wait_terminal(task_id)["state"] == "completed"
    pipeline.cli("fetch", task_id, "--dest", str(tmp_path / "f"), check=True)
    assert (tmp_path / "f" / "output" / "gpus").read_text() == "[]\n"
    assert (tmp_path / "f" / "output" / "unbuf").read_text() == "1\n"


def test_more_gpus_than_the_machine_has_fails_plainly(pipeline: Pipeline) -> None:
    task_id = pipeline.submit(pipeline.project(["true"], gpus=2))
    st = pipeline.wait_terminal(task_id)
    assert (st["state"], st["reason"]) == ("failed", "unsatisfiable")
    assert "this machine has 1" in st["message"]


def test_logs_follow_streams_while_running(pipeline: Pipeline) -> None:
    cmd = "for i in 1 2 3 4 5; do echo line$i; sleep 0.5; done"
    task_id = pipeline.submit(pipeline.project([cmd]))
    r = pipeline.cli("logs", "-f", task_id, timeout=60)
    assert r.returncode == 0
    for i in range(1, 6):
        assert f"line{i}" in r.stdout


def test_second_daemon_refuses_to_start(pipeline: Pipeline) -> None:
    time.sleep(0.5)
    for which, cfg in (("spoold", pipeline.spoold_cfg), ("remoted", pipeline.remoted_cfg)):
        r = subprocess.run([sys.executable, "-m", which, "--config", str(cfg)], env=pipeline.env(),
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 3
        assert "already serves" in r.stderr


def test_list_and_whoami(pipeline: Pipeline) -> None:
    ids = [pipeline.submit(pipeline.project(["true"])) for _ in range(2)]
    for t in ids:
        pipeline.wait_terminal(t)
    listed = json.loads(pipeline.cli("list", "--json", check=True).stdout)
    assert [t["id"] for t in listed] == sorted(ids)
    human = pipeline.cli("list", check=True).stdout.splitlines()
    assert human[0].split() == ["ID", "STATE", "REASON", "AGE", "UPDATED"]
    who = json.loads(pipeline.cli("whoami", "--json", check=True).stdout)
    assert who["user"] == psutil.Process().username() and who["spoold_running"] is True
    assert pipeline.cli("status", "nonexistent").returncode == 2


TRAP = ("trap 'echo got-usr1 deadline=$AILABBER_DEADLINE; mkdir -p output; echo ckpt > output/ckpt; exit 0' USR1; "
        "sleep 100 & wait")


def test_commands_get_usr1_before_the_time_limit(tmp_path: Path) -> None:
    p = Pipeline(tmp_path, remoted_extra={"signal_before_timeout": 3})
    p.start_all()
    try:
        task_id = p.submit(p.project([TRAP], time_limit="0:06", results=["output"]))
        st = p.wait_terminal(task_id, 60)
        assert st["state"] == "completed", (st, p.cli("logs", task_id).stdout)
        out = p.cli("logs", task_id).stdout
        assert "got-usr1 deadline=" in out
        deadline = int(out.split("got-usr1 deadline=")[-1].split()[0])
        assert abs(deadline - time.time()) < 60
        p.cli("fetch", task_id, "--dest", str(tmp_path / "r"), check=True)
        assert (tmp_path / "r" / "output" / "ckpt").read_text() == "ckpt\n"
    finally:
        p.stop_all()


def test_a_quick_parameter_sweep_runs_each_version(pipeline: Pipeline, tmp_path: Path) -> None:
    """Edits of the same size within one second must not be taken for unchanged files."""
    proj = pipeline.project(["mkdir -p output; cat params.txt > output/seen"], files={"params.txt": "lr=0.1\n"},
                            results=["output"])
    ids = []
    for lr in ("0.1", "0.2", "0.3"):
        (proj / "params.txt").write_text(f"lr={lr}\n")
        ids.append(pipeline.submit(proj))
    for lr, task_id in zip(("0.1", "0.2", "0.3"), ids):
        assert pipeline.wait_terminal(task_id)["state"] == "completed"
        pipeline.cli("fetch", task_id, "--dest", str(tmp_path / task_id), check=True)
        assert (tmp_path / task_id / "output" / "seen").read_text() == f"lr={lr}\n"


def test_a_large_project_edited_within_the_second_of_its_last_upload_runs_the_new_version(
        pipeline: Pipeline, tmp_path: Path) -> None:
    """A large task is linked against the previous upload by size and mtime; an edit that
    keeps both (same size, same second) must still reach the cluster."""
    proj = pipeline.project(["mkdir -p output; cat params.txt > output/seen"],
                            files={"params.txt": "lr=0.1\n", "data.bin": "x" * 1_200_000}, results=["output"])
    second = 1_800_000_000 * 1_000_000_000
    os.utime(proj / "params.txt", ns=(second + 100, second + 100))
    first = pipeline.submit(proj)
    assert pipeline.wait_terminal(first)["state"] == "completed"
    (proj / "params.txt").write_text("lr=0.2\n")
    os.utime(proj / "params.txt", ns=(second + 900, second + 900))
    again = pipeline.submit(proj)
    final = pipeline.wait_terminal(again)
    assert final["state"] == "completed"
    assert final["upload_bytes_sent"] < 1_200_000          # data.bin came from the first upload
    pipeline.cli("fetch", again, "--dest", str(tmp_path / again), check=True)
    assert (tmp_path / again / "output" / "seen").read_text() == "lr=0.2\n"
