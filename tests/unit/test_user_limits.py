"""Each student's limits: remoted.yaml's, with the staff's overrides in place, asked in one
place (``CourseLimits.of``) and in force from remoted's next pass.  The lookup itself is
pure; the last tests drive the product's remoted over the fake scheduler with a staff
request written as ``ailabber admin limits`` writes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ailabber.cli.common import CliError
from ailabber.daemonkit.remoted_settings import UserLimits
from ailabber.model.remote_layout import UserArea
from remoted.admin.ask import send
from remoted.admin.limits import parse_changes
from remoted.admin.requests import SetLimits
from remoted.estimate import Waiting, start_bounds
from remoted.user_limits import CourseLimits, Overrides, limit_text, limits_for, read_overrides
from tests.unit.test_remoted_logic import Site, _gate

COURSE = UserLimits(max_running=2, max_gpus=1, max_disk_bytes=10 * 1024**3)


def test_a_student_without_overrides_has_the_course_limits_and_one_with_them_has_theirs() -> None:
    over = Overrides().changed("alice", {"max_running": 4, "max_disk_bytes": None}, ())
    assert limits_for(COURSE, over, "bob") == COURSE
    alice = limits_for(COURSE, over, "alice")
    assert alice == COURSE._replace(max_running=4, max_disk_bytes=None)
    assert alice.published().max_disk_bytes is None            # what intake checks and limits.json says


def test_default_removes_an_override_and_the_last_one_removes_the_student() -> None:
    over = Overrides().changed("alice", {"max_running": 4, "max_gpus": 0}, ())
    over = over.changed("alice", {}, ("max_running",))
    assert over.users == {"alice": {"max_gpus": 0}}
    assert over.changed("alice", {}, ("max_gpus",)).users == {}


def test_the_file_is_read_back_with_each_value_checked_again(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    limits = CourseLimits(tmp_path, COURSE)
    limits.save(Overrides().changed("alice", {"max_running": 4}, ()))
    assert read_overrides(tmp_path) == limits.overrides
    doc = json.loads(limits.path.read_text())
    doc["users"]["alice"].update(max_gpus=-1, max_cpus=3)                    # nobody but remoted writes it
    doc["users"]["../bob"] = {"max_running": 9}
    limits.path.write_text(json.dumps(doc))
    assert read_overrides(tmp_path).users == {"alice": {"max_running": 4}}


def test_of_follows_a_saved_override_and_a_reloaded_course(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    limits = CourseLimits(tmp_path, COURSE)
    assert limits.of("alice").max_running == 2
    limits.save(limits.overrides.changed("alice", {"max_running": 5}, ()))
    assert limits.of("alice").max_running == 5
    limits.base = COURSE._replace(max_running=1, max_gpus=3)
    assert (limits.of("alice").max_running, limits.of("alice").max_gpus, limits.of("bob").max_running) == (5, 3, 1)


def test_start_bounds_use_each_students_own_limits() -> None:
    waiting = [Waiting("a1", "ann", 0, 10), Waiting("a2", "ann", 0, 10), Waiting("b1", "ben", 0, 10)]
    plain = start_bounds(waiting, [], 4, 0.0, max_running=1)
    assert plain == {"a1": 0.0, "a2": 10.0, "b1": 0.0}
    assert start_bounds(waiting, [], 4, 0.0, max_running=1, caps={"ann": (2, None)}) == {"a1": 0.0, "a2": 0.0,
                                                                                        "b1": 0.0}


def test_values_on_the_command_line_are_written_as_in_remoted_yaml() -> None:
    values, defaults = parse_changes(["max_running=4", "max_disk_bytes=50G", "max_time_limit=2-00:00:00",
                                      "max_memory=32G", "max_queued=null", "max_gpus=default"])
    assert values == {"max_running": 4, "max_disk_bytes": 50 * 1024**3, "max_time_limit": 2 * 86400,
                      "max_memory": 32 * 1024, "max_queued": None}
    assert defaults == ["max_gpus"]
    assert [limit_text(k, v) for k, v in values.items()] == ["4", "50G", "2-00:00:00", "32G", "null"]
    for bad, says in (("max_runing=4", "did you mean 'max_running'"), ("max_running=0", "max_running: must be"),
                      ("max_running", "KEY=VALUE"), ("max_disk_bytes=lots", "max_disk_bytes: must be a size"),
                      ("max_gpus=1 max_gpus=2", "given twice")):
        with pytest.raises(CliError, match=says):
            parse_changes(bad.split())


def test_an_override_is_in_force_from_the_next_pass_and_published(tmp_path: Path) -> None:
    site = Site(tmp_path, gpus=4, limits=UserLimits(max_running=1))
    try:
        gate, wait = _gate(tmp_path)
        ann, ben = site.student("ann"), site.student("ben")
        a_ids = [ann.submit([wait]) for _ in range(3)]
        b_ids = [ben.submit([wait]) for _ in range(2)]
        site.upload()
        site.step()
        assert len(site.fake.started) == 2                      # one each
        send(site.root, SetLimits("ann", (("max_running", 3),)))
        site.step_until(lambda: len(site.fake.started) == 4, "ann's other two tasks to start")
        assert set(a_ids) <= set(site.fake.started) and site.status("ben", b_ids[1])["reason"] == "user_limit"
        def published() -> dict[str, int]:
            return dict(json.loads((UserArea(site.root, "ann").path / "limits.json").read_text()))

        site.step_until(lambda: published()["launched"] == 3, "limits.json to count ann's three tasks")
        assert published()["max_running"] == 3
        gate.touch()
        for t in a_ids:
            site.final("ann", t)
    finally:
        site.remote.close()
        for st in site.students.values():
            st.spoold.transport.close()
