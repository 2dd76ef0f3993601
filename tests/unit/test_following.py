"""``logs -f`` and ``wait`` tell spoold that someone follows a task (storage/following.py):
a marker while they run, gone after; a marker whose process died is dropped by spoold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ailabber.storage.following import followed, following, following_dir

A, B = "261130-015449853-13qgg6", "261130-015554286-rn1yjn"


def test_a_follower_is_seen_while_it_runs_and_not_after(tmp_path: Path) -> None:
    assert followed(tmp_path, [A, B]) == set()
    with following(tmp_path, A):
        assert followed(tmp_path, [A, B]) == {A}
        assert followed(tmp_path, [B]) == set()           # only the tasks asked about
    assert followed(tmp_path, [A, B]) == set()
    assert list(following_dir(tmp_path).iterdir()) == []


def test_the_marker_of_a_follower_that_died_is_dropped(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    d = following_dir(tmp_path)
    d.mkdir()
    (d / f"{A}.{dead.stdout.strip()}").touch()
    (d / "not-a-marker").touch()
    assert followed(tmp_path, [A]) == set()
    assert sorted(p.name for p in d.iterdir()) == ["not-a-marker"]
