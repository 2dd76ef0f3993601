"""The gate (``ailabber-gate``, pinned in authorized_keys instead of rrsync) allows what
rrsync allows and ``watch``, nothing more, and ``watch`` never looks outside the pinned
directory.

The strongest case is the service account of the admin guide's model (b): one account
owns every student's directory, so the gate, which runs as that account, *could* read
Bob's directory; only its confinement keeps Alice's session out.  Alice's key is pinned
to her directory.  She tries other commands, arguments to ``watch``, ids that exist only
in Bob's outbox, and the links a student can plant in her own directory (a renamed
``outbox`` replaced by a link to Bob's, a link in place of a task's ``logs/``, a link as
``remoted.json``); what her watch prints must never follow Bob's changes.  A watch also
ends with the connection that carries it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from ailabber.model.ids import new_task_id
from testbed.pipeline import shared_root, wait_until
from testbed.sshd import Sshd, available, keygen
from testbed.unix_users import chown_tree, ensure_user, world_dir
from tests.conftest import require
from tests.integration.conftest import STUDENTS, student_python  # noqa: F401

SVC = "ailabber-svc"
ALICE, BOB = STUDENTS


@dataclass
class GateSite:
    base: Path
    root: Path
    sshd: Sshd
    key: Path
    gate: Path

    def area(self, user: str) -> Path:
        return self.root / "users" / user

    def ssh(self, *command: str, stdin: int | None = subprocess.PIPE) -> subprocess.Popen[bytes]:
        """``ssh svc@host COMMAND`` with Alice's pinned key, as Alice on her workstation."""
        p = pwd.getpwnam(ALICE)
        argv = ["ssh", "-i", str(self.key), "-p", str(self.sshd.port), "-o", "BatchMode=yes",
                *sum((["-o", o] for o in self.sshd.client_options()), []), f"{SVC}@{self.sshd.listen}", *command]
        return subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                user=p.pw_uid, group=p.pw_gid, extra_groups=[],
                                env={"PATH": os.environ["PATH"], "HOME": p.pw_dir})


@pytest.fixture
def gate_site(pytestconfig: pytest.Config, student_python: Path) -> Iterator[GateSite]:  # noqa: F811
    ok, why = available()
    require(pytestconfig, ok, why)
    ensure_user(SVC)
    gate = student_python.parent / "ailabber-gate"
    sshd = Sshd(gate=gate)
    sshd.start()
    base = world_dir("ailabber-gate-")
    root = shared_root(base)
    try:
        for student in STUDENTS:
            area = root / "users" / student
            area.mkdir()
            chown_tree(area, SVC)
            os.chmod(area, 0o711)
        keydir = base / "keys"
        keydir.mkdir(mode=0o700)
        key = keydir / "id_ed25519"
        sshd.authorize(SVC, keygen(key, owner=ALICE), rrsync_dir=root / "users" / ALICE)
        chown_tree(keydir, ALICE)
        yield GateSite(base, root, sshd, key, gate)
    finally:
        sshd.stop()
        shutil.rmtree(base, ignore_errors=True)


def _outbox_task(area: Path, task_id: str) -> Path:
    """An outbox entry as remoted publishes it: root's directories, a logs/ the job writes."""
    d = area / "outbox" / task_id
    (d / "logs").mkdir(parents=True)
    _publish(d / "status.json", '{"state": "running"}')
    (d / "logs" / "output.log").write_text("start\n")
    for p in (area / "outbox", d):
        os.chmod(p, 0o755)
    chown_tree(d / "logs", SVC)
    return d


def _publish(path: Path, text: str) -> None:
    """Write as remoted does: a temporary name, then a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.rename(tmp, path)


class Lines:
    """What a watch prints, collected by a thread."""

    def __init__(self, proc: subprocess.Popen[bytes]):
        self.proc = proc
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def send(self, *task_ids: str) -> int:
        """Send a set line and wait for its answer; the index of the answer."""
        assert self.proc.stdin is not None
        before = len(self.lines)
        self.proc.stdin.write((" ".join(task_ids) + "\n").encode())
        self.proc.stdin.flush()
        want = f"watching {len(task_ids)}"
        wait_until(lambda: want in self.lines[before:], f"the watch to answer {want!r}: {self.lines}", 30)
        return before + self.lines[before:].index(want)

    def wait_for(self, text: str, start: int = 0) -> int:
        wait_until(lambda: any(text in line for line in self.lines[start:]), f"{text!r} in {self.lines}", 30)
        return next(i for i in range(start, len(self.lines)) if text in self.lines[i])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


def test_the_gate_refuses_everything_but_rsync_and_watch(gate_site: GateSite) -> None:
    for command in (["cat", "/etc/hostname"], ["sh", "-c", "id"], ["watch", "/tmp"], ["watch", ".."],
                    ["watch", str(gate_site.area(BOB))], ["rsync", "--server", "--daemon", "."],
                    ["ailabber-gate", "watch"], ["watch;id"]):
        p = gate_site.ssh(*command)
        out, err = p.communicate(b"", timeout=60)
        assert p.returncode != 0 and out == b"", (command, p.returncode, out, err)
    # No command at all (an interactive login): refused, no shell.
    p = gate_site.ssh(stdin=subprocess.PIPE)
    out, err = p.communicate(b"id\n", timeout=60)
    assert p.returncode != 0 and b"uid=" not in out, (out, err)
    # A set line naming anything but task ids ends the watch.
    p = gate_site.ssh("watch")
    out, err = p.communicate(b"../" + BOB.encode() + b"\n", timeout=60)
    assert p.returncode == 2 and b"not a task id" in err, (out, err)
    # rsync inside her directory still works, as rrsync allows it; outside it does not.
    (gate_site.area(ALICE) / "hello.txt").write_text("hi\n")
    r = subprocess.run(["rsync", "--list-only", "-e", _rsh(gate_site), f"{SVC}@{gate_site.sshd.listen}:/"],
                       capture_output=True, text=True, timeout=60, **_as_alice())
    assert r.returncode == 0 and "hello.txt" in r.stdout, r.stderr
    r = subprocess.run(["rsync", "--list-only", "-e", _rsh(gate_site), f"{SVC}@{gate_site.sshd.listen}:/../"],
                       capture_output=True, text=True, timeout=60, **_as_alice())
    assert BOB not in r.stdout, r.stdout


def _rsh(site: GateSite) -> str:
    return " ".join(["ssh", "-i", str(site.key), "-p", str(site.sshd.port), "-o", "BatchMode=yes",
                     *[f"-o {o}" for o in site.sshd.client_options()]])


def _as_alice() -> dict[str, object]:
    p = pwd.getpwnam(ALICE)
    return {"user": p.pw_uid, "group": p.pw_gid, "extra_groups": [],
            "env": {"PATH": os.environ["PATH"], "HOME": p.pw_dir}}


def test_watch_never_follows_what_happens_outside_the_pinned_directory(gate_site: GateSite) -> None:
    mine, bobs = new_task_id(), new_task_id()
    alice_area, bob_area = gate_site.area(ALICE), gate_site.area(BOB)
    my_task = _outbox_task(alice_area, mine)
    bob_task = _outbox_task(bob_area, bobs)
    (bob_area / "remoted.json").write_text('{"at": 1, "every": 30, "who": "BOB"}')
    watch = Lines(gate_site.ssh("watch"))
    try:
        watch.wait_for("ready")
        watch.send(mine, bobs)                   # an id that exists only in Bob's outbox
        # Her own changes are told (the watch works at all) ...
        start = len(watch.lines)
        _publish(my_task / "status.json", '{"state": "completed"}')
        watch.wait_for(f"changed {mine}", start)
        # ... she plants links in her own directory: her task's logs/, her outbox, her
        # remoted.json, each in place of her own, each leading into Bob's directory.
        os.rename(my_task / "logs", my_task / "logs.mine")
        _plant(bob_task / "logs", my_task / "logs")
        os.rename(alice_area / "outbox", alice_area / "outbox.mine")
        _plant(bob_area / "outbox", alice_area / "outbox")
        _plant(bob_area / "remoted.json", alice_area / "remoted.json")
        watch.wait_for("changed all", start)
        time.sleep(3)             # a sweep of the watch (every 2 s) sees the links too
        mark = watch.send(mine, bobs)
        # Bob's task changes, his log grows, his heartbeat is rewritten: for a while,
        # longer than the watch's sweep.
        for i in range(6):
            _publish(bob_task / "status.json", f'{{"state": "running", "n": {i}}}')
            with open(bob_task / "logs" / "output.log", "a") as fh:
                fh.write(f"bob {i}\n")
            _publish(bob_area / "remoted.json", f'{{"at": {i + 2}, "every": 30, "who": "BOB"}}')
            time.sleep(0.5)
        end = watch.send(mine, bobs)
        leaked = [line for line in watch.lines[mark + 1:end]
                  if bobs in line or f"{mine}/logs" in line or "BOB" in line]
        assert not leaked, f"Alice's watch followed Bob's changes: {leaked}\n{watch.lines}"
        assert watch.proc.poll() is None, watch.lines
    finally:
        watch.close()


def _plant(target: Path, link: Path) -> None:
    """A symlink as the service account leaves one (what rsync -l through her key makes)."""
    os.symlink(target, link)
    os.lchown(link, pwd.getpwnam(SVC).pw_uid, pwd.getpwnam(SVC).pw_gid)


def _watching(proc: psutil.Process) -> bool:
    """A gate running ``watch`` (every rsync session also starts as the gate, then execs rrsync)."""
    try:
        return proc.environ().get("SSH_ORIGINAL_COMMAND") == "watch"
    except psutil.Error:
        return False


def _gates(user: str, area: Path) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["username", "cmdline"]):
        cmd = p.info["cmdline"] or []
        if p.info["username"] == user and cmd and cmd[-1] == str(area) and any("ailabber-gate" in c for c in cmd) \
                and _watching(p):
            out.append(p)
    return out


def test_a_watch_ends_when_its_connection_does(gate_site: GateSite) -> None:
    area = gate_site.area(ALICE)
    for end in ("kill the client", "close its input"):
        watch = Lines(gate_site.ssh("watch"))
        try:
            watch.wait_for("ready")
            gates = wait_until(lambda: _gates(SVC, area), "the gate's process on the login node", 30)
            if end == "kill the client":
                watch.proc.send_signal(signal.SIGKILL)
            else:
                assert watch.proc.stdin is not None
                watch.proc.stdin.close()
            wait_until(lambda: not any(g.is_running() and g.status() != psutil.STATUS_ZOMBIE for g in gates),
                       f"the watch to end after we {end}", 30)
        finally:
            watch.close()
