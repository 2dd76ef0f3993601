"""The pure task model: ids, states, transitions, merging remote status, fair order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from ailabber.model import ids
from ailabber.model.task import REASONS, IllegalTransition, TaskStatus, now_iso, parse_iso, transition
from remoted.queue import fair_order
from spoold.merge import merge_remote


def test_ids_are_unique_sortable_and_well_formed() -> None:
    base = 1_800_000_000.0
    made = [ids.new_task_id(base + i * 0.001) for i in range(2000)]
    assert len(set(made)) == len(made)
    assert made == sorted(made)
    assert all(ids.is_task_id(i) for i in made)
    assert not ids.is_task_id("../../etc") and not ids.is_task_id("261128-103406123-ABCDEF")


def test_resolve_accepts_exact_prefix_and_suffix() -> None:
    a, b = "261128-103406123-k3f9qz", "261128-103407001-m2x8aa"
    assert ids.resolve(a, [a, b]) == a
    assert ids.resolve("261128-1034070", [a, b]) == b
    assert ids.resolve("k3f9qz", [a, b]) == a
    with pytest.raises(ids.TaskLookupError, match="ambiguous"):
        ids.resolve("261128-1034", [a, b])
    with pytest.raises(ids.TaskLookupError, match="no task"):
        ids.resolve("zzz", [a, b])
    with pytest.raises(ids.TaskLookupError):
        ids.resolve("  ", [a])


def test_iso_round_trip() -> None:
    t = 1_800_000_000.25
    assert abs(parse_iso(now_iso(t)) - t) < 0.002  # type: ignore[operator]
    assert parse_iso("garbage") is None and parse_iso(None) is None


def test_transitions_stamp_times_and_refuse_leaving_terminal_states() -> None:
    st = TaskStatus(id="x")
    st, ev = transition(st, "running", now=100.0)
    assert st.started_at and st.seq == 1 and ev["state"] == "running"
    st, ev = transition(st, "failed", "nonzero_exit", exit_code=3, now=101.0)
    assert st.finished_at and st.exit_code == 3 and ev["exit_code"] == 3 and st.terminal
    with pytest.raises(IllegalTransition):
        transition(st, "running")
    run = transition(TaskStatus(id="y"), "running")[0]
    with pytest.raises(IllegalTransition):
        transition(run, "canceled")        # after start it is "terminated", never "canceled"
    with pytest.raises(IllegalTransition):
        transition(run, "pending")
    with pytest.raises(IllegalTransition):
        transition(run, "exploded")


def test_status_dict_round_trip_keeps_extra_fields() -> None:
    st, _ = transition(TaskStatus(id="x", owner="alice"), "pending", "queued", upload_bytes_sent=12)
    d = st.to_dict()
    assert d["upload_bytes_sent"] == 12 and d["reason_text"]
    back = TaskStatus.from_dict(d)
    assert back == st
    with pytest.raises(ValueError):
        TaskStatus.from_dict({"id": "x", "state": "bogus"})


def test_merge_takes_new_remote_state_and_appends_only_new_events() -> None:
    local, _ = transition(TaskStatus(id="t", submitted_at="2026-01-01T00:00:00.000Z"), "pending", "queued")
    remote = TaskStatus(id="t")
    events = []
    for state, reason in (("pending", "queued"), ("running", None)):
        remote, ev = transition(remote, state, reason)
        events.append(ev)
    merged = merge_remote(local, remote, events)
    assert merged is not None
    new, fresh = merged
    assert new.state == "running" and new.submitted_at == local.submitted_at
    assert [e["state"] for e in fresh] == ["pending", "running"]
    assert merge_remote(new, remote, events) is None            # nothing new: no write
    remote2, ev = transition(remote, "completed", exit_code=0)
    new2, fresh2 = merge_remote(new, remote2, events + [ev])  # type: ignore[misc]
    assert [e["state"] for e in fresh2] == ["completed"] and new2.terminal
    other = TaskStatus(id="other", seq=99)
    assert merge_remote(local, other, []) is None


@dataclass
class Q:
    user: str
    order: int
    id: str


def test_fair_order_round_robins_users_fifo_within_each() -> None:
    queued = [Q("alice", i, f"a{i}") for i in range(4)] + [Q("bob", 10, "b0"), Q("carol", 11, "c0")]
    order = [q.id for q in fair_order(queued)]
    assert order == ["a0", "b0", "c0", "a1", "a2", "a3"]
    # A user who already runs tasks goes after those who run none.
    order = [q.id for q in fair_order(queued, {"alice": 2})]
    assert order[:3] == ["b0", "c0", "a0"]
    assert fair_order([]) == []


def test_fair_order_serves_the_user_served_longest_ago_first() -> None:
    queued = [Q("alice", 1, "a1"), Q("alice", 2, "a2"), Q("bob", 5, "b0")]
    order = [q.id for q in fair_order(queued, {}, {"alice": 100.0})]
    assert order == ["b0", "a1", "a2"]


def test_over_limit() -> None:
    from remoted.queue import over_limit

    assert over_limit("a", 1, {"a": 2}, {}, 2, None) is not None
    assert over_limit("a", 1, {"a": 1}, {}, 2, None) is None
    assert over_limit("a", 2, {}, {"a": 1}, None, 2) is not None
    assert over_limit("a", 0, {}, {"a": 5}, None, 2) is None


@pytest.mark.parametrize("bad", ["2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z", "2026-01-32T00:00:00Z",
                                 "2026-01-01T24:00:00Z", "2026-01-01T00:60:00Z", "+026-01-01T00:00:00Z",
                                 "2026-01-01T0a:00:00Z", "2026/01/01T00:00:00Z", ""])
def test_parse_iso_rejects_impossible_times(bad: str) -> None:
    assert parse_iso(bad) is None


def test_parse_iso_matches_the_calendar_across_days() -> None:
    import calendar

    for day in ("1999-12-31", "2000-02-29", "2026-11-28", "2038-01-19"):
        y, m, d = (int(x) for x in day.split("-"))
        assert parse_iso(f"{day}T13:45:07.250Z") == calendar.timegm((y, m, d, 13, 45, 7, 0, 0, 0)) + 0.25


def test_every_reason_the_cli_can_show_is_in_the_student_guide() -> None:
    """``status`` and ``list`` show any reason of the vocabulary; the guide's table is where
    a student looks one up, so none may be missing from it."""
    guide = (Path(__file__).parents[2] / "docs" / "student-guide.md").read_text()
    table = [ln for ln in guide.splitlines() if ln.startswith("| `")]
    missing = [r for r in REASONS if not any(f"`{r}`" in ln.split("|")[1] for ln in table)]
    assert missing == []
