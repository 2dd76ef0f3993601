"""The accept and launch races again, with both students on the ssh transport.

A real sshd on loopback; each student's key pinned to her own area, as the admin guide
says: with rrsync, and again with ailabber's gate (rrsync plus ``watch``).  Both students submit with the real CLI and their own spoold (running
as them) over ssh; remoted runs as root.  The attacker races in two ways at once, as she
could from one machine: her swap loop on the cluster's filesystem as her uid (the run
directory of each task for a symlink to a root-owned directory or the victim's run
directory; ``task.toml`` for a symlink to the victim's), and, through her pinned key,
rsync uploads of symlinks over her accepted tasks' ``task.toml`` and
``run/result.json`` (rsync replaces a file by a symlink with one rename).

Never, whatever the interleaving: a file created in the root-owned directory, a change
in the victim's tree, the victim's command run as the attacker, a byte of the victim's
secret in the attacker's area or in what her spoold pulled to her workstation.
Catches the same unsafe steps as ``test_races.py`` (paths built from her area and used
as root; ``task.toml`` checked, then read again by path), reached through her transport.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.pipeline import Pipeline, owned_project, student_pipeline
from testbed.sshd import Sshd, available, keygen
from testbed.unix_users import chown_tree
from tests.conftest import require
from tests.integration.conftest import pin, student_python  # noqa: F401
from tests.security.hostile_site import (
    ATTACKER,
    VICTIM,
    Site,
    SwapLoop,
    as_user,
    changes,
    entries,
    files_containing,
    listing,
    pw,
    root_only_dir,
    swap,
    user_env,
)


class SshSite:
    def __init__(self, site: Site, sshd: Sshd):
        self.site, self.sshd = site, sshd
        self.keys: dict[str, Path] = {}
        self.pipes: dict[str, Pipeline] = {}
        for user in (ATTACKER, VICTIM):
            keydir = site.base / f"keys-{user}"
            keydir.mkdir(mode=0o700)
            chown_tree(keydir, user)
            self.keys[user] = keydir / "id_ed25519"
            sshd.authorize(user, keygen(self.keys[user], owner=user), rrsync_dir=site.area(user))
            self.pipes[user] = student_pipeline(
                site.base / f"client-{user}", user, site.py, site.root, site.base / f"home-{user}",
                spoold_extra={"remote": sshd.url(user, "/"), "identity_file": str(self.keys[user]),
                              "ssh_options": sshd.client_options(), "connect_timeout": 5})

    def rsync_as(self, user: str, *args: str) -> subprocess.Popen[str]:
        ssh = " ".join(["ssh", "-i", str(self.keys[user]), "-p", str(self.sshd.port), "-o", "BatchMode=yes",
                        *[f"-o {o}" for o in self.sshd.client_options()]])
        return subprocess.Popen(["rsync", "-rl", "-e", ssh, *args], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=user_env(user), **as_user(user))


@pytest.fixture
def ssh_site(pytestconfig: pytest.Config, student_python: Path,  # noqa: F811
             pin: Path | None) -> Iterator[SshSite]:  # noqa: F811
    ok, why = available()
    require(pytestconfig, ok, why)
    sshd = Sshd(gate=pin)
    sshd.start()
    site = Site(student_python, "ailabber-sec-ssh-")
    s: SshSite | None = None
    try:
        s = SshSite(site, sshd)
        site.start()
        for p in s.pipes.values():
            p.start("spoold")
        yield s
    finally:
        for p in (s.pipes.values() if s else ()):
            p.stop_all()
        sshd.stop()
        site.stop()


def test_races_through_the_ssh_transport_redirect_nothing(ssh_site: SshSite) -> None:
    site = ssh_site.site
    vic, mal = ssh_site.pipes[VICTIM], ssh_site.pipes[ATTACKER]
    secret = f"VICTIM-SECRET-{uuid.uuid4().hex}"
    v_id = vic.submit(owned_project(vic, "victim", f"echo {secret}; echo ran > {site.markers}/ran-by-uid-$(id -u); exit 3"))
    st = vic.wait_terminal(v_id, 90)
    assert st["state"] == "failed" and secret in (st.get("message") or ""), (st, vic.daemon_logs()[-3000:])
    v_dir = site.task_dir(VICTIM, v_id)
    victim_before = listing(site.area(VICTIM))
    rootdir = root_only_dir(site.base, "root-only")
    mark = site.markers / f"ran-by-uid-{pw(ATTACKER).pw_uid}"

    # The attacker's projects; their ids are known only once submitted, so the loop is
    # started after the submits, before her spoold has uploaded them all (it takes them
    # in passes) -- and remoted gets them only over ssh, through her spoold.
    mal.kill("spoold", 15)
    ids = [mal.submit(owned_project(mal, f"m{i}", "sleep 2")) for i in range(8)]   # running while she uploads
    site.ids += ids                # their processes are ended with the site
    swaps = []
    stage = site.base / "transport-links"
    for i, task_id in enumerate(ids):
        run = site.task_dir(ATTACKER, task_id) / "run"
        swaps.append(swap(run, rootdir if i % 2 == 0 else v_dir / "run", plant=True))
        if i < 6:           # two are left alone at intake: some of hers are surely accepted
            read = site.outbox(ATTACKER, task_id) / "status.json"
            swaps.append(swap([site.area(ATTACKER) / "incoming" / "tmp" / task_id / "task.toml",
                               site.task_dir(ATTACKER, task_id) / "task.toml"], v_dir / "task.toml",
                              tmp=site.area(ATTACKER) / f".toml-{task_id}", until=read,
                              when=site.area(ATTACKER) / "incoming" / "tmp" / task_id))
        # What she uploads through her key: symlinks in place of her accepted task's files.
        (stage / "tasks" / task_id / "run").mkdir(parents=True)
        os.symlink(v_dir / "task.toml", stage / "tasks" / task_id / "task.toml")
        os.symlink(v_dir / "run" / "result.json", stage / "tasks" / task_id / "run" / "result.json")
    chown_tree(stage, ATTACKER)
    stop = site.base / "stop"
    loop = SwapLoop(ATTACKER, swaps, seconds=80, hold=0.001, stop_file=stop)  # stopped by `stop` below
    mal.start("spoold")
    host = f"{ATTACKER}@{ssh_site.sshd.listen}:/"
    uploads = 0
    deadline = time.monotonic() + 20
    latest = deadline + 60        # on a loaded machine her tasks may be accepted late: wait for one
    try:
        while time.monotonic() < deadline or (uploads == 0 and time.monotonic() < latest):
            statuses = {t: site.status(ATTACKER, t) for t in ids}
            if uploads and all(s is not None and s["state"] in ("completed", "failed", "canceled", "terminated")
                               for s in statuses.values()):
                break           # (on a quiet machine her tasks may all end before the first try)
            # Only the tasks already accepted: rsync may not create tasks/<id> (root's).
            accepted = [t for t in ids if site.task_dir(ATTACKER, t).is_dir()]
            if accepted:
                r = ssh_site.rsync_as(ATTACKER, "--relative", *[f"{stage}/./tasks/{t}" for t in accepted], host)
                r.wait(30)
                uploads += 1
            else:
                time.sleep(0.1)
    finally:
        stop.touch()
        counts = loop.result()
    site.settle(ATTACKER, ids, timeout=20)
    for task_id in ids:         # what her spoold pulled to her workstation
        try:
            mal.wait_terminal(task_id, 30)
        except AssertionError:
            pass

    found = []
    if entries(rootdir):
        found.append(f"remoted (as root) created {entries(rootdir)} in the root-owned directory {rootdir}")
    diff = changes(victim_before, listing(site.area(VICTIM)))
    if diff:
        found.append("the victim's tree changed:\n  " + "\n  ".join(diff))
    for where in (site.area(ATTACKER), mal.home):
        leaked = files_containing(where, secret)
        if leaked:
            found.append(f"the victim's secret reached {len(leaked)} file(s) of the attacker's in {where}: "
                         + ", ".join(sorted(leaked.values())[:8]))
    if mark.exists():
        found.append("the victim's command ran as the attacker (the marker names her uid)")
    if not site.alive():
        found.append("remoted died")
    assert not found, "\n".join(found)
    assert counts["exchanges"] >= 20, f"the attack hardly raced: {counts}"
    outcome = {t: (s or {}).get("state", "no status") + "/" + str((s or {}).get("reason")) for t, s in
               ((t, site.status(ATTACKER, t)) for t in ids)}
    assert uploads >= 1, f"no upload of symlinks through her key was tried: {outcome}\n{mal.daemon_logs()[-4000:]}"
    shutil.rmtree(stage, ignore_errors=True)
