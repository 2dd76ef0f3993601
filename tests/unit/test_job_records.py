"""What a job writes is the student's word: remoted keeps only values of the right type,
and removes trees without following links or recursing."""

from __future__ import annotations

import os
from pathlib import Path

from ailabber.storage.safedir import SafeDir
from remoted.jobfiles import MAX_TEXT, job_result, job_started


def test_a_result_keeps_only_typed_values() -> None:
    forged = {"state": "failed", "reason": ["x"], "exit_code": "1", "message": {"a": 1},
              "started_at": "yesterday", "finished_at": 5, "extra": "ignored"}
    assert job_result(forged) == {"state": "failed", "reason": None, "exit_code": None, "message": None,
                                  "started_at": None, "finished_at": None}
    good = {"state": "completed", "reason": None, "exit_code": 0, "message": "m" * (MAX_TEXT + 5),
            "started_at": "2026-11-29T10:00:00.000Z", "finished_at": "2026-11-29T10:01:00.000Z"}
    kept = job_result(good)
    assert kept is not None and kept["exit_code"] == 0 and len(kept["message"]) == MAX_TEXT
    assert kept["started_at"] == good["started_at"]


def test_a_result_that_is_no_result_is_none() -> None:
    for bad in (None, {}, {"state": "running"}, {"state": ["completed"]}, {"state": "pending"}):
        assert job_result(bad) is None     # type: ignore[arg-type]
    assert job_result({"state": "failed", "reason": "nonzero_exit", "exit_code": True})["exit_code"] is None  # type: ignore[index]


def test_a_start_record_keeps_only_typed_values() -> None:
    got = job_started({"pid": "1", "phase": "setup", "gpus": [0, "1", 2.5, 3], "slurm_job_id": "12; rm"})
    assert got == {"pid": None, "phase": "setup", "started_at": None, "gpus": [0, 3], "slurm_job_id": None}
    assert job_started({"slurm_job_id": 42})["slurm_job_id"] == "42"   # type: ignore[index]


def test_remove_takes_a_deep_tree_and_never_follows_a_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    top = tmp_path / "top"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(3000):          # deeper than Python's recursion limit
            os.mkdir("d", dir_fd=fd)
            nxt = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        os.symlink(outside, "link", dir_fd=fd)
        os.symlink(outside / "keep", "file-link", dir_fd=fd)
    finally:
        os.close(fd)
    (top / "f").write_text("1")
    with SafeDir.open(tmp_path) as d:
        d.remove("top")
        d.remove("missing")             # nothing there: fine
    assert sorted(os.listdir(tmp_path)) == ["outside"]
    assert (outside / "keep").read_text() == "x"
