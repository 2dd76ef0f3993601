"""Reading who owns a Slurm job (squeue, sacct, the jobcomp log), as pure functions: a
task adopts a job after a crash only if Slurm shows it as the task's account's job of the
task's name (remoted/schedulers/slurm.py ``find``)."""

from __future__ import annotations

from pathlib import Path

from remoted.schedulers.slurm import jobcomp_owners, named_jobs, owned_by, owner_rows

NAME = "ailabber-261128-103406123-k3f9qz"


def test_named_jobs_keeps_only_the_users_rows_of_the_exact_name() -> None:
    out = (f"101|1003|{NAME}\n"
           f"102|1004|{NAME}\n"               # another user's job of the same name
           f"103|1003|{NAME}-2\n"             # a longer name
           f"104|10030|{NAME}\n"              # a uid that only starts alike
           f"x|1003|{NAME}\n"
           f"105|1003\n"
           f"106|1003|{NAME}|x\n"             # the name is everything after the second |
           f"  107|1003|{NAME}  \n")
    assert named_jobs(out, 1003, NAME) == ["101", "107"]
    assert named_jobs(out, 1004, NAME) == ["102"]
    assert named_jobs("", 1003, NAME) == []


def test_owner_rows_of_squeue_and_sacct_output() -> None:
    assert owner_rows(f"1003|{NAME}\n") == [("1003", NAME)]
    assert owner_rows(f"0|job|with|bars\n\nroot|{NAME}\n|{NAME}\n") == [("0", "job|with|bars")]
    assert owner_rows("") == []


def test_owned_by_needs_a_record_and_no_record_against() -> None:
    assert owned_by([("1003", NAME)], 1003, NAME)
    assert not owned_by([], 1003, NAME)
    assert not owned_by([("1004", NAME)], 1003, NAME)
    assert not owned_by([("1003", "ailabber-other")], 1003, NAME)
    assert not owned_by([("1003", NAME), ("1004", NAME)], 1003, NAME)
    assert owned_by([("1003", NAME), ("1003", NAME)], 1003, NAME)     # a requeued job


def test_jobcomp_owners(tmp_path: Path) -> None:
    log = tmp_path / "jobcomp.log"
    log.write_text(
        f"JobId=7 UserId=mal(1003) GroupId=mal(1003) Name={NAME} JobState=COMPLETED ExitCode=0:0\n"
        f"JobId=77 UserId=vic(1004) GroupId=vic(1004) Name={NAME} JobState=FAILED\n"
        f"JobId=8 UserId=1005 GroupId=1005 Name=x JobState=COMPLETED\n"
        f"JobId=9 UserId=odd(name) Name=y JobState=COMPLETED\n"
        f"JobId=7 UserId=mal(1003) GroupId=mal(1003) Name={NAME} JobState=COMPLETED\n")
    assert jobcomp_owners(log, "7") == [("1003", NAME), ("1003", NAME)]
    assert jobcomp_owners(log, "77") == [("1004", NAME)]
    assert jobcomp_owners(log, "8") == [("1005", "x")]
    assert jobcomp_owners(log, "9") == [("?", "y")]
    assert jobcomp_owners(log, "6") == []
    assert jobcomp_owners(tmp_path / "missing", "7") == []
