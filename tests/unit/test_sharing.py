"""A submit shares the files its project has not changed since the previous task
(storage/sources.py, storage/filecopy.py), on a real spool and project."""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from pathlib import Path

import pytest

from ailabber.storage import filecopy, sources
from ailabber.storage.filecopy import link_or_copy
from ailabber.storage.sources import SOURCES
from ailabber.storage.spool import FILES, NEW, Spool
from ailabber.workstation.submit import submit


def settled(*paths: Path) -> None:
    """Wait until every path's change time is old enough to be recorded: the clock, not
    a process, is what this waits for."""
    while time.time_ns() <= max(p.stat().st_ctime_ns for p in paths) + sources.SETTLE_NS:
        time.sleep(0.05)


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shorter settling time where a test only needs its project settled (the rule is
    the same; the test waits less)."""
    monkeypatch.setattr(sources, "SETTLE_NS", 300_000_000)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    d = tmp_path / "project"
    (d / "data").mkdir(parents=True)
    (d / "task_config.toml").write_text('[run]\ncommands = ["python train.py"]\n')
    (d / "train.py").write_text("print('v1')\n")
    (d / "params.txt").write_text("lr=0.1\n")
    (d / "data" / "big.bin").write_bytes(os.urandom(100_000))
    return d


def files_of(spool: Spool, task_id: str) -> Path:
    return spool.stage_dir(NEW) / task_id / FILES


def again(project: Path, spool: Spool) -> str:
    return submit(project / "task_config.toml", spool).task_id


@pytest.mark.usefixtures("quick")
def test_a_resubmit_links_unchanged_files_and_copies_the_changed_one(project: Path, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    settled(*project.rglob("*"))
    first = again(project, spool)
    (project / "train.py").write_text("print('v2')\n")
    second = again(project, spool)
    a, b = files_of(spool, first), files_of(spool, second)
    for rel in ("data/big.bin", "params.txt", "task_config.toml"):
        assert (a / rel).stat().st_ino == (b / rel).stat().st_ino, rel
        assert (b / rel).stat().st_nlink == 2
    assert (a / "train.py").stat().st_ino != (b / "train.py").stat().st_ino
    assert (a / "train.py").read_text() == "print('v1')\n" and (b / "train.py").read_text() == "print('v2')\n"
    for p in b.rglob("*"):
        if p.is_file():
            assert stat.S_IMODE(p.stat().st_mode) & 0o222 == 0, p   # nothing can rewrite a shared file
    # The shared files are recorded again, so a third submit shares them as well.
    recorded = json.loads((b.parent / SOURCES).read_text())["files"]
    assert {"data/big.bin", "params.txt", "task_config.toml"} <= set(recorded)


@pytest.mark.usefixtures("quick")
def test_a_same_size_rewrite_with_the_old_mtime_is_copied(project: Path, tmp_path: Path) -> None:
    """Size and mtime are the same (an edit within one tick, or a tool restoring the
    time): only the change time tells, and it must."""
    spool = Spool(tmp_path / "spool")
    settled(*project.rglob("*"))
    first = again(project, spool)
    before = (project / "params.txt").stat()
    (project / "params.txt").write_text("lr=0.2\n")
    os.utime(project / "params.txt", ns=(before.st_atime_ns, before.st_mtime_ns))
    second = again(project, spool)
    assert (files_of(spool, second) / "params.txt").read_text() == "lr=0.2\n"
    assert (files_of(spool, first) / "params.txt").read_text() == "lr=0.1\n"


def test_a_file_written_just_before_submit_is_not_trusted_to_be_unchanged(project: Path, tmp_path: Path) -> None:
    """Written within SETTLE_NS of the copy, a second write could keep every time: the
    file is not recorded, so the next submit copies it again."""
    spool = Spool(tmp_path / "spool")
    settled(*project.rglob("*"))
    (project / "params.txt").write_text("lr=0.3\n")
    first = again(project, spool)
    recorded = json.loads((files_of(spool, first).parent / SOURCES).read_text())["files"]
    assert "params.txt" not in recorded and "train.py" in recorded
    second = again(project, spool)
    a, b = files_of(spool, first), files_of(spool, second)
    assert (a / "params.txt").stat().st_ino != (b / "params.txt").stat().st_ino
    assert (a / "train.py").stat().st_ino == (b / "train.py").stat().st_ino


@pytest.mark.usefixtures("quick")
def test_an_edit_after_submit_leaves_the_spool_copy_alone(project: Path, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    settled(*project.rglob("*"))
    first = again(project, spool)
    second = again(project, spool)
    with open(project / "train.py", "r+") as fh:      # in place, as some editors save
        fh.write("print('xx')\n")
    for task_id in (first, second):
        assert (files_of(spool, task_id) / "train.py").read_text() == "print('v1')\n"
    third = again(project, spool)
    assert (files_of(spool, third) / "train.py").read_text() == "print('xx')\n"


@pytest.mark.usefixtures("quick")
def test_another_project_shares_nothing(project: Path, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    settled(*project.rglob("*"))
    first = again(project, spool)
    other = tmp_path / "other"
    project.rename(other)                 # the same files, another upload directory
    second = again(other, spool)
    assert (files_of(spool, first) / "train.py").stat().st_ino != (files_of(spool, second) / "train.py").stat().st_ino


@pytest.mark.usefixtures("quick")
def test_a_cleaned_previous_task_means_a_full_copy(project: Path, tmp_path: Path) -> None:
    import shutil

    spool = Spool(tmp_path / "spool")
    settled(*project.rglob("*"))
    first = again(project, spool)
    shutil.rmtree(spool.stage_dir(NEW) / first)
    second = again(project, spool)
    assert (files_of(spool, second) / "train.py").stat().st_nlink == 1


def test_link_or_copy_copies_where_no_link_can_be_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"x" * 5000)
    os.chmod(src, 0o755)
    os.utime(src, ns=(1_000_000_000, 1_234_567_891_000))

    def too_many_links(*_args: object, **_kw: object) -> None:
        raise OSError(errno.EMLINK, "Too many links")

    monkeypatch.setattr(os, "link", too_many_links)
    assert link_or_copy(src, tmp_path / "dst") is False
    st = (tmp_path / "dst").stat()
    assert (tmp_path / "dst").read_bytes() == b"x" * 5000
    assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_nlink) == (0o555, 1_234_567_891_000, 1)


def test_link_or_copy_links_and_keeps_the_file_read_only(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_text("old task, written before spool files were read-only\n")
    os.chmod(src, 0o644)
    assert link_or_copy(src, tmp_path / "dst") is True
    assert (tmp_path / "dst").stat().st_ino == src.stat().st_ino
    assert stat.S_IMODE(src.stat().st_mode) == 0o444


def test_link_or_copy_never_links_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "target").write_text("x")
    (tmp_path / "src").symlink_to("target")
    with pytest.raises(ValueError):
        link_or_copy(tmp_path / "src", tmp_path / "dst")
    assert not os.path.lexists(tmp_path / "dst")
    assert filecopy.spool_mode(0o100764) == 0o544
