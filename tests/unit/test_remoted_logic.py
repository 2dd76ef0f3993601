"""remoted's queue, launch and recovery logic, quickly: the product's ``Remoted`` in this
process over a ``FakeScheduler``, each pass made by the test.  Tasks arrive as in
production (the product's ``submit`` into a student's spool, spoold's rsync transport
into the student's area); what is asserted is what remoted publishes and records."""

from __future__ import annotations

import json
import os
import pwd
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ailabber.daemonkit.remoted_settings import UserLimits
from ailabber.daemonkit.spoold_settings import SpooldSettings
from ailabber.model.remote_layout import UserArea
from ailabber.model.remote_url import LocalRemote
from ailabber.storage.spool import Spool
from ailabber.workstation.submit import submit
from remoted.records import LAUNCHED, LAUNCHING, QUEUED, RecordStore, TaskRecord
from remoted.schedulers.base import SchedulerUnavailable, SubmitError
from spoold.daemon import Spoold
from spoold.transport import RsyncTransport
from testbed.fake_scheduler import InProcessRemoted
from testbed.pipeline import TERMINAL, Pipeline


class Student:
    """A student's workstation: projects, a spool, and spoold's transport into their area."""

    def __init__(self, base: Path, root: Path, name: str):
        self.name = name
        self.p = Pipeline(base / name, root=root)
        self.spool = Spool(self.p.home / "spool")
        area = UserArea(root, name).path
        self.spoold = Spoold(SpooldSettings(spool=self.spool.root, remote=LocalRemote(root)),
                             transport=RsyncTransport(str(area)))
        self.spoold.prepare()

    def submit(self, commands: list[str], gpus: int = 0) -> str:
        proj = self.p.project(commands, gpus=gpus)
        return submit(proj / "task_config.toml", self.spool).task_id


class Site:
    """One remote root served by an in-process remoted over the fake; students upload into
    it.  When the test runs as root, the areas belong to the transport account (root), as
    with pinned ssh keys, so that student names need no Unix accounts."""

    def __init__(self, base: Path, *, gpus: int = 1, limits: UserLimits | None = None):
        self.base = base
        self.root = base / "remote"
        me = pwd.getpwuid(os.geteuid()).pw_name
        self.remote = InProcessRemoted.at(self.root, gpus=gpus, limits=limits,
                                          transport_account=me if os.geteuid() == 0 else None)
        self.fake = self.remote.scheduler
        self.students: dict[str, Student] = {}

    def student(self, name: str) -> Student:
        if name not in self.students:
            self.students[name] = Student(self.base, self.root, name)
        return self.students[name]

    def upload(self) -> None:
        """Every student's spoold uploads what was submitted (no remoted pass meanwhile)."""
        for s in self.students.values():
            s.spoold.step()

    def step(self) -> None:
        self.remote.step()

    def status(self, user: str, task_id: str) -> dict[str, Any]:
        """The status remoted published for the student."""
        path = UserArea(self.root, user).task_outbox(task_id) / "status.json"
        return dict(json.loads(path.read_text()))

    def record(self, user: str, task_id: str) -> TaskRecord:
        """remoted's own record, as on disk."""
        rec = RecordStore(self.root).get(user, task_id)
        assert rec is not None, f"no record of {user}/{task_id}"
        return rec

    def step_until(self, done: Callable[[], bool], what: str, timeout: float = 60) -> None:
        """Make passes until ``done()``."""
        deadline = time.monotonic() + timeout
        while True:
            self.step()
            if done():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; jobs made: {dict(self.fake.submits)}")
            time.sleep(0.05)

    def final(self, user: str, task_id: str, timeout: float = 60) -> dict[str, Any]:
        self.step_until(lambda: self.status(user, task_id)["state"] in TERMINAL, f"{user}/{task_id} to end", timeout)
        return self.status(user, task_id)


@pytest.fixture
def site_factory(tmp_path: Path) -> Iterator[Callable[..., Site]]:
    sites: list[Site] = []

    def make(**kw: Any) -> Site:
        sites.append(Site(tmp_path / f"site{len(sites)}", **kw))
        return sites[-1]

    yield make
    for s in sites:
        s.remote.close()
        for st in s.students.values():
            st.spoold.transport.close()
    for s in sites:
        assert s.remote.errors == [], s.remote.errors


def _gate(base: Path) -> tuple[Path, str]:
    """A file the test creates to let jobs finish, and the command that waits for it."""
    gate = base / "gate"
    return gate, f"while [ ! -e {gate} ]; do sleep 0.05; done"


# --- queue -------------------------------------------------------------------------------
def test_one_gpu_serves_two_users_in_turn(site_factory: Callable[..., Site]) -> None:
    """Three tasks of one user, then one of another, on one GPU: the second user's task is
    the second to start, not the fourth; within a user, first come first served."""
    site = site_factory(gpus=1)
    ann, ben = site.student("ann"), site.student("ben")
    a_ids = [ann.submit(["true"], gpus=1) for _ in range(3)]
    b_id = ben.submit(["true"], gpus=1)
    site.upload()
    site.step()
    first, *waiting = sorted(a_ids)
    assert site.fake.started == [first]
    st = site.status("ben", b_id)
    assert (st["state"], st["reason"], st["message"]) == ("pending", "waiting_for_gpu", "needs 1 GPU(s); 0 of 1 free")
    for t in a_ids:
        assert site.final("ann", t)["state"] == "completed"
    assert site.final("ben", b_id)["state"] == "completed"
    assert site.fake.started == [first, b_id, *waiting]


def test_a_user_at_max_running_waits_with_user_limit(site_factory: Callable[..., Site], tmp_path: Path) -> None:
    site = site_factory(gpus=0, limits=UserLimits(max_running=2))
    ann = site.student("ann")
    gate, wait = _gate(tmp_path)
    ids = sorted(ann.submit([wait]) for _ in range(3))
    site.upload()
    site.step()
    assert site.fake.started == ids[:2]
    st = site.status("ann", ids[2])
    assert (st["state"], st["reason"]) == ("pending", "user_limit")
    assert st["message"] == "you have 2 task(s) running; the limit is 2"
    assert site.record("ann", ids[2]).phase == QUEUED
    for _ in range(3):                      # it stays held back while both run
        site.step()
    assert site.fake.started == ids[:2] and site.status("ann", ids[2])["reason"] == "user_limit"
    gate.touch()
    for t in ids:
        assert site.final("ann", t)["state"] == "completed"
    assert site.fake.started == ids
    assert all(site.fake.submits[t] == 1 for t in ids)


def test_more_gpus_than_a_users_limit_fails_as_unsatisfiable(site_factory: Callable[..., Site]) -> None:
    site = site_factory(gpus=4, limits=UserLimits(max_gpus=2))
    t = site.student("ann").submit(["true"], gpus=3)
    site.upload()
    st = site.final("ann", t)
    assert (st["state"], st["reason"]) == ("failed", "unsatisfiable")
    assert st["message"] == "asks for 3 GPU(s); the per-user limit is 2"
    assert site.fake.submits[t] == 0


# --- an unreachable scheduler ----------------------------------------------------------------
def test_unreachable_scheduler_keeps_tasks_waiting_and_recovers(site_factory: Callable[..., Site],
                                                                  tmp_path: Path) -> None:
    site = site_factory(gpus=0)
    ann = site.student("ann")
    gate, wait = _gate(tmp_path)
    running = ann.submit([wait])
    site.upload()
    site.step_until(lambda: site.status("ann", running)["state"] == "running", "the first task to run")
    site.fake.unreachable = True
    late = ann.submit(["true"])
    site.upload()
    for _ in range(3):
        site.step()
    st = site.status("ann", late)
    assert (st["state"], st["reason"]) == ("pending", "scheduler_unreachable")
    assert "unreachable" in st["message"]
    assert site.record("ann", late).phase == LAUNCHING     # maybe submitted: looked up, never resubmitted blindly
    assert site.fake.submits[late] == 0
    gate.touch()                            # the job ends while nobody can hear of it
    site.step_until(lambda: site.fake.job_of(running).over, "the job to end")  # type: ignore[union-attr]
    site.step()
    assert site.status("ann", running)["state"] == "running"   # no news is not bad news
    site.fake.unreachable = False
    assert site.final("ann", running)["state"] == "completed"
    assert site.final("ann", late)["state"] == "completed"
    assert (site.fake.submits[running], site.fake.submits[late]) == (1, 1)


def test_a_transient_submit_failure_is_retried_without_a_second_job(site_factory: Callable[..., Site]) -> None:
    site = site_factory(gpus=0)
    t = site.student("ann").submit(["true"])
    site.fake.fail_next_submit = SchedulerUnavailable("sbatch: error: Socket timed out on send/recv operation")
    site.upload()
    site.step()
    st = site.status("ann", t)
    assert (st["state"], st["reason"]) == ("pending", "scheduler_unreachable")
    assert st["message"] == "sbatch: error: Socket timed out on send/recv operation"
    assert site.record("ann", t).phase == LAUNCHING and site.fake.submits[t] == 0
    assert site.final("ann", t)["state"] == "completed"
    assert site.fake.submits[t] == 1


def test_a_refused_submit_fails_the_task_plainly(site_factory: Callable[..., Site]) -> None:
    site = site_factory(gpus=0)
    t = site.student("ann").submit(["true"])
    site.fake.fail_next_submit = SubmitError("sbatch: error: invalid partition specified: gpu\nmore detail")
    site.upload()
    st = site.final("ann", t)
    assert (st["state"], st["reason"]) == ("failed", "launch_failed")
    assert st["message"] == "sbatch: error: invalid partition specified: gpu"
    assert site.fake.submits[t] == 0


# --- crashes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("when,jobs_at_crash", [("before", 0), ("after", 1)])
def test_a_crash_around_submit_leaves_exactly_one_job(site_factory: Callable[..., Site], tmp_path: Path,
                                                      when: str, jobs_at_crash: int) -> None:
    """Launch intent recorded, then remoted dies before the scheduler is called ("before")
    or before the handle is recorded ("after"): the restarted remoted looks the job up and
    starts it only if it does not exist."""
    site = site_factory(gpus=0)
    runs = tmp_path / "runs"
    t = site.student("ann").submit([f"echo ran >> {runs}"])
    site.fake.crash_in_submit = when
    site.upload()
    site.step()
    assert site.remote.crashes == 1
    assert site.record("ann", t).phase == LAUNCHING
    assert site.fake.submits[t] == jobs_at_crash
    site.step()
    assert site.record("ann", t).phase in (LAUNCHED, "finished")
    assert site.final("ann", t)["state"] == "completed"
    assert site.fake.submits[t] == 1
    assert runs.read_text() == "ran\n"


def test_a_cancel_sent_while_the_scheduler_is_unreachable_is_sent_when_it_answers(
        site_factory: Callable[..., Site]) -> None:
    site = site_factory(gpus=0)
    ann = site.student("ann")
    t = ann.submit(["sleep 300"])
    site.upload()
    site.step_until(lambda: site.status("ann", t)["state"] == "running", "the task to run")
    site.fake.unreachable = True
    ann.spool.drop_request(t, "cancel")
    site.upload()
    site.step()
    site.remote.errors.clear()      # the pass that could not reach the scheduler failed, as it may
    site.fake.unreachable = False
    st = site.final("ann", t, timeout=15)
    assert (st["state"], st["reason"]) == ("terminated", "canceled_by_user")
