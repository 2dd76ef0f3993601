"""When rsync's quick check against the previous upload can be trusted (spoold/basis.py)."""

from __future__ import annotations

import os
from pathlib import Path

from spoold.basis import same_second_edit

SECOND = 1_800_000_000 * 1_000_000_000


def _file(root: Path, rel: str, text: str, mtime_ns: int) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    os.utime(p, ns=(mtime_ns, mtime_ns))


def test_identical_snapshots_need_no_checksum(tmp_path: Path) -> None:
    for side in ("new", "old"):
        _file(tmp_path / side, "a/params.txt", "lr=0.1\n", SECOND + 5)
        _file(tmp_path / side, "train.py", "print()\n", SECOND - 7_000_000_003)
    assert same_second_edit(tmp_path / "new", tmp_path / "old") is None


def test_same_size_same_second_edit_is_found(tmp_path: Path) -> None:
    _file(tmp_path / "old", "a/params.txt", "lr=0.1\n", SECOND + 5)
    _file(tmp_path / "new", "a/params.txt", "lr=0.2\n", SECOND + 999_999_999)
    assert same_second_edit(tmp_path / "new", tmp_path / "old") == "a/params.txt"


def test_changes_the_quick_check_sees_need_no_checksum(tmp_path: Path) -> None:
    _file(tmp_path / "old", "size.txt", "short\n", SECOND)
    _file(tmp_path / "new", "size.txt", "longer\n", SECOND + 1)          # size differs
    _file(tmp_path / "old", "time.txt", "lr=0.1\n", SECOND)
    _file(tmp_path / "new", "time.txt", "lr=0.2\n", SECOND + 1_000_000_000)   # next second
    _file(tmp_path / "new", "added.txt", "new\n", SECOND)                 # not in the basis
    assert same_second_edit(tmp_path / "new", tmp_path / "old") is None


def test_whole_second_times_cannot_vouch_for_a_file(tmp_path: Path) -> None:
    """On a file system without sub-second times (or after unpacking an archive), equal
    whole-second times say nothing about equal contents."""
    _file(tmp_path / "old", "params.txt", "lr=0.1\n", SECOND)
    _file(tmp_path / "new", "params.txt", "lr=0.2\n", SECOND)
    assert same_second_edit(tmp_path / "new", tmp_path / "old") == "params.txt"


def test_a_file_where_the_basis_has_a_directory_is_not_guessed(tmp_path: Path) -> None:
    _file(tmp_path / "old", "data", "x", SECOND + 1)
    _file(tmp_path / "new", "data/part0", "y", SECOND + 1)
    assert same_second_edit(tmp_path / "new", tmp_path / "old") == "data/part0"


def test_a_file_both_snapshots_share_needs_no_checksum(tmp_path: Path) -> None:
    """submit linked it from the basis task: one file, so the quick check cannot be fooled,
    even where whole-second times would otherwise call for comparing contents."""
    _file(tmp_path / "old", "data.bin", "x" * 100, SECOND)
    (tmp_path / "new").mkdir()
    os.link(tmp_path / "old" / "data.bin", tmp_path / "new" / "data.bin")
    assert same_second_edit(tmp_path / "new", tmp_path / "old") is None
