"""Which parts of an upload are warned about, judged from a plan's entries alone."""

from __future__ import annotations

import pytest

from ailabber.model.config import Files
from ailabber.workstation.ignore import IgnoreRules, pattern_for
from ailabber.workstation.snapshot import DIR, FILE, Entry
from ailabber.workstation.upload_warnings import UploadWarning, upload_warnings, warning_lines

MB = 1_000_000


def plan(files: dict[str, int]) -> list[Entry]:
    """Entries as the planner lists them: sorted, each directory before its contents."""
    rels: dict[str, tuple[str, int]] = {}
    for rel, size in files.items():
        parts = rel.split("/")
        for k in range(1, len(parts)):
            rels["/".join(parts[:k])] = (DIR, 0)
        rels[rel] = (FILE, size)
    return [Entry(rel, kind, size, 0o644) for rel, (kind, size) in
            sorted(rels.items(), key=lambda kv: kv[0].split("/"))]


def said(files: dict[str, int], **config: object) -> list[tuple[str, str, int]]:
    return [(w.kind, w.path, w.bytes) for w in upload_warnings(plan(files), Files(**config))]  # type: ignore[arg-type]


def test_small_project_says_nothing() -> None:
    assert said({"train.py": 1000, "src/m.py": 5000, "data/labels.csv": 2 * MB, "model.pt": 5 * MB}) == []


def test_data_directory_by_name_once_with_nothing_inside_repeated() -> None:
    assert said({"train.py": 10, "data/a/x.bin": 8 * MB, "data/b/y.pt": 60 * MB}) == [
        ("data_dir", "data", 68 * MB)]
    assert said({"Checkpoints/e1.ckpt": 11 * MB}) == [("data_dir", "Checkpoints", 11 * MB)]
    assert said({"wandb/run-1/files/out": 9 * MB}) == []            # under the data threshold


def test_environments_and_repositories_by_content_whatever_their_size() -> None:
    assert said({"tools/env/pyvenv.cfg": 50, "tools/env/lib/python3.11/site.py": 10,
                 "old.git/HEAD": 21, "old.git/objects/ab/cd": 5, "old.git/refs/heads/main": 41,
                 "c/conda-meta/history": 3, "c/bin/python": 30}) == [
        ("git_repo", "old.git", 67), ("venv", "tools/env", 60), ("conda_env", "c", 33)]
    assert said({"notes/HEAD": 3, "notes/objects.txt": 3}) == []       # a file, not objects/


def test_the_deepest_large_directory_without_what_was_already_said() -> None:
    assert said({"exp/a/w.npy.part": 60 * MB, "exp/b/w.npy.part": 60 * MB}) == [("large_dir", "exp", 120 * MB)]
    assert said({"exp/a/w1": 45 * MB, "exp/a/w2": 45 * MB, "exp/a/w3": 45 * MB, "exp/b": 1}) == [
        ("large_dir", "exp/a", 135 * MB)]
    # data/ is said; what is left of src/ is small, so src/ is not
    assert said({"src/data/big": 95 * MB, "src/other": 20 * MB}) == [("data_dir", "src/data", 95 * MB)]


def test_large_files_and_weights_outside_what_was_said() -> None:
    assert said({"model.safetensors": 12 * MB, "notes.txt": 12 * MB, "video.mp4": 70 * MB}) == [
        ("large_file", "video.mp4", 70 * MB), ("weights_file", "model.safetensors", 12 * MB)]


def test_no_warn_and_warn_false_silence() -> None:
    files = {"data/x": 20 * MB, "model.pt": 20 * MB, "env/pyvenv.cfg": 1, "src/data/y": 20 * MB}
    assert len(said(files)) == 4
    assert said(files, no_warn=("/data/", "*.pt", "env")) == [("data_dir", "src/data", 20 * MB)]
    assert said(files, warn=False) == []
    # a quiet directory's bytes do not make its parent large either
    assert said({"exp/keep/w": 150 * MB}, no_warn=("/exp/keep/",)) == []


def test_each_line_names_path_size_and_the_line_that_leaves_it_out() -> None:
    w = UploadWarning("data_dir", "runs", True, 12_345_678)
    assert w.message() == ("warning: 'runs/' (12.3 MB) looks like data, checkpoints or run outputs; "
                           'unless the job needs it, add "/runs/" to files.ignore')
    many = [UploadWarning("large_file", f"f{i}", False, (60 + i) * MB) for i in range(12)]
    lines = warning_lines(many, shown=10)
    assert len(lines) == 12 and lines[10].startswith("warning: 2 more (")
    assert "files.warn = false" in lines[11]
    assert warning_lines([]) == []


@pytest.mark.parametrize("rel, is_dir", [
    ("data", True), ("my data ", True), ("a[1]/*.pt", False), ("#x", False), ("!y", False), ("q?\\z", False)])
def test_the_suggested_line_names_exactly_that_path(rel: str, is_dir: bool) -> None:
    line = pattern_for(rel, is_dir)
    rules = IgnoreRules([line])
    assert rules.is_ignored(rel, is_dir)
    assert not rules.is_ignored(f"sub/{rel}", is_dir)
    assert not rules.is_ignored(rel + "x", is_dir)
