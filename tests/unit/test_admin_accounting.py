"""The staff's read side as pure logic: when a job ran (from remoted's history), usage
summed per student over a window (runs clipped to it), the lookup of ``admin show``,
and the dates ``admin usage`` takes.  Records are built as remoted writes them."""

from __future__ import annotations

from typing import Any

import pytest

from ailabber.cli.common import CliError
from ailabber.model.task import TaskStatus, now_iso
from remoted.admin.accounting import Window, total, usage
from remoted.admin.course import NoSuchTask, TaskRow, find_row
from remoted.admin.usage import parse_when, window_of
from remoted.jobspec import JobSpec
from remoted.quota import DiskFigure
from remoted.records import MAX_HISTORY, TaskRecord

T0 = 1_800_000_000.0          # a round epoch second, far from any DST edge in UTC


def _ev(t: float, seq: int, state: str, reason: str | None = None, **kw: Any) -> dict[str, Any]:
    return {"at": now_iso(T0 + t), "seq": seq, "state": state, "reason": reason, **kw}


def _row(user: str, task_id: str, history: list[dict[str, Any]] | None, *, gpus: int = 1, cpus: int = 2,
         state: str = "completed", started: float | None = None, finished: float | None = None,
         name: str | None = None) -> TaskRow:
    st = TaskStatus(id=task_id, state=state, submitted_at=now_iso(T0),
                    started_at=None if started is None else now_iso(T0 + started),
                    finished_at=None if finished is None else now_iso(T0 + finished),
                    extra={"name": name} if name else {})
    spec = JobSpec(task_id=task_id, user=user, workdir="/w", run_dir="/r", log_dir="/l", commands=["true"],
                   gpus=gpus, cpus=cpus)
    return TaskRow(user, TaskRecord(id=task_id, user=user, status=st, spec=spec, history=history), st.terminal)


def _ran(start: float, end: float, final: str = "completed") -> list[dict[str, Any]]:
    """queued, launched, seen running at ``start``, seen ended at ``end``."""
    return [_ev(0, 1, "pending", "queued"), _ev(0.1, 2, "pending", "launching", job_id="7"),
            _ev(start, 3, "running", "setting_up"), _ev(start + 0.5, 4, "running"), _ev(end, 5, final)]


def test_a_run_is_what_remoted_saw_not_what_the_job_claims() -> None:
    # The job's started.json claims a start 50 s late (less to count): remoted's own
    # "running" event decides.
    r = _row("ann", "a", _ran(10, 70), started=60, finished=70)
    assert [(x.start - T0, x.end - T0) for x in r.runs(T0 + 100)] == [(10, 70)]
    assert r.elapsed(T0 + 100) == pytest.approx(60)


def test_a_requeue_splits_the_run_and_a_running_task_runs_until_now() -> None:
    h = [*_ran(10, 20)[:4], _ev(20, 5, "pending", "requeued"), _ev(50, 6, "running")]
    r = _row("ann", "a", h, state="running", started=10)
    assert [(x.start - T0, x.end - T0) for x in r.runs(T0 + 80)] == [(10, 20), (50, 80)]


def test_a_job_between_two_polls_counts_from_its_start_kept_after_its_launch() -> None:
    h = [_ev(0, 1, "pending", "queued"), _ev(5, 2, "pending", "launching"), _ev(9, 3, "completed")]
    honest = _row("ann", "a", h, started=7, finished=9)
    assert honest.elapsed(T0 + 100) == pytest.approx(2)
    early = _row("ann", "b", h, started=-500, finished=9)      # a claim before the launch
    assert early.elapsed(T0 + 100) == pytest.approx(4)
    never = _row("ann", "c", h[:1] + [_ev(3, 2, "canceled", "canceled_by_user")], state="canceled", finished=3)
    assert never.runs(T0 + 100) == [] and never.elapsed(T0 + 100) is None


def test_a_record_from_before_histories_uses_its_status_times() -> None:
    r = _row("ann", "a", None, started=10, finished=40)
    assert r.elapsed(T0 + 100) == pytest.approx(30)


def test_usage_clips_runs_to_the_window_and_counts_tasks_that_ended_in_it() -> None:
    rows = [
        _row("ann", "a", _ran(10, 110), gpus=2, cpus=4, started=10, finished=110),      # across since=60
        _row("ann", "b", _ran(200, 300, "failed"), gpus=0, cpus=1, state="failed", started=200, finished=300),
        _row("bob", "c", _ran(150, 1000)[:4], gpus=1, state="running", started=150),    # across until=250
        _row("cid", "d", _ran(400, 500), started=400, finished=500),                      # after the window
    ]
    lines = usage(rows, Window(T0 + 60, T0 + 250), T0 + 600, {"bob": DiskFigure(5000, True, T0)})
    ann, bob, cid = lines
    assert ann.user == "ann" and ann.ended == {"completed": 1, "failed": 0, "canceled": 0, "terminated": 0}
    assert ann.wall_s == pytest.approx(50 + 50)               # a: 60..110, b: 200..250
    assert ann.gpu_s == pytest.approx(50 * 2) and ann.cpu_s == pytest.approx(50 * 4 + 50 * 1)
    assert bob.wall_s == pytest.approx(100) and sum(bob.ended.values()) == 0 and bob.disk == DiskFigure(5000, True, T0)
    assert (cid.wall_s, sum(cid.ended.values()), cid.disk) == (0, 0, None)
    everyone = total(lines)
    assert everyone.wall_s == pytest.approx(200) and everyone.gpu_s == pytest.approx(200)
    assert everyone.ended["completed"] == 1 and everyone.disk == DiskFigure(5000, True, T0)


def test_an_open_window_runs_until_now() -> None:
    rows = [_row("ann", "a", _ran(10, 10_000)[:4], state="running", started=10)]
    (ann,) = usage(rows, Window(), T0 + 70)
    assert ann.wall_s == pytest.approx(60)
    (later,) = usage(rows, Window(None, T0 + 1_000_000), T0 + 70)     # a future until is now
    assert later.wall_s == pytest.approx(60)


def test_a_long_history_keeps_its_first_and_latest_events() -> None:
    rec = TaskRecord(id="a", user="ann", status=TaskStatus(id="a"), history=[])
    for seq in range(1, MAX_HISTORY + 11):
        rec.history = rec.with_event(_ev(seq, seq, "pending", "Priority"))
    assert rec.history is not None and len(rec.history) == MAX_HISTORY
    assert [e["seq"] for e in rec.history[:2]] == [1, 12]
    from remoted.admin.history import events, gaps
    assert gaps(events(rec.history)) == [(0, 10)]
    assert TaskRecord(id="a", user="ann", status=TaskStatus(id="a"), history=None).with_event({}) is None


def test_show_finds_a_task_by_id_user_and_id_suffix_or_name() -> None:
    rows = [_row("ann", "261130-101502123-k3v9qa", None, name="mnist"),
            _row("bob", "261130-101502123-k3v9qa", None),
            _row("bob", "261130-111502123-zzzzzz", None)]
    assert find_row(rows, "bob/k3v9qa") is rows[1]
    assert find_row(rows, "zzzzzz") is rows[2]
    assert find_row(rows, "ann/mnist") is rows[0]
    assert find_row(rows, "bob/last") is rows[2]
    with pytest.raises(NoSuchTask, match="give it as ann/261130-101502123-k3v9qa"):
        find_row(rows, "k3v9qa")
    with pytest.raises(NoSuchTask, match="no task of a student named 'eve'"):
        find_row(rows, "eve/k3v9qa")
    with pytest.raises(NoSuchTask, match="no task matches"):
        find_row(rows, "nothing")


def test_dates_are_days_or_iso_times_and_anything_else_is_a_usage_error() -> None:
    import time

    midnight = time.mktime((2026, 11, 30, 0, 0, 0, 0, 0, -1))
    assert parse_when("2026-11-30", "--since") == midnight
    assert parse_when("2026-11-30", "--until", end_of_day=True) == time.mktime((2026, 12, 1, 0, 0, 0, 0, 0, -1))
    assert parse_when("2026-11-30T14:00", "--until", end_of_day=True) == midnight + 14 * 3600
    assert parse_when("2026-11-30T14:00:00Z", "--since") == 1796047200.0
    assert parse_when("2026-11-30T14:00:00+01:00", "--since") == 1796047200.0 - 3600
    for bad in ("last week", "2026-13-01", "30.11.2026"):
        with pytest.raises(CliError, match=r"^--since: .* is neither a date") as exc:
            parse_when(bad, "--since")
        assert exc.value.code == 2
    with pytest.raises(CliError, match="^--until: 2026-11-29 is not after --since 2026-11-30"):
        window_of("2026-11-30", "2026-11-29")
    assert window_of("2026-11-30", "2026-11-30") == Window(midnight, time.mktime((2026, 12, 1, 0, 0, 0, 0, 0, -1)))
