"""The local spool stays small: unchanged files shared with the previous task, output kept
once, and finished tasks removed by ``ailabber clean`` and by spoold's retention; with the
real CLI and daemons (local scheduler)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import time
from pathlib import Path

from ailabber.storage.sources import SETTLE_NS
from ailabber.storage.spool import Spool
from ailabber.storage.trash import reading
from testbed.pipeline import Pipeline


def settled(project: Path) -> None:
    """Wait for the clock until every file of ``project`` may be recorded as unchanged."""
    newest = max(p.stat().st_ctime_ns for p in project.rglob("*"))
    while time.time_ns() <= newest + SETTLE_NS:
        time.sleep(0.05)


def files_state(files: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every file under ``files`` with its inode, mtime, mode and content hash."""
    out = {}
    for p in sorted(files.rglob("*")):
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            out[p.relative_to(files).as_posix()] = (st.st_ino, st.st_mtime_ns, stat.S_IMODE(st.st_mode),
                                                    hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def done(p: Pipeline, task_id: str) -> Path:
    return p.home / "spool" / "done" / task_id


def task_files(p: Pipeline, task_id: str) -> Path:
    """The task's ``files/`` in whatever stage it is (a move keeps every file as it is)."""
    loc = Spool(p.home / "spool").locate(task_id)
    assert loc is not None, task_id
    return loc[1] / "files"


def test_a_resubmit_shares_unchanged_files_and_runs_the_changed_one(pipeline: Pipeline, tmp_path: Path) -> None:
    p = pipeline
    proj = p.project(["mkdir -p output; cat version.txt > output/seen; echo appended >> notes.txt; wc -c < data.bin"],
                     files={"version.txt": "v1\n", "notes.txt": "mine\n"}, results=["output"])
    (proj / "data.bin").write_bytes(os.urandom(300_000))
    settled(proj)
    first = p.submit(proj)
    as_submitted = files_state(task_files(p, first))
    assert p.wait_terminal(first)["state"] == "completed"
    (proj / "version.txt").write_text("v2\n")
    second = p.submit(proj)
    assert p.wait_terminal(second)["state"] == "completed"

    a, b = done(p, first) / "files", done(p, second) / "files"
    for rel in ("data.bin", "notes.txt", "task_config.toml"):
        assert (a / rel).stat().st_ino == (b / rel).stat().st_ino, rel       # one file, two tasks
    assert (a / "version.txt").stat().st_ino != (b / "version.txt").stat().st_ino
    for task_id, version in ((first, "v1\n"), (second, "v2\n")):
        p.cli("fetch", task_id, "--dest", str(tmp_path / task_id), check=True)
        assert (tmp_path / task_id / "output" / "seen").read_text() == version
    # Read-only in the spool; the job on the cluster could still append to its own copy.
    assert all(mode & 0o222 == 0 for _ino, _m, mode, _h in files_state(b).values())
    remote = p.remote_task(second) / "files"
    assert (remote / "notes.txt").read_text() == "mine\nappended\n"
    assert stat.S_IMODE((remote / "data.bin").stat().st_mode) & 0o200
    assert (a / "notes.txt").read_text() == "mine\n"
    # Nothing wrote into files/ after submit: not spoold, not the run, not the result pull.
    assert files_state(a) == as_submitted

    # Editing a file of the project in place (as some editors save) leaves the spool alone.
    before = files_state(b)
    with open(proj / "data.bin", "r+b") as fh:
        fh.write(b"edited in place")
    assert files_state(b) == before and files_state(a)["data.bin"] == before["data.bin"]
    third = task_files(p, p.submit(proj))
    assert (third / "data.bin").read_bytes()[:15] == b"edited in place"
    assert (third / "data.bin").stat().st_ino != (b / "data.bin").stat().st_ino
    assert (third / "notes.txt").stat().st_ino == (b / "notes.txt").stat().st_ino


def test_output_is_kept_once_and_logs_and_fetch_read_every_layout(pipeline: Pipeline, tmp_path: Path) -> None:
    p = pipeline
    task_id = p.submit(p.project(["echo out1; echo err1 >&2; echo out2"]))
    assert p.wait_terminal(task_id)["state"] == "completed"
    outbox = p.home / "spool" / "outbox" / task_id
    # The status and events pulled to merge them are in the task's own record: not kept twice.
    assert sorted(os.listdir(outbox)) == ["logs"]
    assert "stdout.log" not in os.listdir(outbox / "logs") and "output.log" in os.listdir(outbox / "logs")
    events = [json.loads(line) for line in (done(p, task_id) / "events.jsonl").read_text().splitlines()]
    assert [e["state"] for e in events if e.get("source") == "remote"][-1] == "completed"
    assert "out1" in p.cli("logs", task_id, check=True).stdout
    assert p.cli("logs", "--stream", "stderr", task_id, check=True).stdout == "err1\n"
    p.cli("fetch", task_id, "--dest", str(tmp_path / "new"), check=True)
    assert (tmp_path / "new" / "ailabber-logs" / "stdout.log").read_text().startswith("out1\nout2\n")

    # A task left by the previous version (outbox with status and events) and one whose
    # cluster kept stdout and stderr in files of their own: both read as before.
    for name in ("status.json", "events.jsonl"):
        (outbox / name).write_bytes((done(p, task_id) / name).read_bytes())
    logs = outbox / "logs"
    (logs / "output.idx").unlink()
    (logs / "stdout.log").write_text("old-out\n")
    (logs / "stderr.log").write_text("old-err\n")
    assert p.cli("logs", "--stream", "stdout", task_id, check=True).stdout == "old-out\n"
    assert "out1" in p.cli("logs", task_id, check=True).stdout
    p.cli("fetch", task_id, "--dest", str(tmp_path / "old"), check=True)
    assert (tmp_path / "old" / "ailabber-logs" / "stderr.log").read_text() == "old-err\n"
    r = p.cli("clean", task_id, check=True)
    assert f"removed {task_id}" in r.stdout
    assert not outbox.exists() and not done(p, task_id).exists()


def test_clean_removes_only_finished_tasks_whose_results_are_back(pipeline: Pipeline) -> None:
    p = pipeline
    finished = p.submit(p.project(["echo done"]))
    assert p.wait_terminal(finished)["state"] == "completed"
    running = p.submit(p.project(["sleep 60"]))
    p.wait_for(running, lambda s: s["state"] == "running", 60, "running")
    try:
        r = p.cli("clean", check=True)                          # the default: 7 days and older
        assert "nothing to remove" in r.stdout and done(p, finished).exists()
        r = p.cli("clean", "--older-than", "0", "--dry-run", check=True)
        assert f"would remove {finished}" in r.stdout and running not in r.stdout
        assert done(p, finished).exists()
        with reading(Spool(p.home / "spool"), finished):           # as logs or fetch hold it
            r = p.cli("clean", "--older-than", "0", check=True)
        assert f"kept {finished}: another command" in r.stdout and done(p, finished).exists()
        r = p.cli("clean", "--older-than", "0", check=True)
        assert f"removed {finished}" in r.stdout and "freed" in r.stdout
        assert not done(p, finished).exists() and not (p.home / "spool" / "outbox" / finished).exists()
        assert p.cli("status", finished).returncode == 2          # gone: an unknown id
        r = p.cli("clean", running)
        assert r.returncode == 1 and "is running" in r.stderr and "not back from the cluster" in r.stderr
        assert p.status(running)["state"] == "running"
        assert p.cli("clean", "--older-than", "30").returncode == 2   # an age needs its unit
    finally:
        p.cli("cancel", running)
    assert p.wait_terminal(running)["state"] in ("canceled", "terminated")


def test_spoold_retention_removes_old_tasks_and_never_an_unfinished_one(tmp_path: Path) -> None:
    from ailabber.model.task import parse_iso

    p = Pipeline(tmp_path, spoold_extra={"retention": {"max_age": "1s", "keep": 0}})
    p.start_all()
    try:
        old = p.submit(p.project(["echo old"]))
        finished_at = parse_iso(p.wait_terminal(old)["finished_at"]) or 0.0
        running = p.submit(p.project(["sleep 60"]))
        p.wait_for(running, lambda s: s["state"] == "running", 60, "running")
        while time.time() < finished_at + 2:              # older than max_age by the clock
            time.sleep(0.1)
        assert done(p, old).exists()                       # the policy ran at start, before it ended
        p.procs["spoold"].send_signal(signal.SIGHUP)       # a reload applies the policy at once
        deadline = time.monotonic() + 60
        while done(p, old).exists():
            assert time.monotonic() < deadline, p.daemon_logs()
            time.sleep(0.1)
        assert not (p.home / "spool" / "outbox" / old).exists()
        while f"{old}: removed from the spool by retention" not in p.daemon_logs():   # logged after the removal
            assert time.monotonic() < deadline, p.daemon_logs()
            time.sleep(0.1)
        st = p.status(running)
        assert (st["state"], st["stage"]) == ("running", "synced")
    finally:
        p.cli("cancel", running)
        p.stop_all()


def test_as_a_student_shared_read_only_files_run_and_clean_away(student_python: Path) -> None:
    """With a real account (root ignores file modes): the read-only shared copies upload,
    run writable on the cluster, and clean deletes them."""
    import shutil

    from testbed.pipeline import owned_project, students_on_one_root
    from testbed.unix_users import world_dir
    from tests.integration.conftest import STUDENTS

    base = world_dir("ailabber-spool-growth-")
    p = students_on_one_root(base, STUDENTS[:1], student_python)[STUDENTS[0]]
    p.start("remoted")
    p.start("spoold")
    try:
        proj = owned_project(p, "pa", "mkdir -p output; echo run >> notes.txt; cp notes.txt output/",
                             files={"notes.txt": "mine\n"})
        settled(proj)
        first = p.submit(proj)
        assert p.wait_terminal(first, 90)["state"] == "completed"
        with open(proj / "task_config.toml", "a") as fh:      # the file keeps its owner
            fh.write("\n# again\n")
        second = p.submit(proj)
        st = p.wait_terminal(second, 90)
        assert st["state"] == "completed", (st, p.daemon_logs())
        a, b = done(p, first) / "files", done(p, second) / "files"
        assert (a / "notes.txt").stat().st_ino == (b / "notes.txt").stat().st_ino
        assert stat.S_IMODE((b / "notes.txt").stat().st_mode) & 0o222 == 0
        assert (p.remote_task(second) / "files" / "output" / "notes.txt").read_text() == "mine\nrun\n"
        r = p.cli("clean", "--older-than", "0", check=True)
        assert f"removed {first}" in r.stdout and f"removed {second}" in r.stdout, r.stdout
        spool = p.home / "spool"
        assert not done(p, first).exists() and not done(p, second).exists()
        assert os.listdir(spool / "trash") == []
    finally:
        p.stop_all()
        shutil.rmtree(base, ignore_errors=True)
