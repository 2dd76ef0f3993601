"""What remoted tells a student about the queue and their use, over the fake scheduler:
``outbox/queue.json`` (places and start bounds) and the job part of ``limits.json``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ailabber.daemonkit.remoted_settings import UserLimits
from ailabber.model.remote_layout import UserArea
from ailabber.model.task import parse_iso
from tests.unit.test_remoted_logic import Site, _gate, site_factory  # noqa: F401

LIMIT = 600 + 2          # the projects' time limit (10:00) and the fake's kill grace


def _queue(site: Site, user: str) -> dict[str, Any]:
    path = UserArea(site.root, user).path / "outbox" / "queue.json"
    return dict(json.loads(path.read_text())["tasks"])


def _limits(site: Site, user: str) -> dict[str, Any]:
    return dict(json.loads((UserArea(site.root, user).path / "limits.json").read_text()))


def test_waiting_tasks_get_their_place_and_a_start_bound_from_the_time_limits(
        site_factory: Callable[..., Site], tmp_path: Path) -> None:  # noqa: F811
    """One GPU, three tasks of ann and one of ben: ann's first runs; ben's comes next
    (round-robin), then ann's two, each at the latest one time limit after the one before."""
    site = site_factory(gpus=1)
    gate, wait = _gate(tmp_path)
    ann, ben = site.student("ann"), site.student("ben")
    a1, a2, a3 = (ann.submit([wait], gpus=1) for _ in range(3))
    b1 = ben.submit([wait], gpus=1)
    site.upload()
    site.step_until(lambda: site.status("ann", a1)["state"] == "running", "ann's first task to run")
    started = parse_iso(site.status("ann", a1)["started_at"])
    assert started is not None
    ann_q, ben_q = _queue(site, "ann"), _queue(site, "ben")
    assert set(ann_q) == {a2, a3} and set(ben_q) == {b1}
    assert [(ben_q[b1]["queue_position"], ben_q[b1]["queue_ahead"], ben_q[b1]["queue_length"]),
            (ann_q[a2]["queue_position"], ann_q[a2]["queue_ahead"]),
            (ann_q[a3]["queue_position"], ann_q[a3]["queue_ahead"])] == [(1, 0, 3), (2, 1), (3, 2)]
    for entry, ends_before in ((ben_q[b1], 1), (ann_q[a2], 2), (ann_q[a3], 3)):
        assert entry["start_estimate_kind"] == "upper_bound"
        bound = parse_iso(entry["start_estimate"])
        assert bound is not None and abs(bound - (started + ends_before * LIMIT)) < 1.0, (entry, started)
    site.step()          # limits.json is written as a pass begins: it counts what the last one left
    use = _limits(site, "ann")
    assert (use["running"], use["pending"], use["launched"], use["queued"], use["gpus_in_use"]) == (1, 2, 1, 2, 1)
    assert use["max_gpus_per_task"] == 1           # the machine's one GPU
    gate.touch()
    for user, t in (("ann", a1), ("ann", a2), ("ann", a3), ("ben", b1)):
        assert site.final(user, t)["state"] == "completed"
    site.step()
    assert _queue(site, "ann") == {} and _queue(site, "ben") == {}   # told once that nothing waits


def test_a_pass_in_which_nothing_moved_rewrites_no_queue_file(site_factory: Callable[..., Site],
                                                              tmp_path: Path) -> None:  # noqa: F811
    site = site_factory(gpus=1)
    gate, wait = _gate(tmp_path)
    ann = site.student("ann")
    ids = [ann.submit([wait], gpus=1) for _ in range(2)]
    site.upload()
    site.step_until(lambda: site.status("ann", ids[0])["state"] == "running", "the first task to run")
    path = UserArea(site.root, "ann").path / "outbox" / "queue.json"
    before = path.stat().st_ino
    for _ in range(3):
        site.step()
    assert path.stat().st_ino == before
    gate.touch()
    for t in ids:
        site.final("ann", t)


def test_a_time_limit_or_memory_over_the_limits_fails_at_once_naming_them(site_factory: Callable[..., Site]
                                                                         ) -> None:  # noqa: F811
    site = site_factory(gpus=1, limits=UserLimits(max_time_limit=300, max_memory=512))
    t = site.student("ann").submit(["true"])          # 10:00 and 1G
    site.upload()
    st = site.final("ann", t)
    assert (st["state"], st["reason"]) == ("failed", "unsatisfiable")
    assert st["message"] == ("resources.time_limit: asks for 0:10:00; the cluster allows at most 0:05:00 per task; "
                             "resources.memory: asks for 1G; the cluster allows at most 512M per task")
    assert site.fake.submits[t] == 0
    limits = _limits(site, "ann")
    assert (limits["max_time_limit_s"], limits["max_memory_mb"]) == (300, 512)
