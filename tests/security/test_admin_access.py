"""Who may steer the course: root and the members of remoted.yaml's ``admin_group``, each
checked twice, by the command (its caller's real uid and groups) and by remoted (the owner
of the request file it opened, as the kernel reports it).  Real accounts, a real group,
remoted as root: a student is refused by the command and cannot write a request at all;
a request file swapped for a symlink, a FIFO or a hard link, or left by someone who is not
staff (any more), is refused by remoted, audited and removed, and changes nothing."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ailabber.daemonkit.remoted_settings import DEFAULT_JOB_PATH
from ailabber.model.ids import new_task_id
from remoted.admin.requests import Cancel, TaskRef, encode_request
from testbed.pipeline import Pipeline, owned_project, students_on_one_root, wait_until
from testbed.unix_users import ensure_group, ensure_user, set_member, world_dir
from tests.integration.conftest import STUDENTS, student_python  # noqa: F401

ALICE, BOB = STUDENTS
TA, FORMER = "ailabber-ta", "ailabber-former-ta"
STAFF = "ailabber-staff"


@pytest.fixture
def course(student_python: Path) -> Iterator[tuple[dict[str, Pipeline], Path]]:  # noqa: F811
    for name in (TA, FORMER):
        ensure_user(name)
    ensure_group(STAFF)
    set_member(TA, STAFF, True)
    set_member(FORMER, STAFF, False)
    base = world_dir("ailabber-admin-access-")
    pipes = students_on_one_root(base, STUDENTS, student_python, extra={"admin_group": STAFF})
    pipes[ALICE].start("remoted")
    for p in pipes.values():
        p.start("spoold")
    yield pipes, student_python
    for p in pipes.values():
        p.stop_all()
    shutil.rmtree(base, ignore_errors=True)


def admin_as(user: str, p: Pipeline, python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``ailabber admin ...`` run by ``user`` with their own groups, as they would log in."""
    pw = pwd.getpwnam(user)
    return subprocess.run([str(python), "-m", "ailabber", "admin", "--remoted-config", str(p.remoted_cfg), *args],
                          user=pw.pw_uid, group=pw.pw_gid, extra_groups=os.getgrouplist(user, pw.pw_gid),
                          env={"PATH": DEFAULT_JOB_PATH, "HOME": pw.pw_dir}, cwd="/", stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)


def as_user(user: str, *argv: str) -> subprocess.CompletedProcess[str]:
    pw = pwd.getpwnam(user)
    return subprocess.run(list(argv), user=pw.pw_uid, group=pw.pw_gid, extra_groups=os.getgrouplist(user, pw.pw_gid),
                          env={"PATH": DEFAULT_JOB_PATH, "HOME": pw.pw_dir}, cwd="/", stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)


def audit(root: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (root / "admin" / "audit.jsonl").read_text().splitlines()]


def running_task(p: Pipeline, name: str) -> str:
    task = p.submit(owned_project(p, name, "sleep 120"))
    p.wait_for(task, lambda s: s["state"] == "running", 60, "running")
    return task


def test_a_student_is_refused_by_the_command_and_cannot_write_a_request(
        course: tuple[dict[str, Pipeline], Path]) -> None:
    pipes, python = course
    alice, bob = pipes[ALICE], pipes[BOB]
    task = running_task(alice, "a1")
    for args in (("cancel", task), ("tasks",), ("hold", "--all"), ("limits", ALICE, "max_running=9")):
        r = admin_as(BOB, alice, python, *args)
        assert r.returncode == 77, (args, r.stdout, r.stderr)
        assert f"{BOB} may not run admin commands" in r.stderr and f"'{STAFF}'" in r.stderr
    requests = alice.root / "admin" / "requests"
    r = as_user(BOB, str(python), "-c", f"open('{requests}/{new_task_id()}.json', 'w').write('{{}}')")
    assert r.returncode != 0 and "Permission denied" in r.stderr
    r = as_user(BOB, "cat", str(alice.root / "state" / "active" / ALICE / f"{task}.json"))
    assert r.returncode != 0                                         # staff read the records; students do not
    assert alice.status(task)["state"] == "running"
    alice.cli("cancel", task, check=True)
    alice.wait_terminal(task)


def test_a_member_of_the_admin_group_reads_the_course_and_acts_on_it(
        course: tuple[dict[str, Pipeline], Path]) -> None:
    pipes, python = course
    alice, bob = pipes[ALICE], pipes[BOB]
    task = running_task(alice, "a1")
    listed = admin_as(TA, alice, python, "tasks", "--user", ALICE)
    assert listed.returncode == 0 and task in listed.stdout, listed.stdout + listed.stderr
    r = admin_as(TA, alice, python, "hold", "--user", BOB, "--message", "come to office hours")
    assert r.returncode == 0, r.stdout + r.stderr
    held = bob.submit(owned_project(bob, "b1", "true"))
    st = bob.wait_for(held, lambda s: s["reason"] == "held", 60, "held")
    assert st["message"] == "come to office hours"
    r = admin_as(TA, alice, python, "cancel", f"{ALICE}/{task[-6:]}", "--reason", "uses the GPU for mining")
    assert r.returncode == 0, r.stdout + r.stderr
    st = alice.wait_terminal(task)
    assert (st["state"], st["reason"], st["message"]) == ("terminated", "canceled_by_staff", "uses the GPU for mining")
    assert admin_as(TA, alice, python, "release", "--user", BOB).returncode == 0
    assert bob.wait_terminal(held)["state"] == "completed"
    assert [(a["who"], a["act"], a["outcome"]) for a in audit(alice.root)] == [
        (TA, "hold", "done"), (TA, "cancel", "done"), (TA, "release", "done")]


def test_remoted_refuses_swapped_files_and_requests_of_anyone_not_staff(
        course: tuple[dict[str, Pipeline], Path], tmp_path: Path) -> None:
    pipes, python = course
    alice = pipes[ALICE]
    task = running_task(alice, "a1")
    requests = alice.root / "admin" / "requests"
    body = encode_request(Cancel((TaskRef(ALICE, task),), "not really staff"))
    ta, bob, former = (pwd.getpwnam(u).pw_uid for u in (TA, BOB, FORMER))
    alice.kill("remoted")                                # everything below is there when it looks

    planted: dict[str, tuple[str, str]] = {}             # request id -> (owner, what it is)

    def name(owner: str, what: str) -> Path:
        rid = new_task_id()
        planted[rid] = (owner, what)
        return requests / f"{rid}.json"

    target = tmp_path / "root-owned-request.json"        # root's own bytes, a valid request
    target.write_bytes(body)
    link = name(TA, "a symlink")
    link.symlink_to(target)
    os.lchown(link, ta, -1)
    fifo = name(TA, "a FIFO")
    os.mkfifo(fifo)
    os.chown(fifo, ta, -1)
    linked = name(TA, "a hard link")
    linked.write_bytes(body)
    os.chown(linked, ta, -1)
    os.link(linked, requests / ".kept-elsewhere")
    for owner, uid in ((BOB, bob), (FORMER, former)):    # a student; someone taken out of the group
        f = name(owner, "a request")
        f.write_bytes(body)
        os.chown(f, uid, -1)
    alice.start("remoted")
    wait_until(lambda: not list(requests.glob("*.json")), "remoted to deal with every request")
    replies = {rid: json.loads((alice.root / "admin" / "replies" / f"{rid}.json").read_text()) for rid in planted}
    assert {rid: r["outcome"] for rid, r in replies.items()} == {rid: "refused" for rid in planted}, replies
    assert "not a regular file" in replies[next(r for r, (_o, w) in planted.items() if w == "a FIFO")]["message"]
    assert "more than one link" in replies[next(r for r, (_o, w) in planted.items() if w == "a hard link")]["message"]
    assert f"{FORMER} is not course staff" in replies[next(r for r, (o, _w) in planted.items() if o == FORMER)][
        "message"]
    lines = {a["id"]: a for a in audit(alice.root)}
    assert {rid: (lines[rid]["who"], lines[rid]["outcome"]) for rid in planted} == {
        rid: (owner, "refused") for rid, (owner, _w) in planted.items()}
    assert alice.status(task)["state"] == "running"                       # none of it cancelled anything
    assert target.read_bytes() == body
    r = admin_as(TA, alice, python, "cancel", task, "--reason", "a real one")   # the same act, asked properly
    assert r.returncode == 0, r.stdout + r.stderr
    assert alice.wait_terminal(task)["reason"] == "canceled_by_staff"
