"""``ailabber fetch --dest DIR`` when another user prepared DIR.

A shared sticky directory (like ``/tmp``) lets anyone create names in it.  Here a real
second user plants symlinks there, as an attacker would, and the victim (a real user too)
fetches into it: fetch must refuse in one line naming the symlink or directory and its
owner, and the victim's own files must stay exactly as they were.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ailabber.model.task import TaskStatus, transition
from testbed.unix_users import chown_tree, world_dir
from tests.integration.conftest import STUDENTS

VICTIM, ATTACKER = STUDENTS
TASK_ID = "240101-000000000-abcdef"
PRECIOUS = b"the victim's thesis\n"


class Site:
    """A victim with a finished task in her spool and a private file, an attacker, and a
    root-owned sticky directory both can write into."""

    def __init__(self, base: Path, python: Path):
        self.base = base
        self.python = python
        self.home = base / "victim-home"          # AILABBER_HOME of the victim
        self.private = base / "victim-private"    # what the attacker wants overwritten
        self.precious = self.private / "thesis.txt"
        self.shared = base / "shared"
        self.work = base / "victim-work"          # the victim's current directory

    def build(self) -> None:
        spool = self.home / "spool"
        task = spool / "done" / TASK_ID
        (task / "results" / "out" / "deep").mkdir(parents=True)
        (task / "results" / "out" / "model.txt").write_text("weights\n")
        (task / "results" / "out" / "deep" / "curve.csv").write_text("1,2\n")
        (task / "results" / "out" / "latest").symlink_to("model.txt")
        (spool / "outbox" / TASK_ID / "logs").mkdir(parents=True)
        (spool / "outbox" / TASK_ID / "logs" / "output.log").write_text("hello from the job\n")
        st = TaskStatus(id=TASK_ID, owner=VICTIM, submitted_at="2024-01-01T00:00:00.000Z")
        st, _ = transition(st, "completed", None, exit_code=0)
        (task / "status.json").write_text(json.dumps(st.to_dict()))
        self.private.mkdir(mode=0o700)
        self.precious.write_bytes(PRECIOUS)
        self.work.mkdir()
        for d in (self.home, self.private, self.work):
            chown_tree(d, VICTIM)
        self.shared.mkdir()
        os.chmod(self.shared, 0o1777)

    def as_user(self, user: str, *cmd: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        pw = pwd.getpwnam(user)
        env = {"PATH": "/usr/bin:/bin", "HOME": pw.pw_dir, "AILABBER_HOME": str(self.home),
               "AILABBER_FSYNC": "0", "LANG": "C.UTF-8"}
        return subprocess.run(list(cmd), cwd=cwd or self.work, env=env, user=pw.pw_uid, group=pw.pw_gid,
                              extra_groups=[], text=True, capture_output=True, timeout=60,
                              check=False)

    def attacker(self, *cmd: str) -> None:
        r = self.as_user(ATTACKER, *cmd, cwd=self.shared)
        assert r.returncode == 0, r.stderr

    def fetch(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.as_user(VICTIM, str(self.python), "-m", "ailabber", "fetch", TASK_ID, *args)

    def private_state(self) -> dict[str, str]:
        """Every entry of the victim's private directory with its owner, mode and content."""
        out: dict[str, str] = {}
        for p in sorted(self.private.rglob("*")):
            st = p.lstat()
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() and not p.is_symlink() else ""
            out[str(p)] = f"{st.st_uid} {st.st_mode:o} {st.st_mtime_ns} {digest}"
        return out


@pytest.fixture
def site(student_python: Path) -> Iterator[Site]:
    s = Site(world_dir("ailabber-fetch-"), student_python)
    s.build()
    yield s
    shutil.rmtree(s.base, ignore_errors=True)


def _refused(r: subprocess.CompletedProcess[str], message: str) -> None:
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.splitlines() == [f"ailabber: {message}"], r.stderr
    assert r.stdout == ""


def _fetch_into_open_dest_with(site: Site, link: str, target: Path) -> tuple[Path, dict[str, str],
                                                                            subprocess.CompletedProcess[str]]:
    """The victim shares her destination ``out`` (mode 0777), the attacker plants the symlink
    ``out/<link>`` to ``target`` in it, the victim fetches there.  Returns the destination,
    the victim's private state from before the attack and fetch's result, so that each
    attack states only what fetch must have done about its link."""
    dest = site.shared / "out"
    r = site.as_user(VICTIM, "mkdir", "-m", "0777", str(dest))
    assert r.returncode == 0, r.stderr
    before = site.private_state()
    site.attacker("ln", "-s", str(target), f"out/{link}")
    return dest, before, site.fetch("--dest", str(dest))


def _delivered(dest: Path) -> None:
    assert (dest / "out" / "model.txt").read_text() == "weights\n"
    assert (dest / "out" / "deep" / "curve.csv").read_text() == "1,2\n"
    assert os.readlink(dest / "out" / "latest") == "model.txt"
    assert (dest / "ailabber-logs" / "output.log").read_text() == "hello from the job\n"
    assert json.loads((dest / "status.json").read_text())["state"] == "completed"
    victim_uid = pwd.getpwnam(VICTIM).pw_uid
    for p in [dest, *dest.rglob("*")]:
        assert p.lstat().st_uid == victim_uid, p


# --------------------------------------------------------------------------- attacks


def test_dest_planted_as_a_symlink_is_refused(site: Site) -> None:
    before = site.private_state()
    site.attacker("ln", "-s", str(site.private), "out")
    r = site.fetch("--dest", str(site.shared / "out"))
    _refused(r, f"{site.shared / 'out'} is a symlink owned by {ATTACKER}; refusing to write through it")
    assert site.private_state() == before
    assert site.precious.read_bytes() == PRECIOUS


def test_a_symlinked_component_on_the_way_is_refused(site: Site) -> None:
    before = site.private_state()
    site.attacker("ln", "-s", str(site.private), "proj")
    r = site.fetch("--dest", str(site.shared / "proj" / "results"))
    _refused(r, f"{site.shared / 'proj'} is a symlink owned by {ATTACKER}; refusing to write through it")
    assert site.private_state() == before
    assert not (site.private / "results").exists()


def test_dest_precreated_by_the_attacker_with_a_planted_file_link_is_refused(site: Site) -> None:
    before = site.private_state()
    site.attacker("mkdir", "-m", "0777", "out")
    site.attacker("ln", "-s", str(site.precious), "out/status.json")
    r = site.fetch("--dest", str(site.shared / "out"))
    _refused(r, f"{site.shared / 'out'} is a directory owned by {ATTACKER}; refusing to write into it")
    assert site.private_state() == before
    assert site.precious.read_bytes() == PRECIOUS
    # nothing of the victim's landed where the attacker can read or swap it
    assert [p.name for p in (site.shared / "out").iterdir()] == ["status.json"]


def test_a_parent_directory_of_the_attacker_is_refused(site: Site) -> None:
    site.attacker("mkdir", "-m", "0777", "bobs")
    r = site.fetch("--dest", str(site.shared / "bobs" / "mine"))
    _refused(r, f"{site.shared / 'bobs'} is a directory owned by {ATTACKER}; refusing to write below it")
    assert not (site.shared / "bobs" / "mine").exists()


def test_file_links_planted_in_the_victims_open_dest_are_replaced_not_followed(site: Site) -> None:
    """The victim shares her destination (mode 0777); links the attacker puts where fetch
    writes files are replaced by the files, and what they pointed to stays as it was."""
    dest, before, r = _fetch_into_open_dest_with(site, "status.json", site.precious)
    assert r.returncode == 0, r.stderr
    _delivered(dest)
    assert not (dest / "status.json").is_symlink()
    assert site.private_state() == before
    assert site.precious.read_bytes() == PRECIOUS


def test_a_directory_link_planted_in_the_victims_open_dest_is_refused(site: Site) -> None:
    dest, before, r = _fetch_into_open_dest_with(site, "ailabber-logs", site.private)
    _refused(r, f"{dest / 'ailabber-logs'} is a symlink owned by {ATTACKER}; refusing to write through it")
    assert site.private_state() == before
    assert not (site.private / "output.log").exists()


def test_a_directory_the_victim_does_not_own_is_refused(site: Site) -> None:
    r = site.fetch("--dest", str(site.base))
    _refused(r, f"{site.base} is a directory owned by root; refusing to write into it")
    assert not (site.base / "status.json").exists()


# --------------------------------------------------------------------------- normal use


def test_default_dest_is_made_under_the_current_directory(site: Site) -> None:
    r = site.fetch()
    assert r.returncode == 0, r.stderr
    dest = site.work / "ailabber-results" / TASK_ID
    assert r.stdout == f"{TASK_ID} (completed): 4 file(s) in ailabber-results/{TASK_ID}\n"
    _delivered(dest)


def test_a_new_dest_in_the_shared_sticky_directory_is_made_and_used(site: Site) -> None:
    dest = site.shared / "a" / "b"
    r = site.fetch("--dest", str(dest))
    assert r.returncode == 0, r.stderr
    _delivered(dest)
    assert (site.shared / "a").stat().st_uid == pwd.getpwnam(VICTIM).pw_uid


def test_fetch_again_replaces_what_the_first_one_wrote(site: Site) -> None:
    dest = site.work / "res"
    assert site.fetch("--dest", str(dest)).returncode == 0
    (dest / "out" / "model.txt").write_text("edited\n")
    (dest / "status.json").unlink()
    r = site.fetch("--dest", "res/../res")
    assert r.returncode == 0, r.stderr
    _delivered(dest)
    assert sorted(p.name for p in dest.iterdir()) == ["ailabber-logs", "out", "status.json"]


def test_a_symlink_root_made_in_a_root_directory_is_followed(site: Site) -> None:
    """Admins link directories (``/home -> /data/home``); such a link cannot be planted
    by a user, so fetch goes through it."""
    (site.base / "scratch").symlink_to(site.work)
    r = site.fetch("--dest", str(site.base / "scratch" / "res"))
    assert r.returncode == 0, r.stderr
    _delivered(site.work / "res")


def test_a_parent_the_victim_may_only_pass_through_is_fine(site: Site) -> None:
    """A directory with mode 0711 can be searched but not listed: enough to get through."""
    locked = site.base / "locked"
    locked.mkdir(mode=0o711)
    os.chmod(locked, 0o711)
    (locked / "victim").mkdir()
    chown_tree(locked / "victim", VICTIM)
    r = site.fetch("--dest", str(locked / "victim" / "res"))
    assert r.returncode == 0, r.stderr
    _delivered(locked / "victim" / "res")
