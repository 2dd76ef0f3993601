"""remoted against a hostile student: anything under ``<root>/users/<user>/`` may be forged.

Uploads are pushed straight into the remote spool (exactly the files spoold would send),
so each test controls every byte and every file type a student's transport could place.
A real remoted process runs in a temporary root.  Each test names two users: the attacker
(``eve``) and a bystander (``zed``, sorting after her) whose ordinary task must not be
disturbed, and remoted must keep serving everyone.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from ailabber.model import ids
from ailabber.storage.spool import MANIFEST, UPLOAD_MEMBERS
from testbed.pipeline import TERMINAL, Pipeline, task_processes
from tests.hostile_common import RemotedUnderTest, copy_upload, submit_project


def _accounts() -> tuple[str, str]:
    """Two user areas, the attacker's sorting first.  As root, remoted runs each task as the
    owner of its user directory, so both must be real accounts owning their areas."""
    if os.geteuid() != 0:
        return "eve", "zed"
    # The bystander is root itself, so its jobs run wherever the interpreter is reachable;
    # the attacker is any other account (its own jobs need not be able to start).
    names = {p.pw_name for p in pwd.getpwall()}
    for a in ("daemon", "bin", "nobody"):
        if a in names and a < "root":
            return a, "root"
    return "nobody", "root"


EVE, ZED = _accounts()
AREA_DIRS = ("incoming/tmp", "incoming/commit", "requests", "tasks", "outbox")


# --------------------------------------------------------------------------- helpers


class Remote(RemotedUnderTest):
    """A running remoted plus helpers to play a student's transport by hand."""

    def __init__(self, base: Path, gpus: int = 1):
        # Jobs may run as other accounts: everything they need must be reachable for them.
        base = Path(tempfile.mkdtemp(prefix="ailabber-hostile-", dir="/tmp"))
        os.chmod(base, 0o755)
        self.base = base
        self.p = Pipeline(base, gpus=gpus)
        self.root = self.p.root
        self._n = 0
        self.ids: list[str] = []

    def area(self, user: str) -> Path:
        a = self.root / "users" / user
        fresh = not a.exists()
        for d in AREA_DIRS:
            (a / d).mkdir(parents=True, exist_ok=True)
        if fresh:
            _chown_tree(a, user)
        return a

    def build(self, commands: list[str], *, gpus: int = 0, time_limit: str = "2:00",
              files: dict[str, str] | None = None, raw_toml: str | None = None) -> tuple[str, Path]:
        """A task directory exactly as ``submit`` writes it (task.toml, meta, files, manifest)."""
        self._n += 1
        proj = self.base / f"proj{self._n}"
        proj.mkdir()
        for rel, text in (files or {}).items():
            (proj / rel).parent.mkdir(parents=True, exist_ok=True)
            (proj / rel).write_text(text)
        task_id, task_dir = submit_project(proj, self.base / f"stage{self._n}", commands, gpus=gpus,
                                           time_limit=time_limit)
        if raw_toml is not None:
            (task_dir / "task.toml").write_text(raw_toml)
            _rewrite_manifest(task_dir, task_id)
        self.ids.append(task_id)
        return task_id, task_dir

    def upload(self, user: str, task_dir: Path, task_id: str | None = None, *,
               commit: bool = True) -> str:
        """What spoold's two rsync transfers leave behind: files, then the commit marker."""
        task_id = task_id or task_dir.name
        area = self.area(user)
        dst = area / "incoming/tmp" / task_id
        # Build beside the area and move in with one rename, as a finished rsync leaves it.
        stage = self.base / f"upload-{task_id}-{self._n}"
        stage.mkdir(parents=True)
        copy_upload(task_dir, stage)
        _chown_tree(stage, user)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists():
            shutil.rmtree(dst)
        os.rename(stage, dst)
        if commit:
            self.commit(user, task_dir / MANIFEST, task_id)
        return task_id

    def commit(self, user: str, manifest: Path | bytes, task_id: str) -> None:
        """The commit marker (a manifest file, or forged bytes), written as rsync writes
        it: a hidden temporary name, then one rename, so remoted never sees (or consumes)
        a half-made marker."""
        commit_dir = self.area(user) / "incoming/commit"
        tmp = commit_dir / f".{task_id}.json.tmp"
        tmp.write_bytes(manifest if isinstance(manifest, bytes) else manifest.read_bytes())
        _chown_tree(tmp, user)
        os.rename(tmp, commit_dir / f"{task_id}.json")

    def push(self, user: str, commands: list[str], **kw: Any) -> str:
        task_id, task_dir = self.build(commands, **kw)
        return self.upload(user, task_dir)

    def bystander_completes(self, timeout: float = 30) -> None:
        """The health check: an ordinary task of another user still goes all the way."""
        task_id = self.push(ZED, ["echo fine"])
        st = self.wait_terminal(ZED, task_id, timeout)
        assert st["state"] == "completed", st


def _chown_tree(path: Path, user: str) -> None:
    if os.geteuid() != 0:
        return
    pw = pwd.getpwnam(user)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            os.chown(name, pw.pw_uid, pw.pw_gid, follow_symlinks=False)


def _rewrite_manifest(task_dir: Path, task_id: str) -> None:
    from ailabber.storage.manifest import build_manifest

    (task_dir / MANIFEST).write_text(json.dumps(build_manifest(task_dir, task_id, list(UPLOAD_MEMBERS))))


def _tree_listing(path: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = str(full.relative_to(path))
            if full.is_symlink():
                out[rel] = "-> " + os.readlink(full)
            elif full.is_file():
                out[rel] = full.read_bytes()
            else:
                out[rel] = "dir"
    return out


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[Remote]:
    r = Remote(tmp_path)
    r.area(EVE)
    r.area(ZED)
    r.p.start("remoted")
    yield r
    r.stop()


def _new_id() -> str:
    return ids.new_task_id()


# --------------------------------------------------------------------------- sanity: what already holds


def test_cancel_request_for_another_users_task_is_ignored(remote: Remote) -> None:
    victim = remote.push(ZED, ["sleep 3"])
    remote.wait(ZED, victim, lambda s: s["state"] == "running", what="running")
    (remote.root / "users" / EVE / "requests" / f"{victim}.cancel").write_text("x\n")
    st = remote.wait_terminal(ZED, victim)
    assert st["state"] == "completed", st
    assert not (remote.root / "users" / EVE / "requests" / f"{victim}.cancel").exists()


@pytest.mark.parametrize("manifest", [
    b"not json at all",
    b"\xff\xfe garbage",
    b"[]",
    b'{"version": 2, "files": {}}',
    b'{"version": 1, "files": {"../../zed/tasks/x": 1}}',
    b'{"version": 1, "files": {"/etc/passwd": 1}}',
    b'{"version": 1, "files": {"task.toml": "big"}}',
    b'{"version": 1, "files": {"missing": 3}}',
    b'{"version": 1, "files": {}, "symlinks": {"../escape": "x"}}',
    b'{"version": 1, "files": []}',
], ids=["text", "binary", "list", "v2", "dotdot", "absolute", "size-str", "missing", "link-dotdot", "files-list"])
def test_forged_manifest_is_rejected_and_remoted_keeps_serving(remote: Remote, manifest: bytes) -> None:
    task_id, task_dir = remote.build(["echo should-not-run > ran"])
    remote.upload(EVE, task_dir, commit=False)
    remote.commit(EVE, manifest, task_id)
    st = remote.wait_terminal(EVE, task_id)
    assert (st["state"], st["reason"]) == ("failed", "rejected"), st
    assert not list((remote.root / "users" / EVE / "tasks").rglob("ran"))
    remote.bystander_completes()


@pytest.mark.parametrize("name", ["../x.json", "x.json", "..json", "a b.json", "240101-000000000-aaaaaa.json.json",
                                  "240101-000000000-AAAAAA.json", ".240101-000000000-aaaaaa.json"])
def test_badly_named_markers_are_ignored(remote: Remote, name: str) -> None:
    commit = remote.root / "users" / EVE / "incoming/commit"
    if "/" in name:
        (commit / "..").mkdir(exist_ok=True)
    (commit / name).write_text("{}")
    remote.bystander_completes()
    assert remote.alive()
    assert not list((remote.root / "users" / EVE / "tasks").iterdir())


def test_huge_file_counts_and_sizes_in_manifest_do_not_matter(remote: Remote) -> None:
    task_id, task_dir = remote.build(["true"])
    remote.upload(EVE, task_dir, commit=False)
    files = {f"files/f{i}": 10**18 for i in range(5000)}
    remote.commit(EVE, json.dumps({"version": 1, "files": files, "symlinks": {}}).encode(), task_id)
    st = remote.wait_terminal(EVE, task_id)
    assert (st["state"], st["reason"]) == ("failed", "rejected"), st
    remote.bystander_completes()


# --------------------------------------------------------------------------- (a) wedging the daemon


def test_commit_marker_that_is_a_directory_does_not_wedge_remoted(remote: Remote) -> None:
    (remote.root / "users" / EVE / "incoming/commit" / f"{_new_id()}.json").mkdir()
    remote.bystander_completes(timeout=20)


def test_commit_marker_that_is_a_fifo_does_not_hang_remoted(remote: Remote) -> None:
    fifo = remote.root / "users" / EVE / "incoming/commit" / f"{_new_id()}.json"
    os.mkfifo(fifo)
    try:
        remote.bystander_completes(timeout=20)
    finally:
        _unblock_fifo(fifo)


def test_commit_marker_symlink_to_endless_file_is_not_read_whole(remote: Remote) -> None:
    # Cap remoted's address space so the endless read fails fast instead of eating the host.
    proc = psutil.Process(remote.p.procs["remoted"].pid)
    proc.rlimit(psutil.RLIMIT_AS, (2 << 30, 2 << 30))
    marker = remote.root / "users" / EVE / "incoming/commit" / f"{_new_id()}.json"
    marker.symlink_to("/dev/zero")
    remote.bystander_completes(timeout=20)
    assert remote.alive()


def test_cancel_request_that_is_a_directory_does_not_wedge_remoted(remote: Remote) -> None:
    (remote.root / "users" / EVE / "requests" / "whatever.cancel").mkdir()
    remote.bystander_completes(timeout=20)


def test_requests_dir_replaced_by_a_file_does_not_wedge_remoted(remote: Remote) -> None:
    req = remote.root / "users" / EVE / "requests"
    req.rmdir()
    req.write_text("not a directory")
    remote.bystander_completes(timeout=20)


def test_commit_dir_replaced_by_a_file_does_not_wedge_remoted(remote: Remote) -> None:
    commit = remote.root / "users" / EVE / "incoming/commit"
    commit.rmdir()
    commit.write_text("not a directory")
    remote.bystander_completes(timeout=20)


def test_user_area_that_is_a_file_is_skipped(remote: Remote) -> None:
    (remote.root / "users" / "mallory").write_text("x")
    remote.bystander_completes()


def test_deeply_nested_task_toml_is_rejected_without_wedging(remote: Remote) -> None:
    nested = "[run]\ncommands = " + "[" * 5000 + "]" * 5000 + "\n"
    task_id, task_dir = remote.build(["true"], raw_toml=nested)
    remote.upload(EVE, task_dir)
    st = remote.wait_terminal(EVE, task_id, timeout=20)
    assert (st["state"], st["reason"]) == ("failed", "rejected"), st
    remote.bystander_completes(timeout=20)


def test_meta_json_that_is_a_directory_does_not_wedge_remoted(remote: Remote) -> None:
    task_id, task_dir = remote.build(["true"])
    (task_dir / "meta.json").unlink()
    (task_dir / "meta.json").mkdir()
    _rewrite_manifest(task_dir, task_id)
    remote.upload(EVE, task_dir)
    st = remote.wait_terminal(EVE, task_id, timeout=20)
    assert st["state"] in TERMINAL
    remote.bystander_completes(timeout=20)


def test_meta_json_that_is_a_fifo_does_not_hang_remoted(remote: Remote) -> None:
    task_id, task_dir = remote.build(["true"])
    remote.upload(EVE, task_dir, commit=False)
    meta = remote.root / "users" / EVE / "incoming/tmp" / task_id / "meta.json"
    meta.unlink()
    os.mkfifo(meta)
    _rewrite_manifest(remote.root / "users" / EVE / "incoming/tmp" / task_id, task_id)
    remote.commit(EVE, remote.root / "users" / EVE / "incoming/tmp" / task_id / MANIFEST, task_id)
    try:
        remote.bystander_completes(timeout=20)
    finally:
        for p in (remote.root / "users" / EVE).rglob("meta.json"):
            if p.is_fifo():
                _unblock_fifo(p)


def test_forged_result_with_illegal_state_does_not_wedge_remoted(remote: Remote) -> None:
    task_id = remote.push(ZED, ["sleep 30"])
    remote.wait(ZED, task_id, lambda s: s["state"] == "running", what="running")
    run = remote.root / "users" / ZED / "tasks" / task_id / "run"
    (run / "result.json").write_text(json.dumps({"state": "canceled", "reason": "canceled_by_user"}))
    remote.bystander_completes(timeout=20)


def test_forged_result_of_the_wrong_types_does_not_wedge_remoted(remote: Remote) -> None:
    """A result.json that survives its job (the wrapper was killed before writing its
    own) with values of the wrong types ends that task, and only that task."""
    task_id = remote.push(ZED, ["sleep 30"])
    remote.wait(ZED, task_id, lambda s: s["state"] == "running", what="running")
    run = remote.root / "users" / ZED / "tasks" / task_id / "run"
    forged = {"state": "failed", "reason": ["x"], "exit_code": "7", "message": {"m": 1}, "started_at": []}
    (run / ".forged").write_text(json.dumps(forged))
    os.rename(run / ".forged", run / "result.json")
    for proc in task_processes(task_id):
        try:
            if "remoted.jobwrap" in " ".join(proc.cmdline()):
                proc.kill()              # no result of its own replaces the forged one
        except psutil.Error:             # gone (or a zombie) meanwhile
            continue
    st = remote.wait_terminal(ZED, task_id, timeout=30)
    assert st["state"] == "failed" and st["exit_code"] is None and st["message"] is None, st
    remote.bystander_completes(timeout=20)


def test_an_upload_with_a_very_deep_directory_does_not_wedge_remoted(remote: Remote) -> None:
    """Intake removes what is not part of a task; a tree thousands of levels deep there
    is removed without recursion, and everyone else is served meanwhile."""
    task_id, task_dir = remote.build(["true"])
    remote.upload(EVE, task_dir, commit=False)
    fd = os.open(remote.root / "users" / EVE / "incoming/tmp" / task_id, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(3000):
            os.mkdir("deep", dir_fd=fd)
            nxt = os.open("deep", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)
    remote.commit(EVE, task_dir / MANIFEST, task_id)
    remote.wait_terminal(EVE, task_id, timeout=60)
    assert not (remote.root / "users" / EVE / "tasks" / task_id / "deep").exists()
    remote.bystander_completes()
    assert "pass failed" not in remote.p.daemon_logs()


def test_a_deeply_nested_commit_marker_does_not_wedge_remoted(remote: Remote) -> None:
    task_id, task_dir = remote.build(["true"])
    remote.upload(EVE, task_dir, commit=False)
    remote.commit(EVE, b"[" * 100_000, task_id)
    st = remote.wait_terminal(EVE, task_id)
    assert (st["state"], st["reason"]) == ("failed", "rejected"), st
    remote.bystander_completes()
    assert "pass failed" not in remote.p.daemon_logs()


def test_forged_result_does_not_free_a_gpu_that_is_still_in_use(remote: Remote) -> None:
    task_id = remote.push(ZED, ["sleep 30"], gpus=1)
    remote.wait(ZED, task_id, lambda s: s["state"] == "running", what="running")
    run = remote.root / "users" / ZED / "tasks" / task_id / "run"
    (run / "result.json").write_text(json.dumps({"state": "completed", "exit_code": 0}))
    time.sleep(2)
    st = remote.status(ZED, task_id)
    assert st is not None
    if st["state"] in TERMINAL:
        # Then the job must really be over, or the next GPU task gets a busy GPU.
        assert task_processes(task_id) == [], "task reported finished while its processes still run"
    other = remote.push(ZED, ["echo $CUDA_VISIBLE_DEVICES"], gpus=1)
    time.sleep(2)
    st_other = remote.status(ZED, other)
    assert st_other is None or st_other["state"] == "pending", st_other


def test_forged_started_pid_after_restart_does_not_wedge_remoted(tmp_path: Path) -> None:
    r = Remote(tmp_path)
    r.area(ZED)
    r.area(ZED)
    try:
        r.p.start("remoted", AILABBER_CRASH_AT="remoted:after_submit")
        task_id = r.push(ZED, ["sleep 20"])
        r.p.procs["remoted"].wait(30)
        run = r.root / "users" / ZED / "tasks" / task_id / "run"
        deadline = time.monotonic() + 20
        while not (run / "started.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        (run / "started.json").write_text(json.dumps({"pid": -5, "started_at": "x"}))
        r.p.start("remoted")
        r.bystander_completes(timeout=20)
    finally:
        r.stop()


# --------------------------------------------------------------------------- (b)/(c) outside the user's area


def test_incoming_symlink_cannot_steal_another_users_upload(tmp_path: Path) -> None:
    r = Remote(tmp_path)
    r.area(ZED)
    eve = r.root / "users" / EVE
    eve.mkdir(parents=True)
    (eve / "incoming").symlink_to(r.root / "users" / ZED / "incoming")
    for d in ("requests", "tasks", "outbox"):
        (eve / d).mkdir()
    _chown_tree(eve, EVE)
    try:
        task_id, task_dir = r.build(["echo zed-secret"], files={"secret.txt": "zed's work\n"})
        r.upload(ZED, task_dir)   # already there when remoted starts: the order is eve, then zed
        r.p.start("remoted")
        st = r.wait_terminal(ZED, task_id)
        assert st["state"] == "completed", st
        assert not (eve / "tasks" / task_id).exists()
        assert not (eve / "outbox" / task_id).exists()
    finally:
        r.stop()


def test_tasks_symlink_does_not_move_tasks_out_of_the_area(remote: Remote, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    tasks = remote.root / "users" / EVE / "tasks"
    tasks.rmdir()
    tasks.symlink_to(outside)
    task_id = remote.push(EVE, ["true"])
    remote.wait_terminal(EVE, task_id, timeout=20)
    assert list(outside.iterdir()) == []


def test_preplaced_task_dir_symlink_is_not_used(remote: Remote, tmp_path: Path) -> None:
    victim_id = remote.push(ZED, ["echo zed"])
    assert remote.wait_terminal(ZED, victim_id)["state"] == "completed"
    victim_dir = remote.root / "users" / ZED / "tasks" / victim_id
    before = _tree_listing(victim_dir)
    task_id, task_dir = remote.build(["touch ran-here"])
    remote.upload(EVE, task_dir, commit=False)
    tasks = remote.root / "users" / EVE / "tasks"
    if tasks.stat().st_uid != 0:      # a tasks/ of her own: remoted never adopts it
        (tasks / task_id).symlink_to(victim_dir)
    remote.commit(EVE, task_dir / MANIFEST, task_id)
    remote.wait_terminal(EVE, task_id, timeout=20)
    assert _tree_listing(victim_dir) == before
    assert not (victim_dir / "files" / "ran-here").exists()
    remote.bystander_completes()


def test_outbox_symlink_does_not_redirect_writes(remote: Remote, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    task_id, task_dir = remote.build(["echo hello"])
    (remote.root / "users" / EVE / "outbox" / task_id).symlink_to(outside)
    remote.upload(EVE, task_dir)
    time.sleep(4)
    remote.bystander_completes()
    assert list(outside.iterdir()) == []


def test_symlinked_event_and_log_files_do_not_write_outside(remote: Remote, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    task_id, task_dir = remote.build(["echo INJECTED"])
    out = remote.root / "users" / EVE / "outbox" / task_id
    (out / "logs").mkdir(parents=True)
    (out / "events.jsonl").symlink_to(victim)
    for name in ("output.log", "stdout.log", "wrapper.log", "setup.log"):
        (out / "logs" / name).symlink_to(victim)
    remote.upload(EVE, task_dir)
    time.sleep(4)
    remote.bystander_completes()
    assert victim.read_text() == "precious\n"


def test_run_dir_symlink_does_not_redirect_job_files(remote: Remote, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    task_id, task_dir = remote.build(["true"])
    upload = remote.upload(EVE, task_dir, commit=False)
    up = remote.root / "users" / EVE / "incoming/tmp" / upload
    (up / "run").symlink_to(outside)
    remote.commit(EVE, task_dir / MANIFEST, task_id)
    remote.wait_terminal(EVE, task_id, timeout=20)
    remote.bystander_completes()
    assert list(outside.iterdir()) == []


def test_same_task_id_from_another_user_does_not_evict_a_task(remote: Remote) -> None:
    victim = remote.push(ZED, ["sleep 4"])
    remote.wait(ZED, victim, lambda s: s["state"] == "running", what="running")
    _, eve_dir = remote.build(["sleep 1"])
    remote.upload(EVE, eve_dir, task_id=victim)
    st = remote.wait_terminal(ZED, victim, timeout=30)
    assert st["state"] == "completed", st
    st_eve = remote.wait_terminal(EVE, victim, timeout=30)
    assert st_eve["owner"] == EVE


def _unblock_fifo(path: Path) -> None:
    """Open the FIFO for writing (and close it) so a reader blocked in open() returns."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    os.close(fd)


def test_a_queued_task_whose_run_dir_the_student_spoiled_fails_alone(remote: Remote) -> None:
    """The job's spec never passes through the student's run directory, so spoiling it
    while the task waits changes nothing remoted does; a job that then cannot record its
    result (the student put a directory where it goes) fails, and nobody else's."""
    running = remote.push(ZED, ["sleep 30"], gpus=1)
    remote.wait(ZED, running, lambda s: s["state"] == "running", what="running")
    waiting = remote.push(EVE, ["echo never"], gpus=1)
    remote.wait(EVE, waiting, lambda s: s.get("reason") == "waiting_for_gpu", what="waiting for the GPU")
    run = remote.root / "users" / EVE / "tasks" / waiting / "run"
    (run / "job.json").mkdir(parents=True)
    (run / "result.json" / "blocker").mkdir(parents=True)
    _chown_tree(run, EVE)
    (remote.root / "users" / ZED / "requests" / f"{running}.cancel").write_text("")
    st = remote.wait_terminal(EVE, waiting, timeout=30)
    assert (st["state"], st["reason"]) == ("failed", "lost"), st
    remote.bystander_completes()
    assert remote.alive()


def test_a_cancel_that_overtakes_its_upload_waits_for_it(remote: Remote) -> None:
    """spoold sends a cancel as soon as the task is uploaded; if the request is seen before
    the upload's commit marker, it is kept until the task is accepted, then carried out."""
    task_id, task_dir = remote.build(["sleep 30"])
    remote.upload(ZED, task_dir, commit=False)
    request = remote.root / "users" / ZED / "requests" / f"{task_id}.cancel"
    request.write_text("")
    time.sleep(2.5)                                    # remoted's passes see the request first
    assert request.exists(), "the cancel was dropped before its task arrived"
    remote.commit(ZED, task_dir / MANIFEST, task_id)
    st = remote.wait_terminal(ZED, task_id)
    assert (st["state"], st["reason"]) == ("canceled", "canceled_by_user"), st
    assert not request.exists()


def test_a_flood_of_events_cannot_keep_remoted_busier_than_its_passes_take(remote: Remote) -> None:
    """Filesystem events only wake remoted; a student making them in a loop gets passes
    no closer together than the last one took (at least MIN_PASS_GAP) whenever that one
    found nothing to do: remoted's own log shows every gap between the end of such a
    pass and the start of the next."""
    from ailabber.daemonkit.loop import MAX_PASS_GAP, MIN_PASS_GAP

    requests = remote.root / "users" / EVE / "requests"
    stop = time.monotonic() + 3
    n = 0
    while time.monotonic() < stop:          # new entries as fast as one process makes them
        (requests / f"junk{n}").touch()
        (requests / f"junk{n}").unlink()
        n += 1
    remote.bystander_completes()
    passes = []     # (duration, rest before it, found nothing to do), as remoted's loop measured them
    for line in remote.p.daemon_logs().splitlines():
        m = re.search(r"remoted: pass took ([\d.]+)s after a rest of ([\d.]+)s", line)
        if m:
            passes.append((float(m[1]), float(m[2]), "found nothing to do" in line))
    assert sum(idle for *_, idle in passes) > 10
    for (took0, _r0, idle0), (_t1, rest1, _i1) in zip(passes, passes[1:]):
        if idle0:   # both figures are rounded in the log (to 1 ms and 0.1 ms)
            assert rest1 >= min(MAX_PASS_GAP, max(MIN_PASS_GAP, took0)) - 0.0006, (took0, rest1)
