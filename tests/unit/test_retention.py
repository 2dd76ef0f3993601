"""Which finished tasks a retention policy removes (model/retention.py), how spoold.yaml
states one, and the spool side of removing (storage/cleaning.py, storage/trash.py)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from ailabber.daemonkit.spoold_settings import load_spoold_settings
from ailabber.daemonkit.yamlfile import SettingsError
from ailabber.model.quantities import DAY, parse_age, parse_size
from ailabber.model.retention import Finished, Usage, choose
from ailabber.model.retention_policy import DEFAULT_POLICY, Policy
from ailabber.model.task import TaskStatus, now_iso, transition
from ailabber.storage import names, statusfile
from ailabber.storage.cleaning import clean, measure, survey
from ailabber.storage.notices import queue
from ailabber.storage.spool import DONE, SYNCED, Spool
from ailabber.storage.trash import (
    LOCK,
    TRASH,
    TaskGone,
    TaskInUse,
    delete_tree,
    empty_trash,
    reading,
    remove_task,
)

NOW = 1_800_000_000.0


def task(n: int, days_ago: float, blocker: str | None = None, usage: Usage | None = None) -> Finished:
    return Finished(f"t{n}", NOW - days_ago * DAY, blocker, usage)


def ids(removals: list) -> list[str]:
    return [r.id for r in removals]


# --------------------------------------------------------------------------- the policy


def test_age_removes_the_old_oldest_first_and_never_a_held_task() -> None:
    tasks = [task(3, 40), task(1, 90), task(2, 31, blocker="results_error"), task(4, 29), task(5, 0.1)]
    assert ids(choose(tasks, Policy(max_age=30 * DAY), NOW)) == ["t1", "t3"]
    assert ids(choose(tasks, Policy(max_age=0), NOW)) == ["t1", "t3", "t4", "t5"]
    assert choose(tasks, Policy(), NOW) == []                   # no rule, nothing goes


def test_keep_spares_the_newest_finished_tasks_whatever_their_age() -> None:
    tasks = [task(1, 90), task(2, 80), task(3, 70), task(4, 60, blocker="fetch pending")]
    assert ids(choose(tasks, Policy(max_age=30 * DAY, keep=2), NOW)) == ["t1", "t2"]
    assert ids(choose(tasks, Policy(max_age=30 * DAY, keep=10), NOW)) == []


def test_an_unknown_finish_time_is_never_old() -> None:
    tasks = [Finished("t1", None), task(2, 40)]
    assert ids(choose(tasks, Policy(max_age=30 * DAY), NOW)) == ["t2"]


def test_size_removes_the_oldest_until_the_spool_fits() -> None:
    mb = 1_000_000
    tasks = [task(1, 10, usage=Usage(own=5 * mb)), task(2, 9, usage=Usage(own=5 * mb)),
             task(3, 8, usage=Usage(own=5 * mb)), task(4, 7, blocker="results_error", usage=Usage(own=50 * mb))]
    got = choose(tasks, Policy(max_bytes=62 * mb), NOW, total_bytes=70 * mb)
    assert [(r.id, r.freed) for r in got] == [("t1", 5 * mb), ("t2", 5 * mb)]
    assert choose(tasks, Policy(max_bytes=100 * mb), NOW, total_bytes=70 * mb) == []


def test_a_file_shared_by_two_tasks_is_freed_with_the_second() -> None:
    shared = ((1, 99), 8_000_000, 2, 1)                 # one 8 MB file linked from both tasks
    tasks = [task(1, 50, usage=Usage(own=1000, shared=(shared,))),
             task(2, 40, usage=Usage(own=2000, shared=(shared,)))]
    assert [r.freed for r in choose(tasks, Policy(max_age=45 * DAY), NOW)] == [1000]
    assert [r.freed for r in choose(tasks, Policy(max_age=30 * DAY), NOW)] == [1000, 2000 + 8_000_000]
    outside = ((1, 7), 4096, 3, 1)                      # a third name outside the spool's tasks
    lone = [task(1, 50, usage=Usage(shared=(outside,)))]
    assert [r.freed for r in choose(lone, Policy(max_age=0), NOW)] == [0]


def test_size_and_age_together() -> None:
    tasks = [task(1, 50, usage=Usage(own=10)), task(2, 5, usage=Usage(own=10)), task(3, 1, usage=Usage(own=10))]
    got = choose(tasks, Policy(max_age=30 * DAY, max_bytes=15), NOW, total_bytes=30)
    assert [(r.id, r.why) for r in got] == [("t1", "finished 50d ago"), ("t2", "the spool is over its size limit")]


@pytest.mark.parametrize(("text", "seconds"), [("30d", 30 * DAY), ("12h", 43200), ("90m", 5400), ("2w", 14 * DAY),
                                              ("45s", 45), ("0", 0), ("1.5d", 1.5 * DAY)])
def test_ages(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["30", "d", "-1d", "3 days", "", "1y"])
def test_bad_ages(text: str) -> None:
    with pytest.raises(ValueError, match="must be an age such as 30d"):
        parse_age(text)


def test_sizes() -> None:
    assert parse_size("5GiB") == parse_size("5G") == parse_size("5 gb") == 5 * 1024**3
    assert parse_size(1000) == 1000 and parse_size("500M") == 500 * 1024**2
    for bad in ("lots", "-5G", True, 1.5, None):
        with pytest.raises(ValueError, match="must be a size"):
            parse_size(bad)


# --------------------------------------------------------------------------- spoold.yaml


def _settings(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    p = tmp_path / "spoold.yaml"
    p.write_text(f"spool: {tmp_path}/spool\nremote: {tmp_path}/remote\n{text}")
    return load_spoold_settings(p)


def test_retention_settings(tmp_path: Path) -> None:
    assert _settings(tmp_path, "").retention == DEFAULT_POLICY == Policy(max_age=30 * DAY, keep=20)
    assert _settings(tmp_path, "retention: off\n").retention is None
    assert _settings(tmp_path, "retention: on\n").retention == DEFAULT_POLICY
    got = _settings(tmp_path, "retention: {max_age: 2w, max_bytes: 5GiB}\n").retention
    assert got == Policy(max_age=14 * DAY, keep=20, max_bytes=5 * 1024**3)
    assert _settings(tmp_path, "retention: {max_age: null, keep: 0}\n").retention == Policy()


@pytest.mark.parametrize(("text", "words"), [
    ("retention: {max_age: 30}\n", "retention.max_age: must be an age such as 30d"),
    ("retention: {max_bytes: lots}\n", "retention.max_bytes: must be a size"),
    ("retention: {keep: -1}\n", "retention.keep: must be a whole number >= 0"),
    ("retention: {max_ages: 30d}\n", "retention.max_ages: unknown key"),
    ("retention: 30d\n", "retention: must be on, off or a mapping"),
])
def test_retention_setting_errors_name_the_key(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(SettingsError) as exc:
        _settings(tmp_path, text)
    assert words in str(exc.value) and str(tmp_path) in str(exc.value) and "\n" not in str(exc.value)


# --------------------------------------------------------------------------- on a spool

def _finished(spool: Spool, task_id: str, stage: str = DONE, days_ago: float = 40, **extra: object) -> Path:
    d = spool.stage_dir(stage) / task_id
    (d / "files").mkdir(parents=True)
    (d / "files" / "data.bin").write_bytes(b"x" * 10_000)
    st = TaskStatus(id=task_id, submitted_at=now_iso(NOW - days_ago * DAY))
    st, ev = transition(st, "pending", "waiting_for_upload")
    statusfile.record(d, st, ev)
    st, ev = transition(st, "completed", None, finished_at=now_iso(NOW - days_ago * DAY), **extra)
    statusfile.record(d, st, ev)
    (spool.outbox(task_id) / "logs").mkdir(parents=True)
    (spool.outbox(task_id) / "logs" / "output.log").write_text("hello\n")
    return d


A, B, C = "261001-100000000-aaaaaa", "261002-100000000-bbbbbb", "261003-100000000-cccccc"


def test_only_finished_tasks_back_in_done_are_candidates(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.ensure()
    _finished(spool, A)
    _finished(spool, B, results_error="rsync failed")
    _finished(spool, C, stage=SYNCED)                  # finished, results not pulled yet
    found = {t.id: t.blocker for t in survey(spool)}
    assert found == {A: None, B: "its logs and results could not all be pulled back (results_error)"}
    spool.drop_request(A, "fetch")
    assert survey(spool)[0].blocker == "a fetch of it is waiting for spoold"
    d = "261004-100000000-dddddd"
    _finished(spool, d)
    queue(spool, d)                                     # its notice not sent yet
    assert {t.id: t.blocker for t in survey(spool)}[d] == "spoold has yet to send its notice (on_finish, desktop)"


def test_a_pass_reads_only_tasks_old_enough_to_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task submitted within max_age cannot have finished before it: with thousands of
    tasks, spoold's hourly pass reads the status of the old ones only.  The young still
    count as the newest for keep."""
    from ailabber.model import ids as task_ids
    from ailabber.storage import cleaning

    spool = Spool(tmp_path / "spool")
    spool.ensure()
    old = [task_ids.new_task_id(NOW - (60 - i) * DAY) for i in range(3)]
    young = [task_ids.new_task_id(NOW - (5 - i) * DAY) for i in range(3)]
    for i, t in enumerate(old):
        _finished(spool, t, days_ago=59 - i)
    for i, t in enumerate(young):
        _finished(spool, t, days_ago=4 - i)
    read: list[str] = []
    real = statusfile.read_status
    monkeypatch.setattr(cleaning.statusfile, "read_status", lambda d: read.append(Path(d).name) or real(d))
    out = clean(spool, Policy(max_age=30 * DAY, keep=4), NOW)
    assert sorted(set(read)) == old                            # (a removal reads its name again)
    assert [r.id for r in out.removed] == old[:2]             # the 4 newest stay: 3 young and old[2]


def test_clean_removes_the_task_and_its_outbox_and_counts_what_it_freed(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.ensure()
    _finished(spool, A)
    _finished(spool, B, days_ago=1)
    os.link(spool.stage_dir(DONE) / A / "files" / "data.bin", tmp_path / "elsewhere")
    usage = measure(spool, A)
    assert [(links, here) for _inode, _n, links, here in usage.shared] == [(2, 1)]
    out = clean(spool, Policy(max_age=30 * DAY), NOW)
    assert [r.id for r in out.removed] == [A]
    assert out.removed[0].freed == usage.own                    # the linked file lives on elsewhere
    assert spool.locate(A) is None and not spool.outbox(A).exists()
    assert spool.locate(B) is not None and spool.outbox(B).exists()
    assert os.listdir(spool.root / TRASH) == []


def test_a_removed_task_leaves_the_name_index(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.ensure()
    _finished(spool, A, name="baseline")
    _finished(spool, B, days_ago=1, name="baseline")
    for task_id in (A, B):
        names.add(spool.root, "baseline", task_id)
    clean(spool, Policy(max_age=30 * DAY), NOW)
    assert names.ids_named(spool.root, "baseline") == [B]
    clean(spool, Policy(max_age=0), NOW)
    assert not (spool.root / names.NAMES / "baseline").exists()


def test_a_dry_run_removes_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.ensure()
    _finished(spool, A)
    out = clean(spool, Policy(max_age=0), NOW, dry_run=True)
    assert [r.id for r in out.removed] == [A] and out.removed[0].freed
    assert spool.locate(A) is not None


def test_a_task_being_read_is_left_alone(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.ensure()
    _finished(spool, A)
    with reading(spool, A):
        with pytest.raises(TaskInUse):
            remove_task(spool, A)
        out = clean(spool, Policy(max_age=0), NOW)
        assert out.removed == [] and out.left == [(A, "another command (logs, fetch) is reading it")]
    assert remove_task(spool, A) is True
    assert remove_task(spool, A) is False                      # already gone: nothing to do
    with pytest.raises(TaskGone):
        with reading(spool, A):
            pass


def test_a_reader_waiting_for_a_removal_learns_the_task_is_gone(tmp_path: Path) -> None:
    """The removal holds the task while it renames it away; a reader that asks meanwhile
    gets TaskGone afterwards, never a directory half deleted."""
    import fcntl

    spool = Spool(tmp_path / "spool")
    spool.ensure()
    task_dir = _finished(spool, A)
    fd = os.open(task_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)                            # as remove_task holds it
    outcome: list[object] = []

    def reader() -> None:
        try:
            with reading(spool, A) as d:
                outcome.append(d)
        except TaskGone:
            outcome.append("gone")

    t = threading.Thread(target=reader)
    t.start()
    _wait_for_a_blocked_flock(os.fstat(fd).st_ino)
    os.rename(task_dir, tmp_path / "elsewhere")               # the removal's rename
    os.close(fd)
    t.join(30)
    assert outcome == ["gone"]


def _wait_for_a_blocked_flock(inode: int) -> None:
    """Until /proc/locks shows a process waiting for a lock on ``inode`` (lines with ``->``)."""
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if "->" in fields and any(f.endswith(f":{inode}") for f in fields):
                return
        time.sleep(0.01)
    raise AssertionError("the reader never waited for the lock")


def test_what_a_crash_left_behind_is_finished_by_the_next_pass(tmp_path: Path) -> None:
    """A crash after the task's rename into trash/ (before its outbox followed, before the
    deletion): the task is already gone, and the next removal or spoold pass deletes the rest."""
    spool = Spool(tmp_path / "spool")
    spool.ensure()
    task_dir = _finished(spool, A)
    _finished(spool, B)
    (spool.root / TRASH).mkdir()
    os.rename(task_dir, spool.root / TRASH / f"{A}.0badcafe")
    assert spool.locate(A) is None and spool.all_ids() == [B]
    empty_trash(spool)
    assert os.listdir(spool.root / TRASH) == [] and not spool.outbox(A).exists()
    assert spool.outbox(B).exists()                           # a live task's mirror stays


def test_delete_tree_opens_directories_the_job_left_read_only(tmp_path: Path) -> None:
    """As their owner, not as root (root may delete anything): results pulled back keep
    the modes the job gave them, such as a directory without write or search permission."""
    import shutil
    import tempfile

    box = Path(tempfile.mkdtemp(prefix="ailabber-delete-")) if os.geteuid() == 0 else tmp_path
    top = box / "t"
    try:
        (top / "results" / "locked" / "deeper").mkdir(parents=True)
        (top / "results" / "locked" / "deeper" / "f").write_text("x")
        (top / "results" / "locked" / "g").write_text("x")
        os.chmod(top / "results" / "locked" / "deeper", 0o500)
        os.chmod(top / "results" / "locked", 0o000)
        if os.geteuid() == 0:
            _delete_as_nobody(box, top)
        else:
            delete_tree(top)
        assert not top.exists()
    finally:
        if box != tmp_path:
            shutil.rmtree(box, ignore_errors=True)


def _delete_as_nobody(box: Path, top: Path) -> None:
    nobody = 65534
    os.chmod(box, 0o755)
    for d, dirs, files in os.walk(box):
        for name in [d, *(os.path.join(d, n) for n in dirs + files)]:
            os.lchown(name, nobody, nobody)
    pid = os.fork()
    if pid == 0:                       # the child deletes as the tree's owner
        code = 1
        try:
            os.setgroups([])
            os.setgid(nobody)
            os.setuid(nobody)
            delete_tree(top)
            code = 0
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
