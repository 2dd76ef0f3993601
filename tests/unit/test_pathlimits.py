"""Path depth and length limits of an upload: refused at submit with one short line naming
the worst path, found again by spoold's walk of a spooled task, and rsync's own complaint
about such a path is final and short."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ailabber.model.config import ConfigError
from ailabber.model.pathlimits import MAX_PATH_BYTES, MAX_PATH_DEPTH, Extremes, shorten, tree_problems
from ailabber.workstation.project import load_task_config
from ailabber.workstation.snapshot import plan_snapshot
from spoold.errors import MAX_DETAIL, classify


def make_chain(top: Path, levels: int, name: str = "a", leaf: str | None = "f.py") -> str:
    """``levels`` nested directories under ``top`` (and a file at the bottom); returns the
    deepest path relative to ``top``.  Works through a directory handle, so a chain deeper
    than PATH_MAX allows in one path can be built too."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(levels):
            os.mkdir(name, dir_fd=fd)
            nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        if leaf:
            os.close(os.open(leaf, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    return "/".join([name] * levels + ([leaf] if leaf else []))


def rmtree_deep(path: Path) -> None:
    """Remove a tree of any depth (``shutil.rmtree`` recurses and gives up near 1,000
    levels): each subdirectory is first moved up beside ``path``, so no path grows long."""
    n = 0
    queue = [path]
    while queue:
        d = queue.pop()
        with os.scandir(d) as it:
            entries = list(it)
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                n += 1
                moved = path.parent / f".{path.name}-rm-{n}"
                os.rename(e.path, moved)
                queue.append(moved)
            else:
                os.unlink(e.path)
        os.rmdir(d)


@pytest.fixture
def deep_tmp(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path``, removed at the end however deep the trees in it (pytest's own
    clean-up of old temporary directories would otherwise fail on them)."""
    yield tmp_path
    if tmp_path.exists():
        rmtree_deep(tmp_path)


def project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "task_config.toml").write_text('[run]\ncommands = ["true"]\n')
    return proj


def refusal(proj: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        plan_snapshot(load_task_config(proj / "task_config.toml"))
    return info.value.problems


# --------------------------------------------------------------------------- submit


def test_a_file_at_the_depth_limit_is_accepted(deep_tmp: Path) -> None:
    tmp_path = deep_tmp
    proj = project(tmp_path)
    rel = make_chain(proj, MAX_PATH_DEPTH - 1)
    plan = plan_snapshot(load_task_config(proj / "task_config.toml"))
    assert rel in {e.rel for e in plan.entries}


def test_one_level_more_is_refused(deep_tmp: Path) -> None:
    tmp_path = deep_tmp
    proj = project(tmp_path)
    make_chain(proj, MAX_PATH_DEPTH)
    lines = refusal(proj)
    assert lines == [f"task_config.toml: files.upload: 'a/a/…({MAX_PATH_DEPTH - 3} more)…/a/f.py' is "
                     f"{MAX_PATH_DEPTH + 1} levels deep; the limit is {MAX_PATH_DEPTH}; "
                     "move it up or add it to files.ignore"]


def test_a_1950_level_tree_is_one_short_line_naming_the_deepest_path(deep_tmp: Path) -> None:
    tmp_path = deep_tmp
    proj = project(tmp_path)
    make_chain(proj, 40, name="shallow")          # a shallower offender is not the one named
    make_chain(proj, 1950, name="d")
    lines = refusal(proj)
    assert len(lines) == 1 and len(lines[0]) < 200, lines
    assert "'d/d/…(1947 more)…/d/f.py' is 1951 levels deep" in lines[0]


def test_a_tree_deeper_than_one_path_can_name_is_still_one_line(deep_tmp: Path) -> None:
    tmp_path = deep_tmp
    """Below PATH_MAX the directories cannot even be listed; that is not a second error."""
    proj = project(tmp_path)
    make_chain(proj, 2100, name="d", leaf=None)
    lines = refusal(proj)
    assert len(lines) == 1 and "levels deep; the limit is 64" in lines[0], lines


def test_an_ignored_deep_tree_does_not_count(deep_tmp: Path) -> None:
    tmp_path = deep_tmp
    proj = project(tmp_path)
    (proj / "task_config.toml").write_text('[files]\nignore = ["cache/"]\n[run]\ncommands = ["true"]\n')
    (proj / "cache").mkdir()
    make_chain(proj / "cache", 200)
    plan = plan_snapshot(load_task_config(proj / "task_config.toml"))
    assert [e.rel for e in plan.entries] == ["task_config.toml"]


def test_a_path_over_the_length_limit_is_refused(deep_tmp: Path) -> None:
    tmp_path = deep_tmp
    proj = project(tmp_path)
    rel = make_chain(proj, 9, name="n" * 250)
    lines = refusal(proj)
    assert len(lines) == 1, lines
    assert f"is {len(rel)} bytes long; the limit is {MAX_PATH_BYTES}" in lines[0]
    assert "'nnnnnnnnnnnnnnnnnnnnnnn…/nnnnnnnnnnnnnnnnnnnnnnn…/…(6 more)…/" in lines[0]


def test_a_path_at_the_length_limit_is_accepted(deep_tmp: Path) -> None:
    tmp_path = deep_tmp
    proj = project(tmp_path)
    last = MAX_PATH_BYTES - 8 * 251
    rel = make_chain(proj, 8, name="n" * 250, leaf="x" * last)
    assert len(rel.encode()) == MAX_PATH_BYTES
    plan_snapshot(load_task_config(proj / "task_config.toml"))


# --------------------------------------------------------------------------- pieces


def test_shorten_keeps_short_paths_and_quotes_odd_ones() -> None:
    assert shorten("src/train.py") == "'src/train.py'"
    assert shorten("a/b/c/d/e") == "'a/b/c/d/e'"
    assert shorten("a/b/c/d/e/f") == "'a/b/…(2 more)…/e/f'"
    assert shorten("new\nline") == '"new\\nline"'


def test_extremes_report_nothing_within_the_limits() -> None:
    ex = Extremes()
    for rel in ("a", "a/b", "a/b/c.py"):
        ex.note(rel)
    assert ex.problems() == []


def test_spoolds_walk_finds_a_spooled_deep_tree(deep_tmp: Path) -> None:
    tmp_path = deep_tmp
    files = tmp_path / "files"
    files.mkdir()
    (files / "train.py").write_text("x")
    assert tree_problems(files) == []
    make_chain(files, 1950, leaf=None)
    problems = tree_problems(files)
    assert len(problems) == 1 and f"is {MAX_PATH_DEPTH + 1} levels deep" in problems[0], problems


def test_rsyncs_path_overflow_is_permanent_and_short() -> None:
    stderr = ("filename overflows max-path len by 171: " + "a/" * 2000 + "\n"
              "rsync error: some files/attrs were not transferred (code 23)\n")
    err = classify("upload of t", 23, stderr)
    assert err.permanent and str(err) == "upload of t: a path in the task is too long for rsync"


def test_an_unknown_rsync_message_is_cut_short() -> None:
    err = classify("upload of t", 23, 'rsync: opendir "' + "a/" * 2000 + '" failed: Cannot allocate memory (12)\n')
    assert not err.permanent
    assert len(str(err)) < MAX_DETAIL + 40
