"""remoted on a full disk: nothing is lost, nothing wedges, and nothing needs a restart.

A full remote root (or a full ``state/``) makes every write of every pass fail until the
admin frees space.  remoted must not believe what it could not write (a state change
computed while the disk was full is derived again once it is not), must keep running,
must say so once, and must catch up by itself: every task reaches its true final state,
the status published equals the private record, and each event is published once.

The disks are real: a small tmpfs is mounted for each test (so these tests need root)
and filled with a file written until the kernel answers ENOSPC.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ailabber.daemonkit.remoted_settings import RemotedSettings
from ailabber.model.task import COMPLETED, RUNNING, TaskStatus, transition
from ailabber.storage.spool import MANIFEST, UPLOAD_MEMBERS, Spool
from ailabber.workstation.submit import submit
from remoted.outage import WAITING_FOR_SPACE
from remoted.records import LAUNCHED, RecordStore, TaskRecord
from testbed.pipeline import TERMINAL, Pipeline, task_processes
from tests.conftest import require

USER = "root"      # as root, a user area's owner is who its jobs run as; root reaches our interpreter
HEARTBEAT_EVERY = 5.0


# --------------------------------------------------------------------------- a real full disk


class Tmpfs:
    """A small tmpfs mounted at ``path`` (made if missing) until ``unmount``."""

    def __init__(self, path: Path, size: str = "8m"):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
        self.mounted = True
        self.filler = path / ".filler"

    def fill(self) -> None:
        """Write one file until the kernel refuses another byte: the filesystem is full."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for chunk in (1 << 20, 4096, 1):
                try:
                    while True:
                        os.write(fd, b"\0" * chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
        finally:
            os.close(fd)
        assert not _can_write(self.path), "the filesystem still takes writes"

    def free(self) -> None:
        self.filler.unlink()

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=True)
            self.mounted = False


def _can_write(d: Path) -> bool:
    probe = d / ".probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.write(fd, b"x")
            return True
        finally:
            os.close(fd)
            probe.unlink()
    except OSError:
        return False


@pytest.fixture
def mounts(pytestconfig: pytest.Config) -> Iterator[list[Tmpfs]]:
    require(pytestconfig, os.geteuid() == 0, "root (to mount a tmpfs)")
    made: list[Tmpfs] = []
    yield made
    for m in reversed(made):
        m.unmount()


# --------------------------------------------------------------------------- unit level


def _running_record(task_id: str = "240101-000000000-aaaaaa") -> TaskRecord:
    status, _ = transition(TaskStatus(id=task_id, owner=USER), RUNNING)
    return TaskRecord(id=task_id, user=USER, status=status, phase=LAUNCHED)


def test_state_dir_is_created_private(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "root")
    store.ensure()
    for d in (store.state_dir, store.active_dir, store.done_dir):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d


def test_state_dir_is_made_private_even_when_it_exists(tmp_path: Path, mounts: list[Tmpfs]) -> None:
    # A mount point for state/ (a tmpfs starts out 1777) must not stay open to everyone.
    mounts.append(Tmpfs(tmp_path / "root" / "state"))
    assert stat.S_IMODE((tmp_path / "root" / "state").stat().st_mode) != 0o700
    RecordStore(tmp_path / "root").ensure()
    assert stat.S_IMODE((tmp_path / "root" / "state").stat().st_mode) == 0o700


def test_a_record_change_is_taken_in_memory_only_once_written(tmp_path: Path, mounts: list[Tmpfs]) -> None:
    fs = Tmpfs(tmp_path / "root" / "state", size="1m")
    mounts.append(fs)
    store = RecordStore(tmp_path / "root")
    store.ensure()
    rec = _running_record()
    store.save(rec)
    on_disk = (store.active_dir / USER / f"{rec.id}.json").read_bytes()
    done, _ = transition(rec.status, COMPLETED, exit_code=0)
    fs.fill()

    with pytest.raises(OSError) as failed:
        store.save(rec, status=done)
    assert failed.value.errno == errno.ENOSPC
    assert rec.status.state == RUNNING and rec.phase == LAUNCHED        # memory as it was
    assert (store.active_dir / USER / f"{rec.id}.json").read_bytes() == on_disk
    assert not (store.done_dir / USER / f"{rec.id}.json").exists()

    fs.free()
    store.save(rec, status=done)
    assert rec.status.state == COMPLETED and rec.phase == "finished"
    assert json.loads((store.done_dir / USER / f"{rec.id}.json").read_text())["status"]["state"] == COMPLETED
    assert not (store.active_dir / USER / f"{rec.id}.json").exists()


def test_remoted_keeps_a_state_change_it_cannot_write_for_the_next_pass(tmp_path: Path,
                                                                       mounts: list[Tmpfs]) -> None:
    """The old failure: the status changed in memory, the write failed, and every later
    pass saw "nothing new" and never wrote it.  Now the change is not made at all until
    it can be written, and then it is made (and published) once."""
    from remoted.daemon import Remoted

    root = tmp_path / "root"
    (root / "users" / USER).mkdir(parents=True)
    fs = Tmpfs(root / "state", size="1m")
    mounts.append(fs)
    d = Remoted(RemotedSettings(root=root, gpus=0, env_cache=tmp_path / "envs"))
    try:
        d.prepare()
        rec = _running_record()
        d.store.save(rec)
        d.active[(rec.user, rec.id)] = rec
        fs.fill()

        assert d.tasks.change(rec, COMPLETED, None, exit_code=0) is False     # no exception: the pass goes on
        assert rec.status.state == RUNNING and (rec.user, rec.id) in d.active
        assert not (root / "users" / USER / "outbox" / rec.id / "status.json").exists()   # nothing unrecorded shown

        fs.free()
        assert d.tasks.change(rec, COMPLETED, None, exit_code=0) is True
        assert rec.status.state == COMPLETED and (rec.user, rec.id) not in d.active
        outbox = root / "users" / USER / "outbox" / rec.id
        assert _public(outbox) == _private(root, rec.id)
        assert [e["state"] for e in _events(outbox)] == [COMPLETED]
    finally:
        d.close()


# --------------------------------------------------------------------------- a real remoted


class Site:
    """A real remoted in a root whose filesystems the test mounts, plus a student's
    transport played by hand: uploads are written as rsync leaves them (files first,
    then the commit marker under a hidden name, renamed into place)."""

    def __init__(self, mounts: list[Tmpfs], *, root_fs: bool, state_fs: bool):
        self.base = Path(tempfile.mkdtemp(prefix="ailabber-diskfull-", dir="/tmp"))
        os.chmod(self.base, 0o755)
        self.p = Pipeline(self.base, gpus=1)
        self.root = self.p.root
        self.root.mkdir()
        self.root_fs = Tmpfs(self.root) if root_fs else None
        self.state_fs = Tmpfs(self.root / "state") if state_fs else None
        mounts.extend(m for m in (self.root_fs, self.state_fs) if m is not None)
        self.area = self.make_area(USER)
        self.ids: list[str] = []

    def make_area(self, user: str) -> Path:
        """The student's directory, owned by the student (remoted runs their jobs as its owner)."""
        area = self.root / "users" / user
        for d in ("incoming/tmp", "incoming/commit", "requests", "tasks", "outbox"):
            (area / d).mkdir(parents=True, exist_ok=True)
        pw = pwd.getpwnam(user)
        for dirpath, _dirs, _files in os.walk(area):
            os.chown(dirpath, pw.pw_uid, pw.pw_gid)
        return area

    def start(self) -> int:
        proc = self.p.start("remoted")
        self.wait(lambda: (self.root / "heartbeat.json").exists(), "remoted's first pass")
        return proc.pid

    # --- uploads -------------------------------------------------------------------------
    def stage(self, commands: list[str]) -> str:
        """Everything of an upload but its commit: what rsync leaves before the marker."""
        proj = self.base / f"proj{len(self.ids)}"
        proj.mkdir()
        cmds = ", ".join(json.dumps(c) for c in commands)
        (proj / "task_config.toml").write_text(textwrap.dedent(f"""\
            [resources]
            time_limit = "3:00"
            [run]
            commands = [{cmds}]
            """))
        spool = Spool(self.base / f"stage{len(self.ids)}")
        task_id = submit(proj / "task_config.toml", spool).task_id
        src = spool.root / "new" / task_id
        dst = self.area / "incoming" / "tmp" / task_id
        dst.mkdir()
        for m in UPLOAD_MEMBERS:
            (shutil.copytree if (src / m).is_dir() else shutil.copy2)(src / m, dst / m)
        shutil.copy2(src / MANIFEST, self.area / "incoming" / "commit" / f".{task_id}.json.tmp")
        self.ids.append(task_id)
        return task_id

    def commit(self, task_id: str) -> None:
        commit = self.area / "incoming" / "commit"
        os.rename(commit / f".{task_id}.json.tmp", commit / f"{task_id}.json")

    def push(self, commands: list[str]) -> str:
        task_id = self.stage(commands)
        self.commit(task_id)
        return task_id

    def request_cancel(self, task_id: str) -> None:
        """An (empty) cancel request, made under a hidden name and renamed into place."""
        req = self.area / "requests"
        (req / f".{task_id}.tmp").touch()
        os.rename(req / f".{task_id}.tmp", req / f"{task_id}.cancel")

    # --- observing -----------------------------------------------------------------------
    def outbox(self, task_id: str) -> Path:
        return self.area / "outbox" / task_id

    def status(self, task_id: str) -> dict[str, Any] | None:
        try:
            return _public(self.outbox(task_id))
        except (FileNotFoundError, ValueError):
            return None

    def wait(self, pred: Callable[[], object], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}\n{self.p.daemon_logs()[-6000:]}")

    def wait_state(self, task_id: str, pred: Callable[[dict[str, Any]], bool], what: str,
                   timeout: float = 60) -> dict[str, Any]:
        self.wait(lambda: (s := self.status(task_id)) is not None and pred(s), f"{task_id}: {what}", timeout)
        st = self.status(task_id)
        assert st is not None
        return st

    def passes_after(self, t: float) -> None:
        """Return once a whole pass of remoted began after ``t`` (and ended): the root's
        heartbeat is written at the end of a pass, at most every few seconds, so the
        second heartbeat written after ``t`` ends a pass that started after ``t``."""
        beats: list[float] = []

        def seen() -> bool:
            try:
                at = float(json.loads((self.root / "heartbeat.json").read_text())["at"])
            except (OSError, ValueError, KeyError):
                return False
            if at > t and at not in beats:
                beats.append(at)
            return len(beats) >= 2

        self.wait(seen, "two passes of remoted", timeout=4 * HEARTBEAT_EVERY + 30)

    def log(self) -> str:
        return self.p.daemon_logs()

    def cleanup(self) -> None:
        self.p.stop_all()
        for task_id in self.ids:
            for proc in task_processes(task_id):
                proc.kill()
        for m in (self.state_fs, self.root_fs):
            if m is not None:
                m.unmount()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def site_factory(mounts: list[Tmpfs]) -> Iterator[Callable[..., Site]]:
    sites: list[Site] = []

    def make(**kw: bool) -> Site:
        sites.append(Site(mounts, **kw))
        return sites[-1]

    yield make
    for s in sites:
        s.cleanup()


def _public(outbox: Path) -> dict[str, Any]:
    return dict(json.loads((outbox / "status.json").read_text()))


def _private(root: Path, task_id: str) -> dict[str, Any]:
    for half in ("done", "active"):
        p = root / "state" / half / USER / f"{task_id}.json"
        if p.exists():
            return dict(json.loads(p.read_text())["status"])
    raise AssertionError(f"no record for {task_id}")


def _events(outbox: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (outbox / "events.jsonl").read_text().splitlines()]


def _caught_up(s: Site, task_id: str, first_seq: int = 1) -> dict[str, Any]:
    """The published status is the private record, and the events are the record's
    history exactly once: numbered without gap or repeat up to the status."""
    st = s.status(task_id)
    assert st == _private(s.root, task_id), (st, _private(s.root, task_id))
    events = _events(s.outbox(task_id))
    assert [e["seq"] for e in events] == list(range(first_seq, st["seq"] + 1)), events
    assert (events[-1]["state"], events[-1]["reason"]) == (st["state"], st["reason"]), events
    assert [e["state"] for e in events].count(st["state"]) == 1, events
    return st


def _wait_loop(go: Path) -> str:
    """A command that idles (writing nothing) until the test creates ``go``."""
    return f"while [ ! -e {go} ]; do sleep 0.1; done"


def test_full_state_dir_delays_changes_and_loses_none(site_factory: Callable[..., Site]) -> None:
    """``state/`` full, the students' areas not: a job that ends, a cancel and a new
    upload arrive meanwhile.  None of them is acted on while it cannot be recorded, the
    upload says why it waits, and all of them complete once space is back."""
    s = site_factory(root_fs=False, state_fs=True)
    assert s.state_fs is not None
    pid = s.start()
    assert stat.S_IMODE((s.root / "state").stat().st_mode) == 0o700

    go_finish, go_never = s.base / "finish", s.base / "never"
    finishes = s.push([_wait_loop(go_finish), "echo finished"])
    canceled = s.push([_wait_loop(go_never)])
    for t in (finishes, canceled):
        s.wait_state(t, lambda st: st["state"] == RUNNING, "running")
    waiting = s.stage(["echo accepted late"])

    s.state_fs.fill()
    s.commit(waiting)
    s.request_cancel(canceled)
    go_finish.touch()
    st = s.wait_state(waiting, lambda st: st.get("message") == WAITING_FOR_SPACE, "shown as waiting for space")
    assert (st["state"], st["reason"]) == ("pending", "queued")
    result = s.p.remote_task(finishes) / "run" / "result.json"
    s.wait(result.exists, "the finished job's result")
    s.passes_after(result.stat().st_mtime)

    # Polled twice with the result there, and nothing of it recorded or shown yet.
    assert s.status(finishes)["state"] == RUNNING == _private(s.root, finishes)["state"]   # type: ignore[index]
    assert s.status(canceled)["state"] == RUNNING == _private(s.root, canceled)["state"]   # type: ignore[index]
    assert (s.area / "requests" / f"{canceled}.cancel").exists()     # kept until it can be recorded
    assert not (s.root / "state" / "active" / USER / f"{waiting}.json").exists()

    s.state_fs.free()
    for t in (finishes, canceled, waiting):
        s.wait_state(t, lambda st: st["state"] in TERMINAL, "a final state after space returned")
    assert s.p.procs["remoted"].poll() is None and s.p.procs["remoted"].pid == pid    # no restart
    assert _caught_up(s, finishes)["state"] == COMPLETED
    assert (_caught_up(s, canceled)["reason"]) == "canceled_by_user"
    assert _caught_up(s, waiting, first_seq=2)["state"] == COMPLETED   # seq 1 was the waiting notice
    assert s.log().count("WARNING cannot write task records") == 1, "logged once, not once per pass"
    assert "writing task records works again" in s.log()


def test_full_remote_root_keeps_remoted_alive_and_catches_up(site_factory: Callable[..., Site]) -> None:
    """The whole root on one full filesystem: records, outboxes, limits.json, remoted.json
    and the heartbeat all fail.  A new upload and a new student arrive meanwhile, a job
    keeps running; once space is back, everything is done as if nothing had happened."""
    s = site_factory(root_fs=True, state_fs=False)
    assert s.root_fs is not None
    pid = s.start()
    go = s.base / "go"
    running = s.push([_wait_loop(go), "echo survived"])
    s.wait_state(running, lambda st: st["state"] == RUNNING, "running")
    late = s.stage(["echo accepted late"])
    newcomer = "daemon"

    s.root_fs.fill()
    s.commit(late)
    newcomer_area = s.make_area(newcomer)      # directories still fit; their files do not
    s.wait(lambda: "cannot write task records" in s.log() and "cannot write limits.json" in s.log(),
           "remoted failing to record the upload and to publish the new area's limits")
    assert s.p.procs["remoted"].poll() is None
    assert s.status(late) is None and not (newcomer_area / "limits.json").exists()

    freed = time.time()
    s.root_fs.free()
    s.wait_state(late, lambda st: st["state"] in TERMINAL, "the late upload's final state")
    go.touch()
    s.wait_state(running, lambda st: st["state"] in TERMINAL, "the running task's final state")
    s.wait(lambda: (newcomer_area / "limits.json").exists() and (newcomer_area / "remoted.json").exists(),
           "the newcomer's limits.json and remoted.json")
    s.passes_after(freed)      # the heartbeat is written again
    assert s.p.procs["remoted"].poll() is None and s.p.procs["remoted"].pid == pid
    assert _caught_up(s, late)["state"] == COMPLETED
    assert _caught_up(s, running)["state"] == COMPLETED
    log = s.log()
    for what in ("task records", "limits.json"):
        assert log.count(f"WARNING cannot write {what}") == 1, what
    assert "pass failed" not in log
    assert not [p for p in s.root.rglob(".*") if ".tmp-" in p.name], "temporary files left behind by failed writes"


def test_an_outbox_owed_across_a_restart_catches_up(site_factory: Callable[..., Site]) -> None:
    """Only the students' side full (their outbox): a job ends, its record says so, the
    outbox cannot.  remoted restarts before space returns; the publication it owed is
    remembered in ``state/owed/`` and made once space is back, so the student's side
    never waits for a final state that was recorded but not shown."""
    s = site_factory(root_fs=False, state_fs=False)
    outbox_fs = Tmpfs(s.area / "outbox", size="4m")
    s.start()
    go = s.base / "go"
    task = s.push([_wait_loop(go), "echo done"])
    s.wait_state(task, lambda st: st["state"] == RUNNING, "running")
    outbox_fs.fill()
    try:
        go.touch()
        s.wait(lambda: _private(s.root, task)["state"] == COMPLETED, "the completed record")
        s.wait(lambda: (s.root / "state" / "owed" / USER / task).exists(), "the owed publication remembered")
        assert s.status(task)["state"] == RUNNING          # type: ignore[index]
        s.p.kill("remoted")
        s.start()
        outbox_fs.free()
        st = s.wait_state(task, lambda st: st["state"] in TERMINAL, "the final state after the restart")
        assert st == _private(s.root, task)
        s.wait(lambda: not (s.root / "state" / "owed" / USER / task).exists(), "the owed mark cleared")
    finally:
        outbox_fs.unmount()
