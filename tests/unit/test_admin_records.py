"""What remoted keeps for the course staff: each record's history is the task's published
events, line for line, and ``state/`` is open to the admin_group's gid only (remoted's
``Remoted`` in this process over the fake scheduler, as in test_remoted_logic)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from ailabber.model.remote_layout import UserArea
from ailabber.model.task import TaskStatus
from remoted.admin.course import course_rows, find_row
from remoted.records import RecordStore, TaskRecord
from tests.unit.test_remoted_logic import Site, site_factory  # noqa: F401


def _events(site: Site, user: str, task_id: str) -> list[dict[str, object]]:
    path = UserArea(site.root, user).task_outbox(task_id) / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_record_keeps_the_events_its_outbox_got(site_factory: Callable[..., Site]) -> None:  # noqa: F811
    site = site_factory(gpus=1)
    ann = site.student("ann")
    done = ann.submit(["true"], gpus=1)
    failed = ann.submit(["exit 3"])
    waiting = ann.submit(["sleep 300"])
    site.upload()
    for t in (done, failed):
        site.final("ann", t)
    site.step_until(lambda: site.status("ann", waiting)["state"] == "running", "the third task to run")
    ann.spool.drop_request(waiting, "cancel")
    site.upload()
    site.final("ann", waiting)
    for t in (done, failed, waiting):
        kept = site.record("ann", t).history
        assert kept == _events(site, "ann", t), t
    states = [e["state"] for e in _events(site, "ann", waiting)]
    assert states[0] == "pending" and "running" in states and states[-1] == "terminated"
    row = find_row(course_rows(site.root), "ann/" + waiting)
    assert row.cancelled_by == "ann"
    assert row.elapsed(0) is not None and row.elapsed(0) > 0      # a finished task's run ignores now


def _mode_and_group(p: Path) -> tuple[int, int]:
    st = os.stat(p)
    return stat.S_IMODE(st.st_mode), st.st_gid


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another group needs root")
def test_state_is_open_to_the_staff_group_only_where_records_are(tmp_path: Path) -> None:
    gid = 4242                       # any gid: the kernel checks membership, not the group database
    store = RecordStore(tmp_path, readers=gid)
    (tmp_path / "state" / "done" / "ann").mkdir(parents=True, mode=0o700)      # from an earlier run
    store.ensure()
    state = tmp_path / "state"
    for d in (state, state / "active", state / "done", state / "disk", state / "done" / "ann"):
        assert _mode_and_group(d) == (0o750, gid), d
    for d in (state / "jobs", state / "owed"):
        assert _mode_and_group(d)[0] == 0o700, d
    store.save(TaskRecord(id="t1", user="bob", status=TaskStatus(id="t1")))     # a user's first record
    assert _mode_and_group(state / "active" / "bob") == (0o750, gid)
    private = RecordStore(tmp_path)          # admin_group removed: private again
    private.ensure()
    for d in (state, state / "active", state / "done" / "ann"):
        assert _mode_and_group(d)[0] == 0o700, d
