"""Tasks cross a real sshd on loopback as rsync only, each student's key pinned by rrsync."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from testbed.pipeline import Pipeline, count_runs, owned_project, shared_root, student_area, student_pipeline
from testbed.sshd import Sshd, available, keygen
from testbed.unix_users import chown_tree, world_dir
from tests.conftest import require
from tests.integration.conftest import STUDENTS


@dataclass
class SshSetup:
    base: Path
    root: Path
    sshd: Sshd
    keys: dict[str, Path]
    pipes: dict[str, Pipeline]


def make_ssh_setup(py: Path, sshd: Sshd, base: Path, remoted_extra: dict[str, object] | None = None,
                   listen_root: Path | None = None) -> SshSetup:
    root = shared_root(base)
    keys: dict[str, Path] = {}
    pipes: dict[str, Pipeline] = {}
    for name in STUDENTS:
        area = student_area(root, name)
        keydir = base / f"keys-{name}"
        keydir.mkdir(mode=0o700)
        chown_tree(keydir, name)
        keys[name] = keydir / "id_ed25519"
        sshd.authorize(name, keygen(keys[name], owner=name), rrsync_dir=area)
        pipes[name] = student_pipeline(
            base / name, name, py, root, base / f"home-{name}", remoted_extra,
            spoold_extra={"remote": sshd.url(name, "/"), "identity_file": str(keys[name]),
                          "ssh_options": sshd.client_options(), "connect_timeout": 5})
    return SshSetup(base, root, sshd, keys, pipes)


@contextmanager
def ssh_site(pytestconfig: pytest.Config, py: Path, prefix: str,
             remoted_extra: dict[str, object] | None = None, gate: Path | None = None) -> Iterator[SshSetup]:
    """A loopback sshd and the students' pipelines behind it, all stopped and removed after;
    keys pinned with ``gate`` (None: rrsync)."""
    ok, why = available()
    require(pytestconfig, ok, why)
    sshd = Sshd(gate=gate)
    sshd.start()
    base = world_dir(prefix)
    setup: SshSetup | None = None
    try:
        setup = make_ssh_setup(py, sshd, base, remoted_extra)
        yield setup
    finally:
        for p in setup.pipes.values() if setup else ():
            p.stop_all()
        sshd.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def ssh_setup(pytestconfig: pytest.Config, student_python: Path, pin: Path | None) -> Iterator[SshSetup]:
    with ssh_site(pytestconfig, student_python, "ailabber-ssh-", gate=pin) as setup:
        yield setup


def test_task_goes_up_over_ssh_runs_and_comes_back(ssh_setup: SshSetup) -> None:
    alice = ssh_setup.pipes[STUDENTS[0]]
    alice.start("remoted")
    alice.start("spoold")
    task_id = alice.submit(owned_project(alice, "p", "echo over-ssh; mkdir -p output; id -un > output/who",
                                         files={"data.txt": "x" * 1000}))
    st = alice.wait_terminal(task_id, 90)
    assert st["state"] == "completed", (st, alice.daemon_logs())
    assert st["upload_bytes_total"] > 1000 and st["upload_bytes_sent"] > 0
    assert "over-ssh" in alice.cli("logs", task_id, check=True).stdout
    dest = Path(pwd.getpwnam(STUDENTS[0]).pw_dir) / "ssh-results" / task_id
    alice.cli("fetch", task_id, "--dest", str(dest), check=True)
    assert (dest / "output" / "who").read_text().strip() == STUDENTS[0]


def _rsync_as(user: str, key: Path, sshd: Sshd, *args: str) -> subprocess.CompletedProcess[str]:
    pw = pwd.getpwnam(user)
    ssh = " ".join(["ssh", "-i", str(key), "-p", str(sshd.port), "-o", "BatchMode=yes",
                    *[f"-o {o}" for o in sshd.client_options()]])
    return subprocess.run(["rsync", "-rlpt", "-e", ssh, *args], capture_output=True, text=True, timeout=60,
                          user=pw.pw_uid, group=pw.pw_gid, extra_groups=[],
                          env={"PATH": os.environ["PATH"], "HOME": pw.pw_dir})


def test_a_pinned_key_can_neither_read_nor_write_another_students_files(ssh_setup: SshSetup) -> None:
    alice, bob = STUDENTS
    sshd, key = ssh_setup.sshd, ssh_setup.keys[alice]
    bob_area = ssh_setup.root / "users" / bob
    (bob_area / "secret.txt").write_text("bob's work\n")
    chown_tree(bob_area, bob)
    host = f"{alice}@{sshd.listen}"
    scratch = ssh_setup.base / "scratch"
    scratch.mkdir()
    chown_tree(scratch, alice)
    probe = scratch / "probe.txt"
    probe.write_text("alice was here\n")
    chown_tree(scratch, alice)
    # Her own area works.
    assert _rsync_as(alice, key, sshd, str(probe), f"{host}:/probe.txt").returncode == 0
    assert (ssh_setup.root / "users" / alice / "probe.txt").exists()
    # Reading or writing Bob's area, by .., absolute path or a symlink she uploads, fails.
    for src in (f"{host}:/../{bob}/secret.txt", f"{host}:{bob_area}/secret.txt"):
        r = _rsync_as(alice, key, sshd, src, str(scratch / "stolen.txt"))
        assert r.returncode != 0 and not (scratch / "stolen.txt").exists(), r.stdout + r.stderr
    for dst in (f"{host}:/../{bob}/planted.txt", f"{host}:{bob_area}/planted.txt"):
        _rsync_as(alice, key, sshd, str(probe), dst)
        assert not (bob_area / "planted.txt").exists()
    link = scratch / "to-bob"
    os.symlink(str(bob_area), link)
    os.lchown(link, pwd.getpwnam(alice).pw_uid, pwd.getpwnam(alice).pw_gid)
    _rsync_as(alice, key, sshd, str(link), f"{host}:/")
    r = _rsync_as(alice, key, sshd, f"{host}:/to-bob/secret.txt", str(scratch / "via-link.txt"))
    assert not (scratch / "via-link.txt").exists(), r.stdout + r.stderr
    r = _rsync_as(alice, key, sshd, "-L", f"{host}:/to-bob/", str(scratch / "via-dir"))
    assert not (scratch / "via-dir" / "secret.txt").exists()
    # And no shell at all.
    pw = pwd.getpwnam(alice)
    r = subprocess.run(["ssh", "-i", str(key), "-p", str(sshd.port), "-o", "BatchMode=yes",
                        *sum((["-o", o] for o in sshd.client_options()), []), host, "cat", "/etc/hostname"],
                       capture_output=True, text=True, timeout=30, user=pw.pw_uid, group=pw.pw_gid,
                       extra_groups=[], env={"PATH": os.environ["PATH"], "HOME": pw.pw_dir})
    assert r.returncode != 0 and r.stdout == ""


def _big_project(p: Pipeline, name: str, files: int = 2000, size: int = 100_000) -> Path:
    d = p.project(["mkdir -p output; ls data | wc -l > output/count"], name=name, results=["output"])
    data = d / "data"
    data.mkdir()
    for i in range(files):
        (data / f"part{i:04d}.bin").write_bytes(os.urandom(size))
    chown_tree(d, p.client_user or "root")
    return d


def test_resubmitting_a_mostly_unchanged_project_sends_under_one_percent(ssh_setup: SshSetup) -> None:
    alice = ssh_setup.pipes[STUDENTS[0]]
    alice.start("remoted")
    alice.start("spoold")
    proj = _big_project(alice, "big", files=int(os.environ.get("T_FILES", 2000)))
    first = alice.submit(proj)
    st1 = alice.wait_terminal(first, 180)
    assert st1["state"] == "completed", st1
    (proj / "data" / "part0007.bin").write_bytes(os.urandom(100_000))
    second = alice.submit(proj)
    st2 = alice.wait_terminal(second, 180)
    assert st2["state"] == "completed", st2
    total = st2["upload_bytes_total"]
    assert total >= 200_000_000
    assert st1["upload_bytes_sent"] >= total * 0.99          # the first upload sent everything
    assert st2["upload_bytes_sent"] < total * 0.01, (st2["upload_bytes_sent"], total)
    # Each task still has its own complete, frozen copy on the cluster.
    remote = ssh_setup.root / "users" / STUDENTS[0] / "tasks"
    a, b = remote / first / "files" / "data" / "part0007.bin", remote / second / "files" / "data" / "part0007.bin"
    assert a.read_bytes() != b.read_bytes()
    assert b.read_bytes() == (proj / "data" / "part0007.bin").read_bytes()


def test_link_cut_during_a_large_upload_resumes_and_runs_once(pytestconfig: pytest.Config,
                                                             student_python: Path) -> None:
    import json
    import pwd as _pwd
    import time

    from testbed import netns

    ok, why = netns.available()
    require(pytestconfig, ok, why)
    ok, why = available()
    require(pytestconfig, ok, why)
    # Slow enough (2 MB/s: 100 s for the project) that the cut lands mid-upload however
    # long this process waits for a CPU; fast again for the resumed upload.
    hosts = netns.TwoHosts(rate="16mbit")
    hosts.up()
    sshd = Sshd(listen=hosts.cluster_addr, netns=hosts.cluster)
    base = world_dir("ailabber-netns-")
    try:
        sshd.start()
        alice = STUDENTS[0]
        setup = make_ssh_setup(student_python, sshd, base)
        p = setup.pipes[alice]
        pw = _pwd.getpwnam(alice)
        p.spoold_prefix = [*hosts.exec_prefix(hosts.local), "setpriv", f"--reuid={pw.pw_uid}",
                           f"--regid={pw.pw_gid}", "--init-groups", "--"]
        p.start("remoted")
        p.start("spoold")
        proj = _big_project(p, "big", files=200, size=1_000_000)
        count = count_runs(proj, base / "runs")
        task_id = p.submit(proj)
        upload = setup.root / "users" / alice / "incoming" / "tmp" / task_id

        def arrived() -> int:
            return sum(f.stat().st_size for f in upload.rglob("*") if f.is_file()) if upload.exists() else 0

        deadline = time.monotonic() + 60
        while arrived() < 20_000_000:
            assert time.monotonic() < deadline, p.daemon_logs()
            time.sleep(0.1)
        hosts.cut()
        before_cut = arrived()
        p.wait_for(task_id, lambda s: s["reason"] == "waiting_for_upload" and s.get("upload_attempts", 0) >= 1,
                   90, "the failed attempt to be reported")
        st = p.status(task_id)
        assert " failed: " in st["message"] and "retrying in" in st["message"] and st["last_error"]
        hosts.set_rate("400mbit")
        hosts.restore()
        st = p.wait_terminal(task_id, 180)
        assert st["state"] == "completed", (st, p.daemon_logs())
        assert st["upload_attempts"] >= 2
        # The retry resumed: it did not send again what had already arrived.
        assert st["upload_bytes_sent"] < st["upload_bytes_total"] - before_cut * 0.9, (st, before_cut)
        assert count.read_text() == "ran\n"
        events = [json.loads(line) for line in
                  (p.home / "spool" / "done" / task_id / "events.jsonl").read_text().splitlines()]
        assert any(e.get("reason") == "waiting_for_upload" for e in events)
        remoted_log = "\n".join(f.read_text() for f in p.logdir.glob("remoted-*.log"))
        assert "rejecting" not in remoted_log and remoted_log.count("accepted task") == 1
    finally:
        for pipe in locals().get("setup", SshSetup(base, base, sshd, {}, {})).pipes.values():
            pipe.stop_all()
        sshd.stop()
        hosts.down()
        shutil.rmtree(base, ignore_errors=True)


def test_size_limits_are_checked_at_submit_and_by_remoted(pytestconfig: pytest.Config,
                                                          student_python: Path, pin: Path | None) -> None:
    limits_extra: dict[str, object] = {"limits": {"max_upload_bytes": 3_000_000, "max_upload_files": 50}}
    with ssh_site(pytestconfig, student_python, "ailabber-limits-", limits_extra, gate=pin) as setup:
        base, sshd, alice = setup.base, setup.sshd, setup.pipes[STUDENTS[0]]
        alice.start("remoted")
        alice.start("spoold")
        # spoold brings the cluster's published limits home; then submit refuses early.
        limits = alice.home / "spool" / "limits.json"
        import time

        deadline = time.monotonic() + 30
        while not limits.exists():
            assert time.monotonic() < deadline, alice.daemon_logs()
            time.sleep(0.2)
        proj = _big_project(alice, "big", files=5, size=1_000_000)
        r = alice.cli("submit", cwd=proj)
        assert r.returncode == 2, r.stdout + r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "files.upload" in lines[0] and "over the upload limit" in lines[0]
        assert "data/part0000.bin (1.0 MB)" in lines[0] and "files.ignore" in lines[0]
        assert not list((alice.home / "spool" / "new").iterdir())
        # A client that skips the check is stopped on the cluster side: upload by hand.
        other_home = base / "other-home"
        other_home.mkdir()
        chown_tree(other_home, STUDENTS[0])
        pw = pwd.getpwnam(STUDENTS[0])
        r = subprocess.run([str(student_python), "-m", "ailabber", "submit", "--json"], cwd=proj, text=True,
                           capture_output=True, user=pw.pw_uid, group=pw.pw_gid, extra_groups=[],
                           env={"PATH": os.environ["PATH"], "HOME": pw.pw_dir, "AILABBER_HOME": str(other_home)})
        assert r.returncode == 0, r.stderr
        import json as _json

        task_id = _json.loads(r.stdout)["id"]
        task_dir = other_home / "spool" / "new" / task_id
        host = f"{STUDENTS[0]}@{sshd.listen}"
        key = setup.keys[STUDENTS[0]]
        up = _rsync_as(STUDENTS[0], key, sshd, "--mkpath", str(task_dir / "task.toml"), str(task_dir / "meta.json"),
                       str(task_dir / "files"), f"{host}:/incoming/tmp/{task_id}/")
        assert up.returncode == 0, up.stderr
        up = _rsync_as(STUDENTS[0], key, sshd, "--mkpath", str(task_dir / "manifest.json"),
                       f"{host}:/incoming/commit/{task_id}.json")
        assert up.returncode == 0, up.stderr
        outbox = setup.root / "users" / STUDENTS[0] / "outbox" / task_id / "status.json"
        deadline = time.monotonic() + 30
        while not outbox.exists():
            assert time.monotonic() < deadline, alice.daemon_logs()
            time.sleep(0.2)
        st = _json.loads(outbox.read_text())
        assert (st["state"], st["reason"]) == ("failed", "rejected") and "over the upload limit" in st["message"]
        assert not (setup.root / "users" / STUDENTS[0] / "tasks" / task_id).exists()
        assert (setup.root / "users" / STUDENTS[0] / "limits.json").exists()


def test_logs_follow_a_running_job_over_ssh_by_appending(ssh_setup: SshSetup) -> None:
    import time

    alice = ssh_setup.pipes[STUDENTS[0]]
    alice.start("remoted")
    alice.start("spoold")
    task_id = alice.submit(owned_project(alice, "f", "for i in $(seq 1 12); do echo tick$i; sleep 0.5; done"))
    log = alice.home / "spool" / "outbox" / task_id / "logs" / "output.log"
    alice.wait_for(task_id, lambda s: s["state"] == "running", 60, "running")
    deadline = time.monotonic() + 30
    while "tick2" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, alice.daemon_logs()
        time.sleep(0.1)
    inode = log.stat().st_ino
    seen_at = {}
    while time.monotonic() < deadline and "tick12" not in log.read_text():
        text = log.read_text()
        for i in range(1, 13):
            if f"tick{i}\n" in text and i not in seen_at:
                seen_at[i] = time.monotonic()
        time.sleep(0.1)
    assert log.stat().st_ino == inode          # appended in place, never copied again whole
    assert len(seen_at) >= 6                   # lines arrived while the job ran, not only at the end
    r = alice.cli("logs", "-f", task_id, timeout=60)
    assert all(f"tick{i}\n" in r.stdout for i in range(1, 13))


def _service_account_sshd(pytestconfig: pytest.Config, pin: Path | None) -> tuple[str, Sshd]:
    """The service account every student's key logs in as, and a started sshd (keys
    pinned with ``pin``: rrsync or the gate)."""
    from testbed.unix_users import ensure_user

    ok, why = available()
    require(pytestconfig, ok, why)
    svc = "ailabber-svc"
    ensure_user(svc)
    sshd = Sshd(gate=pin)
    sshd.start()
    return svc, sshd


def _service_account_area(root: Path, student: str, svc: str) -> Path:
    """``users/<student>``, the service account's; students' jobs may pass through, not list."""
    area = root / "users" / student
    area.mkdir()
    chown_tree(area, svc)
    os.chmod(area, 0o711)
    return area


def test_service_account_with_keys_pinned_per_student(pytestconfig: pytest.Config, student_python: Path,
                                                      pin: Path | None) -> None:
    """All students log in as one service account; each key is pinned to that student's
    directory; tasks still run as the student."""
    svc, sshd = _service_account_sshd(pytestconfig, pin)
    base = world_dir("ailabber-svc-")
    root = shared_root(base)
    alice = STUDENTS[0]
    area = _service_account_area(root, alice, svc)
    keydir = base / "keys"
    keydir.mkdir(mode=0o700)
    chown_tree(keydir, alice)
    key = keydir / "id_ed25519"
    sshd.authorize(svc, keygen(key, owner=alice), rrsync_dir=area)
    p = student_pipeline(base / "p", alice, student_python, root, base / "home", {"transport_account": svc},
                         spoold_extra={"remote": sshd.url(svc, "/"), "identity_file": str(key),
                                       "ssh_options": sshd.client_options(), "connect_timeout": 5})
    try:
        p.start("remoted")
        p.start("spoold")
        task_id = p.submit(owned_project(p, "s", "mkdir -p output; id -un > output/who; echo made > output/new.txt"))
        st = p.wait_terminal(task_id, 90)
        assert st["state"] == "completed", (st, p.cli("logs", task_id).stdout, p.daemon_logs())
        dest = Path(pwd.getpwnam(alice).pw_dir) / "svc-results" / task_id
        p.cli("fetch", task_id, "--dest", str(dest), check=True)
        assert (dest / "output" / "who").read_text().strip() == alice
    finally:
        p.stop_all()
        sshd.stop()
        if not os.environ.get("AILABBER_KEEP"):
            shutil.rmtree(base, ignore_errors=True)


def test_two_spoolds_of_one_user_with_different_keys_never_share_a_connection(
        pytestconfig: pytest.Config, student_python: Path, pin: Path | None) -> None:
    """One Unix user runs two spoolds (two homes) whose keys are pinned to two different
    directories of the same service account on the same host.  The second spoold starts
    while the first one's multiplexed connection is still open: its task must still go
    through its own key, into its own directory (and so run as that directory's student)."""
    svc, sshd = _service_account_sshd(pytestconfig, pin)
    base = world_dir("ailabber-twokeys-")
    root = shared_root(base)
    client = STUDENTS[0]
    keydir = base / "keys"
    keydir.mkdir(mode=0o700)
    keys: dict[str, Path] = {}
    for student in STUDENTS:
        area = _service_account_area(root, student, svc)
        keys[student] = keydir / f"id-{student}"
        sshd.authorize(svc, keygen(keys[student], owner=client), rrsync_dir=area)
    chown_tree(keydir, client)
    pipes = {student: student_pipeline(
        base / f"p-{student}", client, student_python, root, base / f"home-{student}", {"transport_account": svc},
        spoold_extra={"remote": sshd.url(svc, "/"), "identity_file": str(keys[student]),
                      "ssh_options": sshd.client_options(), "connect_timeout": 5}) for student in STUDENTS}
    try:
        first, second = (pipes[s] for s in STUDENTS)
        first.start("remoted")
        first.start("spoold")
        a = first.submit(owned_project(first, "a", "mkdir -p output; id -un > output/who"))
        assert first.wait_terminal(a, 90)["state"] == "completed", first.daemon_logs()
        second.start("spoold")                 # the first spoold's connection is still open
        b = second.submit(owned_project(second, "b", "mkdir -p output; id -un > output/who"))
        st = second.wait_terminal(b, 90)
        assert st["state"] == "completed", (st, second.daemon_logs())
        assert (root / "users" / STUDENTS[1] / "tasks" / b).is_dir()
        assert not (root / "users" / STUDENTS[0] / "tasks" / b).exists()
        assert (root / "users" / STUDENTS[1] / "tasks" / b / "files" / "output" / "who").read_text().strip() \
            == STUDENTS[1]
    finally:
        for p in pipes.values():
            p.stop_all()
        sshd.stop()
        if not os.environ.get("AILABBER_KEEP"):
            shutil.rmtree(base, ignore_errors=True)


def test_one_student_on_two_workstations_shares_one_directory_without_collisions(
        pytestconfig: pytest.Config, student_python: Path, pin: Path | None) -> None:
    """A student works from two workstations (two homes, two keys, both pinned to her one
    directory): tasks submitted from both at once all run once, each workstation sees and
    cancels only its own, and a cancel on one leaves the other's tasks alone."""
    ok, why = available()
    require(pytestconfig, ok, why)
    sshd = Sshd(gate=pin)
    sshd.start()
    base = world_dir("ailabber-twohomes-")
    root = shared_root(base)
    student = STUDENTS[0]
    area = student_area(root, student)
    keydir = base / "keys"
    keydir.mkdir(mode=0o700)
    chown_tree(keydir, student)
    pipes = []
    for host in ("ws1", "ws2"):
        key = keydir / f"id-{host}"
        sshd.authorize(student, keygen(key, owner=student), rrsync_dir=area)
        pipes.append(student_pipeline(
            base / host, student, student_python, root, base / f"home-{host}",
            spoold_extra={"remote": sshd.url(student, "/"), "identity_file": str(key),
                          "ssh_options": sshd.client_options(), "connect_timeout": 5}))
    ws1, ws2 = pipes
    runs = base / "runs"
    runs.mkdir()
    os.chmod(runs, 0o777)
    try:
        ws1.start("remoted")
        for p in pipes:
            p.start("spoold")
        mine = {host: [p.submit(owned_project(p, f"t{i}", f"echo {host}-{i} >> {runs}/count; mkdir -p output"))
                       for i in range(3)] for host, p in zip(("ws1", "ws2"), pipes)}
        slow = ws2.submit(owned_project(ws2, "slow", "sleep 600"))
        for host, p in zip(("ws1", "ws2"), pipes):
            for task_id in mine[host]:
                assert p.wait_terminal(task_id, 120)["state"] == "completed", p.daemon_logs()
        ws2.wait_for(slow, lambda st: st["state"] == "running", 60, "running")
        assert ws1.cli("cancel", "--all").returncode == 0     # ws1 has nothing unfinished: slow is ws2's
        for host, p in zip(("ws1", "ws2"), pipes):
            listed = {t["id"] for t in json.loads(p.cli("list", "--json", check=True).stdout)}
            assert listed == set(mine[host]) | ({slow} if p is ws2 else set())
        assert ws2.status(slow)["state"] == "running"
        ws2.cli("cancel", slow, check=True)
        assert ws2.wait_terminal(slow, 60)["state"] == "terminated"
        assert sorted(os.listdir(area / "tasks")) == sorted([*mine["ws1"], *mine["ws2"], slow])
        assert sorted((runs / "count").read_text().split()) == sorted(f"{h}-{i}" for h in ("ws1", "ws2")
                                                                      for i in range(3))
    finally:
        for p in pipes:
            p.stop_all()
        sshd.stop()
        if not os.environ.get("AILABBER_KEEP"):
            shutil.rmtree(base, ignore_errors=True)


def test_a_failed_job_without_results_still_comes_home(ssh_setup: SshSetup) -> None:
    alice = ssh_setup.pipes[STUDENTS[0]]
    alice.start("remoted")
    alice.start("spoold")
    task_id = alice.submit(owned_project(alice, "nores", "echo before; exit 3"))
    st = alice.wait_terminal(task_id, 60)       # in done/, although output/ never existed
    assert (st["state"], st["exit_code"]) == ("failed", 3)
    assert "before" in alice.cli("logs", task_id, check=True).stdout


def test_sigterm_during_an_upload_loses_nothing(ssh_setup: SshSetup) -> None:
    import signal
    import time

    alice = ssh_setup.pipes[STUDENTS[0]]
    alice.start("remoted")
    spoold = alice.start("spoold")
    proj = _big_project(alice, "big", files=300, size=1_000_000)
    count = count_runs(proj, ssh_setup.base / "runs")
    task_id = alice.submit(proj)
    upload = ssh_setup.root / "users" / STUDENTS[0] / "incoming" / "tmp" / task_id
    deadline = time.monotonic() + 60
    while not (upload.exists() and sum(f.stat().st_size for f in upload.rglob("*") if f.is_file()) > 20_000_000):
        assert time.monotonic() < deadline, alice.daemon_logs()
        time.sleep(0.02)
    spoold.send_signal(signal.SIGTERM)
    assert spoold.wait(30) == 0                     # stops promptly and cleanly mid-upload
    assert alice.status(task_id)["stage"] == "new"  # not committed, so not lost either
    alice.start("spoold")
    st = alice.wait_terminal(task_id, 120)
    assert st["state"] == "completed", st
    assert count.read_text() == "ran\n"
