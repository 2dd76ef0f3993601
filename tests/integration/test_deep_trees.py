"""A project tree too deep for rsync: refused by ``submit`` in one short line, and ended for
good by a real spoold when it meets one in its spool (as an older client left it), instead
of being retried for ever."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.pipeline import Pipeline
from tests.unit.test_pathlimits import deep_tmp, make_chain  # noqa: F401


@pytest.fixture
def client(deep_tmp: Path) -> Iterator[Pipeline]:
    """spoold with a local remote root; no remoted (nothing here gets that far)."""
    p = Pipeline(deep_tmp)
    yield p
    p.stop_all()


def _tree(base: Path) -> list[str]:
    return sorted(str(p.relative_to(base)) for p in base.rglob("*")) if base.exists() else []


def test_submit_refuses_a_1950_level_tree_in_one_short_line(client: Pipeline) -> None:
    proj = client.project(["true"])
    make_chain(proj, 1950, name="d")
    spool_before = _tree(client.home)
    r = subprocess.run([sys.executable, "-m", "ailabber", "submit"], cwd=proj, env=client.env(), text=True,
                       capture_output=True, timeout=120, check=False)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr == ("ailabber: task_config.toml: files.upload: 'd/d/…(1947 more)…/d/f.py' is 1951 levels "
                        "deep; the limit is 64; move it up or add it to files.ignore\n")
    assert _tree(client.home) == spool_before


def test_spoold_ends_a_spooled_deep_task_for_good_and_sends_the_rest(client: Pipeline) -> None:
    deep = client.submit(client.project(["true"]))
    fine = client.submit(client.project(["true"]))
    # what an older submit, without the depth limit, left in the spool
    make_chain(client.home / "spool" / "new" / deep / "files", 1950, name="d")
    client.start("spoold")
    st = client.wait_terminal(deep, timeout=60)
    assert (st["state"], st["reason"]) == ("failed", "too_large"), st
    assert st["message"].startswith("'d/d/…(") and "levels deep; the limit is 64" in st["message"], st
    assert len(st["message"]) < 200
    client.wait_for(fine, lambda s: s["stage"] == "synced", 60, "the other task to be sent")
    incoming = client.root / "users" / _user() / "incoming"
    assert not (incoming / "tmp" / deep).exists() and not (incoming / "commit" / f"{deep}.json").exists()
    events = [json.loads(line) for line in
              (client.home / "spool" / "done" / deep / "events.jsonl").read_text().splitlines()]
    assert not any(e.get("reason") == "uploading" for e in events), events


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name
