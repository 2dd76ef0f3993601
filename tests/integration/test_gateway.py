"""A cluster behind a gateway: the workstation reaches the cluster's sshd only through a
bastion, either by ssh's ``ProxyJump`` or through a forwarded port (as a reverse tunnel
such as frp, or ``ssh -L``, gives one).  Three network namespaces in a line; the bastion
forwards nothing by itself, and its key only lets the student open a connection to the
cluster's sshd."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testbed import netns
from testbed.pipeline import Pipeline, owned_project, shared_root, student_area, student_pipeline, wait_until
from testbed.sshd import Sshd, available, keygen
from testbed.unix_users import chown_tree, ensure_user, world_dir
from tests.conftest import require

STUDENT = "ailabber-roamer"        # a student of her own: her ~/.ssh/config is written here
BASTION_ALIAS = "ailabber-bastion"


@dataclass
class Site:
    gw: netns.Gateway
    bastion: Sshd
    cluster: Sshd
    base: Path
    root: Path
    key: Path


def _reachable(gw: netns.Gateway, ns: str, host: str, port: int) -> bool:
    cmd = [*gw.exec_prefix(ns), "bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}"]
    return subprocess.run(cmd, capture_output=True, timeout=15).returncode == 0


def _as_student(gw: netns.Gateway) -> list[str]:
    pw = pwd.getpwnam(STUDENT)
    return [*gw.exec_prefix(gw.workstation), "setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
            "--init-groups", "--"]


def _ssh_config(site: Site) -> None:
    """The student's ``~/.ssh/config``: how to reach the bastion (ssh reads it from the
    account's home, whatever the environment says; ``ProxyJump`` takes nothing from the
    command line's ``-i``)."""
    home = Path(pwd.getpwnam(STUDENT).pw_dir)
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "config").write_text(
        f"Host {BASTION_ALIAS}\n    HostName {site.gw.bastion_addr}\n    Port {site.bastion.port}\n"
        f"    User {STUDENT}\n    IdentityFile {site.key}\n    IdentitiesOnly yes\n    BatchMode yes\n"
        "    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n")
    os.chmod(ssh_dir / "config", 0o600)
    chown_tree(ssh_dir, STUDENT)


@pytest.fixture
def site(pytestconfig: pytest.Config) -> Iterator[Site]:
    for ok, why in (netns.available(), available()):
        require(pytestconfig, ok, why)
    ensure_user(STUDENT)
    gw = netns.Gateway()
    gw.up()
    bastion = Sshd(listen=gw.bastion_addr, netns=gw.bastion)
    cluster = Sshd(listen=gw.cluster_addr, netns=gw.cluster)
    base = world_dir("ailabber-gateway-")
    try:
        root = shared_root(base)
        area = student_area(root, STUDENT)
        keydir = base / "keys"
        keydir.mkdir(mode=0o700)
        key = keydir / "id_ed25519"
        public = keygen(key, owner=STUDENT)
        chown_tree(keydir, STUDENT)
        cluster.authorize(STUDENT, public, rrsync_dir=area)
        bastion.authorize(STUDENT, public, None, jump_to=f"{gw.cluster_addr}:{cluster.port}")
        bastion.start()
        cluster.start()
        s = Site(gw, bastion, cluster, base, root, key)
        _ssh_config(s)
        # The premise: from the workstation, the cluster's sshd is out of reach.
        assert _reachable(gw, gw.workstation, gw.bastion_addr, bastion.port)
        assert not _reachable(gw, gw.workstation, gw.cluster_addr, cluster.port)
        yield s
    finally:
        for d in (bastion, cluster):
            d.stop()
        gw.down()
        shutil.rmtree(Path(pwd.getpwnam(STUDENT).pw_dir) / ".ssh", ignore_errors=True)
        if not os.environ.get("AILABBER_KEEP"):
            shutil.rmtree(base, ignore_errors=True)


def _round_trip(site: Site, p: Pipeline) -> None:
    p.spoold_prefix = _as_student(site.gw)
    p.start("remoted")
    p.start("spoold")
    task_id = p.submit(owned_project(p, "gw", "mkdir -p output; echo far > output/where"))
    st = p.wait_terminal(task_id, 120)
    assert st["state"] == "completed", (st, p.daemon_logs())
    assert (p.home / "spool" / "done" / task_id / "results" / "output" / "where").read_text() == "far\n"


def _pipeline(site: Site, student_python: Path, remote: str, options: list[str]) -> Pipeline:
    return student_pipeline(site.base / "p", STUDENT, student_python, site.root, site.base / "home",
                            spoold_extra={"remote": remote, "identity_file": str(site.key),
                                          "ssh_options": options, "connect_timeout": 5})


def test_through_a_jump_host(site: Site, student_python: Path) -> None:
    """``ProxyJump`` in spoold.yaml's ``ssh_options``, the bastion described in the
    student's ``~/.ssh/config``."""
    p = _pipeline(site, student_python, site.cluster.url(STUDENT, "/"),
                  [*site.cluster.client_options(), f"ProxyJump={BASTION_ALIAS}"])
    try:
        _round_trip(site, p)
    finally:
        p.stop_all()


def test_through_a_forwarded_port(site: Site, student_python: Path) -> None:
    """A port on the workstation forwarded to the cluster's sshd (here by ``ssh -L``
    through the bastion; a reverse tunnel such as frp gives the same): spoold's
    ``remote`` names that port, and ``HostKeyAlias`` keeps the cluster's host key apart
    from whatever else listens on localhost."""
    port = 2022
    forward = subprocess.Popen(
        [*_as_student(site.gw), "ssh", "-N", "-o", "ExitOnForwardFailure=yes",
         "-L", f"127.0.0.1:{port}:{site.gw.cluster_addr}:{site.cluster.port}", BASTION_ALIAS],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    p = _pipeline(site, student_python, f"ssh://{STUDENT}@127.0.0.1:{port}/",
                  [*site.cluster.client_options(), "HostKeyAlias=cluster.example"])
    try:
        wait_until(lambda: forward.poll() is not None or _reachable(site.gw, site.gw.workstation, "127.0.0.1", port),
                   "the forwarded port", 30)
        assert forward.poll() is None, forward.stderr.read() if forward.stderr else ""
        _round_trip(site, p)
    finally:
        p.stop_all()
        forward.terminate()
        forward.wait(10)
