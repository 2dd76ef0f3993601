"""What every scheduler backend must do, seen from the student's side: each test runs
against the fake, the local scheduler and a real Slurm (the ``backend`` fixture)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from testbed.pipeline import count_runs, task_processes
from tests.contract.conftest import Backend

TRAP = ("trap 'echo got-usr1 deadline=$AILABBER_DEADLINE; mkdir -p output; echo ckpt > output/ckpt; exit 0' USR1; "
        "sleep 100 & wait")


def _one_job(backend: Backend, task_id: str) -> None:
    made = backend.jobs_made(task_id)
    assert made is None or made == 1, f"{task_id}: {made} jobs"


def test_task_completes_and_fetch_returns_logs_and_results(backend: Backend, tmp_path: Path) -> None:
    proj = backend.project(
        ["mkdir -p output logs", "echo training; echo warn >&2; echo 0.93 > output/accuracy.txt",
         "echo step1 > logs/train.log", "echo on-job ${SLURM_JOB_ID:-none}",
         "echo '{\"step\": 7, \"loss\": 0.5}' >> \"$AILABBER_METRICS\""],
        files={"data/input.txt": "x\n"}, results=["output"])
    (proj / "task_config.toml").write_text((proj / "task_config.toml").read_text() + 'logs = ["logs"]\n')
    task_id = backend.submit(proj)
    st = backend.wait_terminal(task_id, 90)
    assert st["state"] == "completed", st
    assert st["exit_code"] == 0 and st["reason"] is None
    for key in ("id", "submitted_at", "started_at", "finished_at", "updated_at", "job_id"):
        assert st[key], key
    out = backend.logs(task_id)
    assert "training" in out and "warn" in out
    # The job knows which Slurm job it is under Slurm, and is no Slurm job elsewhere.
    assert f"on-job {st['job_id'] if backend.name == 'slurm' else 'none'}" in out
    if backend.name == "slurm":
        assert st["job_id"].isdigit()
    dest = tmp_path / "fetched"
    backend.cli("fetch", task_id, "--dest", str(dest), check=True)
    assert (dest / "output" / "accuracy.txt").read_text() == "0.93\n"
    assert (dest / "logs" / "train.log").read_text() == "step1\n"
    assert "warn" in (dest / "ailabber-logs" / "stderr.log").read_text()
    # $AILABBER_METRICS reaches the job, and its lines come back with the logs.
    metrics = json.loads(backend.cli("metrics", "--json", task_id, check=True).stdout)
    assert metrics["series"]["loss"]["points"] == [[7, 0.5]]
    assert (dest / "ailabber-logs" / "metrics.jsonl").read_text() == '{"step": 7, "loss": 0.5}\n'
    # The history is complete and in order, locally.
    events = [json.loads(line) for line in
              (backend.p.home / "spool" / "done" / task_id / "events.jsonl").read_text().splitlines()]
    states = [e["state"] for e in events]
    assert states[0] == "pending" and states[-1] == "completed"
    # Default destination is ./ailabber-results/<id>/
    backend.cli("fetch", task_id[-6:], cwd=tmp_path, check=True)
    assert (tmp_path / "ailabber-results" / task_id / "output" / "accuracy.txt").exists()
    _one_job(backend, task_id)


def test_failing_command_reports_its_exit_code(backend: Backend) -> None:
    task_id = backend.submit(backend.project(["echo first", "exit 7", "echo never"]))
    st = backend.wait_terminal(task_id, 90)
    assert (st["state"], st["reason"], st["exit_code"]) == ("failed", "nonzero_exit", 7)
    assert "never" not in backend.logs(task_id)
    assert backend.cli("wait", task_id).returncode == 1
    _one_job(backend, task_id)


def test_time_limit_fails_with_timeout(backend: Backend) -> None:
    task_id = backend.submit(backend.project(["echo start; sleep 120"], time_limit="0:04"))
    st = backend.wait_terminal(task_id, 120)
    assert (st["state"], st["reason"]) == ("failed", "timeout"), st
    # The command ended by the TERM of the time limit: the status a shell shows for it.
    assert st["exit_code"] == backend.timeout_exit_code, st
    assert st["started_at"] and st["finished_at"]
    _one_job(backend, task_id)


def test_commands_get_usr1_before_the_time_limit(backend: Backend, tmp_path: Path) -> None:
    task_id = backend.submit(backend.project([TRAP], time_limit=backend.usr1_time_limit, results=["output"]))
    st = backend.wait_terminal(task_id, 240)
    out = backend.logs(task_id)
    assert st["state"] == "completed", (st, out)
    assert "got-usr1 deadline=" in out
    # The log says when it came (the seconds left, at most the limit) and that it reached
    # the one process that handles it (bash with its trap; not the sleep, which would die).
    line = next(ln for ln in out.splitlines() if "before the time limit: SIGUSR1" in ln)
    assert "SIGUSR1 sent to 1 process(es)" in line, line
    minutes, seconds = backend.usr1_time_limit.split(":")
    limit = int(minutes) * 60 + int(seconds)
    assert 0 <= int(line.removeprefix("[ailabber] ").split("s before", 1)[0]) <= limit
    deadline = int(out.split("got-usr1 deadline=")[-1].split()[0])    # the job's deadline, in epoch seconds
    assert -5 < deadline - time.time() <= limit
    backend.cli("fetch", task_id, "--dest", str(tmp_path / "r"), check=True)
    assert (tmp_path / "r" / "output" / "ckpt").read_text() == "ckpt\n"


SPAN = ('python3 -c "import os,time,json; t0=time.time(); time.sleep(1.5); '
        'os.makedirs(\'output\', exist_ok=True); '
        'json.dump({\'start\': t0, \'end\': time.time(), \'gpu\': os.environ[\'CUDA_VISIBLE_DEVICES\']}, '
        'open(\'output/span.json\', \'w\'))"')


def test_one_gpu_tasks_beyond_the_gpus_never_share_one(backend: Backend, tmp_path: Path) -> None:
    """One more one-GPU task than there are GPUs: never more tasks at once than GPUs, and
    tasks that run at the same time see different GPUs (on one GPU: two tasks never overlap)."""
    ids = [backend.submit(backend.project([SPAN], gpus=1, results=["output"])) for _ in range(backend.gpus + 1)]
    spans = []
    for task_id in ids:
        assert backend.wait_terminal(task_id, 120)["state"] == "completed"
        dest = tmp_path / task_id
        backend.cli("fetch", task_id, "--dest", str(dest), check=True)
        spans.append(json.loads((dest / "output" / "span.json").read_text()))
    valid = {str(g) for g in range(backend.gpus)}
    assert all(s["gpu"] in valid for s in spans), spans
    for s in spans:             # the moment one starts: who else is running then
        together = [o for o in spans if o["start"] <= s["start"] < o["end"]]
        assert len(together) <= backend.gpus, spans
        assert len({o["gpu"] for o in together}) == len(together), spans
    if backend.gpus == 1:
        a, b = sorted(spans, key=lambda s: s["start"])
        assert a["end"] <= b["start"], spans
        assert a["gpu"] == b["gpu"] == "0"


def test_more_gpus_than_exist_fails_plainly(backend: Backend) -> None:
    task_id = backend.submit(backend.project(["true"], gpus=backend.gpus + 1))
    st = backend.wait_terminal(task_id, 60)
    assert (st["state"], st["reason"]) == ("failed", backend.impossible_reason), st
    for words in backend.impossible_words:
        assert words in st["message"], st


def test_cancel_while_running_ends_the_whole_process_tree(backend: Backend) -> None:
    # Children, grandchildren and a process that escapes with setsid: all must end.
    task_id = backend.submit(backend.project([(
        "sleep 300 & (sleep 300 & wait) & setsid sleep 300 & "
        "python3 -c 'import time; print(\"ready\", flush=True); time.sleep(300)'")]))
    backend.wait_for(task_id, lambda s: s["state"] == "running", 90, "running")
    backend.wait_until(lambda: "ready" in backend.logs(task_id), 60, "the command's first output")
    assert len(task_processes(task_id)) >= 4
    assert backend.cli("cancel", task_id).returncode == 0
    st = backend.wait_terminal(task_id, 90)
    assert (st["state"], st["reason"]) == ("terminated", "canceled_by_user"), st
    if backend.ends_processes_first:
        assert task_processes(task_id) == []
    else:
        backend.wait_until(lambda: task_processes(task_id) == [], 60, "every process of the task to end")


def test_cancel_before_start_is_canceled(backend: Backend) -> None:
    blocker = backend.submit(backend.project(["sleep 300"], gpus=backend.gpus))
    backend.wait_for(blocker, lambda s: s["state"] == "running", 90, "running")
    waiting = backend.submit(backend.project(["touch should-not-run"], gpus=1))
    st = backend.wait_for(waiting, lambda s: s["reason"] == backend.waiting_reason, 90, backend.waiting_reason)
    assert st["state"] == "pending"
    assert backend.waiting_text in backend.cli("status", waiting, check=True).stdout
    backend.cli("cancel", waiting, check=True)
    st = backend.wait_terminal(waiting, 60)
    assert (st["state"], st["reason"]) == ("canceled", "canceled_by_user")
    assert st["started_at"] is None
    assert not (backend.p.remote_task(waiting) / "files" / "should-not-run").exists()
    backend.cli("cancel", blocker, check=True)
    assert backend.wait_terminal(blocker, 60)["state"] == "terminated"


def test_crash_right_after_submit_yields_exactly_one_job(backend: Backend, tmp_path: Path) -> None:
    proj = backend.project(["sleep 2"])
    runs = count_runs(proj, tmp_path / "runs")
    backend.arm_crash("remoted:after_submit")
    task_id = backend.submit(proj)
    backend.recover_from_crash()
    st = backend.wait_terminal(task_id, 90)
    assert st["state"] == "completed", st
    assert runs.read_text().count("ran") == 1
    _one_job(backend, task_id)
