"""The whole path on one machine, with real spoold and remoted processes and the CLI: what
is particular to the local scheduler and the CLI (what every backend does is in tests/contract)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from testbed.pipeline import Pipeline


def test_wait_exits_zero_only_when_completed(pipeline: Pipeline) -> None:
    task_id = pipeline.submit(pipeline.project(["sleep 1"]))
    r = pipeline.cli("wait", task_id, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "completed" in r.stdout


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


def test_task_without_gpus_sees_none(pipeline: Pipeline, tmp_path: Path) -> None:
    cmd = "mkdir -p output; echo \"[$CUDA_VISIBLE_DEVICES]\" > output/gpus; echo $PYTHONUNBUFFERED > output/unbuf"
    task_id = pipeline.submit(pipeline.project([cmd], gpus=0, results=["output"]))
    assert pipeline.wait_terminal(task_id)["state"] == "completed"
    pipeline.cli("fetch", task_id, "--dest", str(tmp_path / "f"), check=True)
    assert (tmp_path / "f" / "output" / "gpus").read_text() == "[]\n"
    assert (tmp_path / "f" / "output" / "unbuf").read_text() == "1\n"


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
    assert human[0].split() == ["ID", "NAME", "STATE", "REASON", "AGE", "TIME", "COMMAND"]
    who = json.loads(pipeline.cli("whoami", "--json", check=True).stdout)
    assert who["user"] == psutil.Process().username() and who["spoold_running"] is True
    assert pipeline.cli("status", "nonexistent").returncode == 2


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


def test_a_command_stopped_at_the_time_limit_reports_the_signal_as_a_shell_would(pipeline: Pipeline) -> None:
    """bash dies of the TERM the time limit sends it: the task and the command's entry in
    result.json say 143 (128 + SIGTERM), not the 0 of a status already reaped elsewhere."""
    task_id = pipeline.submit(pipeline.project(["echo start; sleep 120"], time_limit="0:03"))
    st = pipeline.wait_terminal(task_id, timeout=90)
    assert (st["state"], st["reason"], st["exit_code"]) == ("failed", "timeout", 143), st
    result = json.loads((pipeline.remote_task(task_id) / "run" / "result.json").read_text())
    assert [c["exit_code"] for c in result["commands"]] == [143]
    assert result["exit_code"] == 143


def test_the_warning_before_a_short_time_limit_says_the_real_seconds_and_spares_a_command_without_a_handler(
        pipeline: Pipeline) -> None:
    """signal_before_timeout is 60 s (the default) and the limit 3 s: the warning comes as
    the command starts and says how many seconds are really left.  A command that did not
    ask for it (no SIGUSR1 handler) is not killed by it and runs on to the time limit."""
    task_id = pipeline.submit(pipeline.project(["sleep 120"], time_limit="0:03"))
    st = pipeline.wait_terminal(task_id, timeout=90)
    assert (st["state"], st["reason"], st["exit_code"]) == ("failed", "timeout", 143), st
    out = pipeline.cli("logs", task_id).stdout
    line = next(ln for ln in out.splitlines() if "before the time limit" in ln)
    seconds = int(line.removeprefix("[ailabber] ").split("s before", 1)[0])
    assert 0 <= seconds <= 3, line
