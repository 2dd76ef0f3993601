"""The disk-usage walk (remoted/quota.py) on real trees: the figure on a small known tree,
each directory opened once however deep the tree, and the bounds that keep one student's
tree from holding remoted's pass (an area a walk cannot get through counts as over its
quota).  Work done is counted (directory opens), never seconds."""

from __future__ import annotations

import os
import resource
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ailabber.storage.safedir import SafeDir
from ailabber.storage.upload_limits import UploadLimits
from remoted import quota

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def inodes_below(top: Path) -> dict[tuple[int, int], os.stat_result]:
    """Every inode below ``top`` (itself excluded), by an independent walk (os.walk,
    never following a symlink)."""
    out: dict[tuple[int, int], os.stat_result] = {}
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            out[(st.st_dev, st.st_ino)] = st
    return out


def build_chain(top: Path, depth: int, name: str = "d") -> None:
    """``top/d/d/.../d``, ``depth`` levels, built iteratively through directory handles
    (no path ever gets long, nothing recurses)."""
    fd = os.open(top, _DIR)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            nxt = os.open(name, _DIR, dir_fd=fd)
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)


def remove_chain(top: Path, name: str = "d") -> None:
    """Remove a chain ``build_chain`` made, bottom up, iteratively (shutil.rmtree
    recurses, and would overflow Python's stack on it)."""
    fd = os.open(top, _DIR)
    depth = 0
    try:
        while True:                          # down to the last directory that has a child
            try:
                nxt = os.open(name, _DIR, dir_fd=fd)
            except FileNotFoundError:
                break
            os.close(fd)
            fd, depth = nxt, depth + 1
        while depth > 0:                     # up again, emptying each level and removing it
            for entry in os.listdir(fd):
                if entry != name:
                    os.unlink(entry, dir_fd=fd)
            parent = os.open("..", _DIR, dir_fd=fd)
            os.close(fd)
            fd, depth = parent, depth - 1
            os.rmdir(name, dir_fd=fd)
    finally:
        os.close(fd)


@pytest.fixture
def dir_opens(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[str]]:
    """Records every directory the walk opens by name (``os.open`` with O_DIRECTORY)."""
    opened: list[str] = []
    real_open = os.open

    def counting(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_DIRECTORY:
            opened.append(str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting)
    return lambda: opened


def walk(top: Path, **bounds: int) -> quota._Walk:
    with SafeDir.open(top) as d:
        return quota.walk(d, **bounds)


def test_the_figure_of_a_small_known_tree(tmp_path: Path) -> None:
    top = tmp_path / "top"
    (top / "a" / "b").mkdir(parents=True)
    (top / "empty").mkdir()
    (top / "a" / "b" / "data.bin").write_bytes(os.urandom(100_000))
    with open(top / "sparse", "wb") as fh:      # 10 MB long, one block of data
        fh.seek(5_000_000)
        fh.write(b"x" * 4096)
        fh.truncate(10_000_000)
    (top / "inner").write_bytes(os.urandom(50_000))
    os.link(top / "inner", top / "a" / "inner-again")         # both links inside: counted once
    outside = tmp_path / "earlier-task-file"
    outside.write_bytes(os.urandom(70_000))
    os.link(outside, top / "linked-from-earlier")             # one of its links is outside
    big = tmp_path / "big-outside"
    big.write_bytes(os.urandom(300_000))
    os.symlink(big, top / "a" / "to-big")                      # a symlink costs its own blocks only
    os.symlink(tmp_path, top / "to-parent")                    # and leads the walk nowhere
    os.mkfifo(top / "fifo")

    found = inodes_below(top)
    expected = sum(st.st_blocks * 512 for st in found.values())
    ost = os.lstat(outside)
    expected_new = expected - ost.st_blocks * 512
    sparse = os.lstat(top / "sparse")
    assert sparse.st_blocks * 512 < sparse.st_size // 10       # the filesystem keeps the hole

    w = walk(top)
    assert w.complete
    assert w.entries == 11          # 7 in top, 3 in a/, 1 in a/b/
    assert w.total() == expected
    assert w.total(only_new=True) == expected_new
    with SafeDir.open(top) as d:
        assert quota.disk_bytes(d) == expected
        assert quota.disk_bytes(d, only_new=True) == expected_new
    # The numbers are the ones the quota means, not only the ones the oracle says.
    assert expected >= 100_000 + 50_000 + 70_000 + 4096
    assert expected < 100_000 + 50_000 + 50_000 + 70_000 + 300_000 + 1_000_000


def test_each_directory_is_opened_once(tmp_path: Path, dir_opens: Callable[[], list[str]]) -> None:
    """A chain 200 deep with side branches: the walk opens each directory exactly once,
    from its parent (reopening each from the top, as it once did, opens 200 * 201 / 2)."""
    top = tmp_path / "top"
    top.mkdir()
    build_chain(top, 200)
    for side in ("x", "y"):
        (top / "d" / "d" / side / "z").mkdir(parents=True)
        (top / "d" / "d" / side / "z" / "f").write_bytes(b"1" * 5000)
    below = inodes_below(top)
    dirs = sum(1 for st in below.values() if st.st_mode & 0o170000 == 0o040000)
    assert dirs == 200 + 4
    with SafeDir.open(top) as d:
        before = len(dir_opens())
        used = quota.disk_bytes(d)
        opened = dir_opens()[before:]
    assert len(opened) == dirs
    assert used == sum(st.st_blocks * 512 for st in below.values())
    remove_chain_and_sides(top)


def remove_chain_and_sides(top: Path) -> None:
    for side in ("x", "y"):
        (top / "d" / "d" / side / "z" / "f").unlink()
        (top / "d" / "d" / side / "z").rmdir()
        (top / "d" / "d" / side).rmdir()
    remove_chain(top)


@pytest.fixture
def deep_area(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A remote root whose user has a task whose run/ holds a chain 20 000 directories
    deep, with a file at its very bottom; removed iteratively afterwards."""
    root = tmp_path / "root"
    run = root / "users" / "stu" / "tasks" / "t1" / "run"
    run.mkdir(parents=True)
    (root / "users" / "stu" / "outbox").mkdir()
    (root / "users" / "stu" / "tasks" / "t1" / "small").write_bytes(os.urandom(20_000))
    build_chain(run, 20_000)
    fd = os.open(run, _DIR)
    try:                                          # a big file where no bounded walk reaches
        for _ in range(20_000):
            nxt = os.open("d", _DIR, dir_fd=fd)
            os.close(fd)
            fd = nxt
        big = os.open("hidden.bin", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(big, os.urandom(2_000_000))
        os.close(big)
    finally:
        os.close(fd)
    yield root, run
    remove_chain(run)


def test_a_chain_20000_deep_is_walked_to_the_bound_and_counts_as_over_quota(
        deep_area: tuple[Path, Path], dir_opens: Callable[[], list[str]]) -> None:
    root, run = deep_area
    usage = quota.DiskUsage(root)
    before = len(dir_opens())
    used = usage.measure("stu")
    opened = dir_opens()[before:]
    # Bounded work: one open per level down to the bound (tasks/ is level 0, the chain
    # starts at level 3, below t1/run/), then the walk stops descending.
    assert opened.count("d") == quota.MAX_WALK_DEPTH - 2
    assert len(opened) == quota.MAX_WALK_DEPTH + 4   # users, stu, tasks, t1, run, outbox
    assert not usage.complete("stu")
    assert 20_000 <= used < 2_000_000              # the hidden file was never reached ...
    limits = UploadLimits(max_disk_bytes=1_000_000_000)
    # ... so the area counts as over its quota: nothing left to the client, uploads refused.
    pub = usage.published("stu", limits)
    assert pub.disk_used_bytes == 1_000_000_000 and pub.remaining() == 0
    upload = root / "users" / "stu" / "incoming" / "tmp" / "t2"
    upload.mkdir(parents=True)
    (upload / "f").write_bytes(b"tiny")
    with SafeDir.open(upload) as up:
        problem = usage.admit("stu", up, limits)
    assert problem is not None and f"nested more than {quota.MAX_WALK_DEPTH} deep" in problem


def test_a_chain_deeper_than_the_bound_is_walked_in_linear_work(
        deep_area: tuple[Path, Path], dir_opens: Callable[[], list[str]]) -> None:
    """With the depth bound raised, all of a deep chain is walked, each level opened once
    (the old walk reopened every level from the top: 5000 levels took 12.5 million opens)."""
    _root, run = deep_area
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    depth = min(5000, soft - 200)                  # one descriptor per level is held
    assert depth >= 500, f"RLIMIT_NOFILE {soft} is too low for this test"
    before = len(dir_opens())
    w = walk(run, max_depth=depth)
    opened = [p for p in dir_opens()[before:] if p == "d"]
    assert len(opened) == depth
    assert w.stopped == "depth" and w.entries == depth + 1


def test_an_area_back_within_the_bounds_is_measured_again(tmp_path: Path) -> None:
    root = tmp_path / "root"
    run = root / "users" / "stu" / "tasks" / "t1" / "run"
    run.mkdir(parents=True)
    build_chain(run, quota.MAX_WALK_DEPTH + 5)     # the run/ is depth 2 below tasks/
    usage = quota.DiskUsage(root)
    usage.measure("stu")
    assert not usage.complete("stu")
    remove_chain(run)
    usage.measure("stu")
    assert usage.complete("stu")
    limits = UploadLimits(max_disk_bytes=1_000_000_000)
    assert usage.published("stu", limits).disk_used_bytes < 1_000_000


def test_the_entries_bound_stops_the_walk(tmp_path: Path, dir_opens: Callable[[], list[str]]) -> None:
    top = tmp_path / "top"
    for i in range(5):
        (top / f"d{i}").mkdir(parents=True)
        for j in range(40):
            (top / f"d{i}" / f"f{j}").write_bytes(b"x")
    before = len(dir_opens())
    w = walk(top, max_entries=50)
    assert w.stopped == "entries" and w.entries == 50
    assert len(dir_opens()) - before <= 3           # top, and at most the two directories read
    assert "more than 50 files and directories" in w.why()
    full = walk(top, max_entries=5 + 5 * 40)        # exactly the bound: complete
    assert full.complete and full.entries == 205


def test_an_upload_the_walk_cannot_get_through_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "users" / "stu" / "tasks").mkdir(parents=True)
    upload = tmp_path / "upload"
    upload.mkdir()
    build_chain(upload, quota.MAX_WALK_DEPTH + 1)
    usage = quota.DiskUsage(root)
    with SafeDir.open(upload) as up:
        problem = usage.admit("stu", up, UploadLimits(max_disk_bytes=1_000_000_000))
    assert problem is not None and "this upload holds directories nested" in problem
    remove_chain(upload)
