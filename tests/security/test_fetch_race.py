"""``ailabber fetch --dest`` into a shared directory while another student races it.

The victim (a real account) has a finished task in her spool whose results, logs and
status carry a unique secret.  She fetches it again and again into ``<shared>/out-loot``
and ``<shared>/out-private``; meanwhile the attacker (a real account, running her swap
loop as her own uid) keeps flipping those names between the victim's real directory and
a symlink: ``out-loot`` to a directory of the attacker's that anyone may write (so the
victim's results would land where the attacker reads them), ``out-private`` to the
victim's private directory (so fetch would overwrite the victim's own ``status.json``
and ``ailabber-logs/`` there).  Before the victim's first fetch the symlinks are simply
planted.  Two kinds of shared directory: sticky and world-writable like ``/tmp`` (the
attacker may only plant, and ``fs.protected_symlinks`` may or may not be on), and a
plain world-writable one (like a group's project directory, where she may also rename
the victim's directory away).

Whatever the interleaving, never: a file in the attacker's directory, a byte of the
secret anywhere below it, a change in the victim's private directory.  Fetches that
refuse are fine.

Catches: a fetch that resolves ``--dest`` by path (``mkdir(exist_ok=True)`` then
``copytree``): a symlink in place at any of its many path walks redirects the copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ailabber.model.task import TaskStatus, transition
from testbed.unix_users import chown_tree, world_dir
from tests.integration.conftest import student_python  # noqa: F401
from tests.security.hostile_site import (
    ATTACKER,
    VICTIM,
    SwapLoop,
    changes,
    ensure_students,
    files_containing,
    listing,
    pw,
    swap,
)

TASK_ID = "250101-000000000-secret"


class FetchSite:
    def __init__(self, python: Path, shared_mode: int):
        ensure_students()
        self.base = world_dir("ailabber-sec-fetch-")
        self.python = python
        self.secret = f"VICTIM-SECRET-{uuid.uuid4().hex}"
        self.home = self.base / "victim-home"
        spool = self.home / "spool"
        task = spool / "done" / TASK_ID
        (task / "results" / "output" / "deep").mkdir(parents=True)
        (task / "results" / "output" / "model.txt").write_text(f"weights {self.secret}\n")
        (task / "results" / "output" / "deep" / "curve.csv").write_text(f"1,2 {self.secret}\n")
        (spool / "outbox" / TASK_ID / "logs").mkdir(parents=True)
        (spool / "outbox" / TASK_ID / "logs" / "output.log").write_text(f"{self.secret}\n")
        st = TaskStatus(id=TASK_ID, owner=VICTIM, submitted_at="2025-01-01T00:00:00.000Z")
        st, _ = transition(st, "completed", None, exit_code=0, message=f"done {self.secret}")
        (task / "status.json").write_text(json.dumps(st.to_dict()))
        # The victim's private directory, holding names a fetch would write.
        self.private = self.base / "victim-private"
        (self.private / "ailabber-logs").mkdir(parents=True)
        (self.private / "status.json").write_text("the victim's own notes\n")
        (self.private / "ailabber-logs" / "output.log").write_text("the victim's own log\n")
        self.work = self.base / "victim-work"
        self.work.mkdir()
        for d in (self.home, self.private, self.work):
            chown_tree(d, VICTIM)
        os.chmod(self.private, 0o700)
        # The attacker's directory, open for anyone to write into.
        self.loot = self.base / "attacker-loot"
        self.loot.mkdir()
        chown_tree(self.loot, ATTACKER)
        os.chmod(self.loot, 0o777)
        self.shared = self.base / "shared"
        self.shared.mkdir()
        os.chmod(self.shared, shared_mode)
        self.sticky = bool(shared_mode & 0o1000)

    def fetch(self, dest: Path) -> subprocess.CompletedProcess[str]:
        p = pw(VICTIM)
        env = {"PATH": "/usr/bin:/bin", "HOME": p.pw_dir, "AILABBER_HOME": str(self.home),
               "AILABBER_FSYNC": "0", "LANG": "C.UTF-8"}
        return subprocess.run([str(self.python), "-m", "ailabber", "fetch", TASK_ID, "--dest", str(dest)],
                              cwd=self.work, env=env, user=p.pw_uid, group=p.pw_gid, extra_groups=[],
                              text=True, capture_output=True, timeout=60, check=False)


@pytest.fixture(params=[0o1777, 0o777], ids=["sticky-shared", "open-shared"])
def fsite(request: pytest.FixtureRequest, student_python: Path) -> Iterator[FetchSite]:  # noqa: F811
    s = FetchSite(student_python, request.param)
    yield s
    shutil.rmtree(s.base, ignore_errors=True)


def test_fetch_into_a_raced_shared_dest_never_writes_elsewhere(fsite: FetchSite) -> None:
    private_before = listing(fsite.private, ignore=())
    to_loot, to_private = fsite.shared / "out-loot", fsite.shared / "out-private"
    stop = fsite.base / "stop"
    # In a sticky directory only the owner of a name may rename it: the attacker's move
    # is to keep her symlinks planted (re-planting any she loses).  In an open one she
    # flips the victim's own directory with a symlink, again and again.
    sticky = fsite.sticky
    loop = SwapLoop(ATTACKER, [swap(to_loot, fsite.loot, plant=True, sticky=sticky),
                               swap(to_private, fsite.private, plant=True, sticky=sticky)],
                    seconds=15, hold=0.0005, stop_file=stop)
    outcomes: list[str] = []
    deadline = time.monotonic() + 12
    try:
        time.sleep(0.2)                       # the loop plants its symlinks first
        for i in range(12):
            if time.monotonic() > deadline:
                break
            r = fsite.fetch(to_loot if i % 2 == 0 else to_private)
            outcomes.append(f"rc={r.returncode} {(r.stdout + r.stderr).strip()[:160]}")
    finally:
        stop.touch()
        counts = loop.result()
    found = []
    if os.listdir(fsite.loot):
        found.append(f"the victim's fetch wrote into the attacker's directory: {sorted(os.listdir(fsite.loot))}")
    leaked = files_containing(fsite.loot, fsite.secret)
    if leaked:
        found.append(f"the secret is in {len(leaked)} file(s) the attacker owns the directory of")
    diff = changes(private_before, listing(fsite.private, ignore=()))
    if diff:
        found.append("the victim's private directory changed:\n  " + "\n  ".join(diff))
    assert not found, "\n".join(found) + "\nfetches:\n  " + "\n  ".join(outcomes)
    assert len(outcomes) >= 4, outcomes
    if sticky:
        planted = [c["ok"] for c in counts["per_swap"].values()]
        assert all(n >= 1 for n in planted), f"the symlinks were never planted: {counts}"
    else:
        assert counts["exchanges"] >= 20, f"the attack hardly raced: {counts}"
