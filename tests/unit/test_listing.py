"""What ``list`` shows of a task: run time against its limit, its first command made safe
for one terminal line, and the command column cut to the terminal's width."""

from __future__ import annotations

from ailabber.model import listing
from ailabber.model.task import TaskStatus, now_iso, parse_iso, transition

T0 = parse_iso("2026-11-28T10:00:00.000Z") or 0.0


def _task(*steps: tuple[str, str | None, float], **extra: object) -> TaskStatus:
    st = TaskStatus(id="261128-100000000-abcdef", submitted_at=now_iso(T0), extra=dict(extra))
    for state, reason, at in steps:
        st, _ev = transition(st, state, reason, now=T0 + at)
    return st


def test_a_running_task_shows_its_run_time_and_what_is_left_of_its_limit() -> None:
    st = _task(("pending", "queued", 1), ("running", None, 10), time_limit_s=3600)
    assert listing.timing(st, T0 + 10 + 125) == (125, 3600 - 125)
    assert listing.row(st, T0 + 135)[5] == "2m05s, 57m55s left"
    assert listing.row(st, T0 + 10 + 4000)[5] == "1h06m, 0s left"   # past the limit (being ended)


def test_a_finished_task_shows_how_long_it_ran() -> None:
    st = _task(("running", None, 10), ("completed", None, 70), time_limit_s=3600)
    assert listing.timing(st, T0 + 9999) == (60, None)
    assert listing.row(st, T0 + 9999)[5] == "1m00s"


def test_without_a_start_or_a_known_limit_less_is_shown() -> None:
    assert listing.row(_task(("pending", "queued", 1), time_limit_s=60), T0 + 5)[5] == "-"
    assert listing.row(_task(("canceled", "canceled_by_user", 1)), T0 + 5)[5] == "-"
    assert listing.row(_task(("running", None, 1)), T0 + 5)[5] == "4s"    # a task from before time_limit_s


def test_json_fields_are_null_where_unknown() -> None:
    old = _task(("pending", "queued", 1))
    assert listing.json_fields(old, T0) == {"name": None, "first_command": None, "time_limit_s": None,
                                             "elapsed_s": None, "remaining_s": None}
    st = _task(("running", None, 10), name="lr 0.1", first_command="python train.py", time_limit_s=60)
    assert listing.json_fields(st, T0 + 20) == {"name": "lr 0.1", "first_command": "python train.py",
                                                "time_limit_s": 60, "elapsed_s": 10, "remaining_s": 50}


def test_a_command_becomes_one_printable_line() -> None:
    assert listing.one_line("python a.py \\\n  --lr 0.1\t--x") == "python a.py \\ --lr 0.1 --x"
    assert listing.one_line("echo \x1b[2Jgone") == "echo ?[2Jgone"


def test_the_command_column_takes_what_the_terminal_has_left() -> None:
    long = "python train.py " + "--flag " * 40
    rows = [listing.row(_task(("pending", "queued", 1), first_command=long, name="n"), T0 + 5)]
    lines = listing.table(rows, 100).splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATE", "REASON", "AGE", "TIME", "COMMAND"]
    assert all(len(line) <= 100 for line in lines) and lines[1].endswith("...")
    assert lines[1].index("python") == lines[0].index("COMMAND")
    assert listing.table(rows, None).splitlines()[1].endswith(long.rstrip())      # a pipe gets it whole
    narrow = listing.table(rows, 20).splitlines()[1]
    assert narrow.endswith("python tr...")   # never less than a few characters of it
