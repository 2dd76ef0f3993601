"""plan_snapshot / copy_snapshot on real trees."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ailabber.model.config import ConfigError, TaskConfig
from ailabber.workstation import snapshot
from ailabber.workstation.project import load_task_config
from ailabber.workstation.snapshot import Entry, SnapshotPlan, copy_snapshot, plan_snapshot

CONFIG = '[files]\nignore = ["*.ckpt", "data/"]\n[run]\ncommands = ["python train.py"]\n'


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "task_config.toml").write_text(CONFIG)
    (root / "train.py").write_text("print('train')\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "m.py").write_text("x = 1\n" * 100)
    (root / "src" / "pkg" / "__pycache__").mkdir()
    (root / "src" / "pkg" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0" * 10)
    (root / "src" / "old.pyc").write_bytes(b"\0")
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref\n")
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / "ailabber-results" / "t1").mkdir(parents=True)
    (root / "ailabber-results" / "t1" / "out").write_text("old")
    (root / "model.ckpt").write_bytes(b"\1" * 5000)
    (root / "data").mkdir()
    (root / "data" / "big.bin").write_bytes(b"\2" * 9000)
    (root / "empty").mkdir()
    (root / "big.bin").write_bytes(os.urandom(300_000))
    (root / "link_to_src").symlink_to("src")
    (root / "src" / "link_up.py").symlink_to("../train.py")
    return root


def cfg_for(root: Path) -> TaskConfig:
    return load_task_config(root / "task_config.toml")


def rels(plan: SnapshotPlan) -> dict[str, str]:
    return {e.rel: e.kind for e in plan.entries}


def test_plan_skips_ignored_and_builtins(tree: Path) -> None:
    plan = plan_snapshot(cfg_for(tree))
    assert rels(plan) == {
        "task_config.toml": "file", "train.py": "file", "run.sh": "file", "big.bin": "file",
        "src": "dir", "src/pkg": "dir", "src/pkg/m.py": "file", "empty": "dir",
        "link_to_src": "symlink", "src/link_up.py": "symlink",
    }
    assert plan.root == tree.resolve()
    files = [e for e in plan.entries if e.kind == "file"]
    assert plan.file_count == len(files) == 5
    assert plan.total_bytes == sum(e.size for e in files)
    assert plan.largest(1)[0].rel == "big.bin"
    assert [e.rel for e in plan.largest(2)] == ["big.bin", "src/pkg/m.py"]
    by_rel = {e.rel: e for e in plan.entries}
    assert by_rel["link_to_src"].target == "src"
    assert by_rel["src/link_up.py"].target == "../train.py"
    assert by_rel["run.sh"].mode == 0o755


def test_plan_order_puts_directories_before_contents(tree: Path) -> None:
    order = [e.rel for e in plan_snapshot(cfg_for(tree)).entries]
    assert order.index("src") < order.index("src/pkg") < order.index("src/pkg/m.py")
    assert order == sorted(order, key=lambda r: r.split("/"))


def test_ailabberignore_applies(tree: Path) -> None:
    (tree / ".ailabberignore").write_text("big.bin\n")
    assert "big.bin" not in rels(plan_snapshot(cfg_for(tree)))


def test_gitignore_applies_and_every_exclusion_keeps_its_rule(tree: Path) -> None:
    (tree / ".gitignore").write_text("# outputs\nbig.bin\nempty/\n")
    plan = plan_snapshot(cfg_for(tree))
    assert "big.bin" not in rels(plan) and "empty" not in rels(plan) and ".gitignore" in rels(plan)
    assert {(x.rel, x.is_dir, x.rule.where()) for x in plan.excluded} == {
        (".git", True, "built-in"), (".venv", True, "built-in"), ("ailabber-results", True, "built-in"),
        ("src/pkg/__pycache__", True, "built-in"), ("src/old.pyc", False, "built-in"),
        ("data", True, "files.ignore[1]"), ("model.ckpt", False, "files.ignore[0]"),
        ("big.bin", False, ".gitignore:2"), ("empty", True, ".gitignore:3")}


def test_plan_refuses_an_unreadable_gitignore(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ailabber.workstation import gitignore

    (tree / "src" / ".gitignore").write_text("*.py\n")
    real_open = os.open

    def deny(path: str, flags: int, *args: int, **kwargs: int) -> int:
        if str(path).endswith("src/.gitignore"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(gitignore.os, "open", deny)
    with pytest.raises(ConfigError) as err:
        plan_snapshot(cfg_for(tree))
    assert err.value.problems == ["task_config.toml: files.upload: cannot read 'src/.gitignore': Permission denied"]


def test_ignored_outside_symlink_is_fine(tree: Path, tmp_path: Path) -> None:
    (tree / "data" / "escape").symlink_to(tmp_path)      # inside the ignored data/
    (tree / "x.ckpt").symlink_to("/nonexistent")           # ignored by *.ckpt
    plan_snapshot(cfg_for(tree))


@pytest.mark.parametrize(("name", "target", "what"), [
    ("out", "../..", "points outside the upload directory"),
    ("abs", "/etc/passwd", "points outside the upload directory"),
    ("dangling", "missing.txt", "is dangling"),
    ("loop", "loop", "is dangling"),
])
def test_plan_rejects_bad_symlinks(tree: Path, name: str, target: str, what: str) -> None:
    (tree / "src" / name).symlink_to(target)
    with pytest.raises(ConfigError) as err:
        plan_snapshot(cfg_for(tree))
    (line,) = err.value.problems
    assert line.startswith(f"task_config.toml: files.upload: symlink 'src/{name}' {what}")
    assert line.endswith("add it to files.ignore")
    assert "\n" not in line


def test_plan_collects_every_bad_symlink(tree: Path, tmp_path: Path) -> None:
    (tree / "a").symlink_to(tmp_path)
    (tree / "src" / "b").symlink_to("/")
    with pytest.raises(ConfigError) as err:
        plan_snapshot(cfg_for(tree))
    assert len(err.value.problems) == 2


def test_plan_rejects_link_to_ignored_target(tree: Path) -> None:
    (tree / "ckpt_link").symlink_to("model.ckpt")
    with pytest.raises(ConfigError, match="'ckpt_link' points to 'model.ckpt'"):
        plan_snapshot(cfg_for(tree))


def test_plan_skips_special_files(tree: Path) -> None:
    os.mkfifo(tree / "pipe")
    assert "pipe" not in rels(plan_snapshot(cfg_for(tree)))


def test_odd_file_names_stay_one_line(tree: Path) -> None:
    (tree / "new\nline").symlink_to("/")
    with pytest.raises(ConfigError) as err:
        plan_snapshot(cfg_for(tree))
    assert "\n" not in err.value.problems[0]
    assert '"new\\nline"' in err.value.problems[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_plan_reports_unreadable(tree: Path) -> None:
    (tree / "secret.txt").write_text("x")
    (tree / "secret.txt").chmod(0)
    (tree / "locked").mkdir()
    (tree / "locked").chmod(0)
    try:
        with pytest.raises(ConfigError) as err:
            plan_snapshot(cfg_for(tree))
        text = str(err.value)
        assert "'secret.txt'" in text and "'locked'" in text
    finally:
        (tree / "locked").chmod(0o755)


def test_plan_reports_unreadable_simulated(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same as above, but also runs as root by faking the permission failures."""
    real_access, real_scandir = os.access, os.scandir

    def access(path: str, mode: int) -> bool:
        return not str(path).endswith("train.py") and real_access(path, mode)

    def scandir(path: str):  # type: ignore[no-untyped-def]
        if str(path).endswith("/empty"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(snapshot.os, "access", access)
    monkeypatch.setattr(snapshot.os, "scandir", scandir)
    with pytest.raises(ConfigError) as err:
        plan_snapshot(cfg_for(tree))
    assert err.value.problems == [
        "task_config.toml: files.upload: cannot read directory 'empty': Permission denied",
        "task_config.toml: files.upload: cannot read file 'train.py': Permission denied",
    ]


def test_copy_reproduces_tree(tree: Path, tmp_path: Path) -> None:
    os.utime(tree / "train.py", ns=(1_000_000_000, 1_234_567_891_000))
    (tree / "src" / "pkg").chmod(0o750)
    os.utime(tree / "src" / "pkg", ns=(1_000_000_000, 2_000_000_000_000))
    (tree / "run.sh").chmod(0o741)
    plan = plan_snapshot(cfg_for(tree))
    dest = tmp_path / "dest"
    dest.mkdir()
    copy_snapshot(plan, dest)

    for e in plan.entries:
        src, dst = tree / e.rel, dest / e.rel
        s, d = os.lstat(src), os.lstat(dst)
        assert stat.S_IFMT(s.st_mode) == stat.S_IFMT(d.st_mode), e.rel
        assert s.st_mtime_ns == d.st_mtime_ns, e.rel
        if e.kind == "file":
            assert src.read_bytes() == dst.read_bytes()
            assert stat.S_IMODE(d.st_mode) == stat.S_IMODE(s.st_mode) & ~0o222   # kept read-only
        elif e.kind == "symlink":
            assert os.readlink(dst) == os.readlink(src)
        else:
            assert stat.S_IMODE(d.st_mode) == stat.S_IMODE(s.st_mode) | 0o700
    assert stat.S_IMODE(os.stat(dest / "run.sh").st_mode) == 0o541
    assert stat.S_IMODE(os.stat(dest / "src" / "pkg").st_mode) == 0o750
    assert not (dest / ".git").exists() and not (dest / "data").exists()
    assert (dest / "link_to_src" / "pkg" / "m.py").read_text() == "x = 1\n" * 100
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")
                  if not p.relative_to(dest).as_posix().startswith("link_to_src/")) == \
        sorted(e.rel for e in plan.entries)


def test_copy_needs_empty_dest(tree: Path, tmp_path: Path) -> None:
    plan = plan_snapshot(cfg_for(tree))
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "x").write_text("")
    with pytest.raises(FileExistsError):
        copy_snapshot(plan, dest)


@pytest.mark.parametrize(("change", "words"), [
    (lambda p: (p / "train.py").write_text("much longer content than before\n"), "changed size"),
    (lambda p: (p / "train.py").unlink(), "disappeared"),
    (lambda p: ((p / "train.py").unlink(), (p / "train.py").symlink_to("/etc/passwd")),
     "was replaced"),
    (lambda p: ((p / "link_to_src").unlink(), (p / "link_to_src").symlink_to("empty")),
     "was re-pointed"),
])
def test_copy_detects_changes_after_planning(tree: Path, tmp_path: Path, change, words: str) -> None:
    plan = plan_snapshot(cfg_for(tree))
    change(tree)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ConfigError) as err:
        copy_snapshot(plan, dest)
    (line,) = err.value.problems
    assert line.startswith("task_config.toml: files.upload: '")
    assert words in line


def test_copy_fd_fallbacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each kernel path and the plain read loop must produce the same bytes."""
    data = os.urandom(200_000)
    (tmp_path / "src").write_bytes(data)

    def copy(name: str) -> bytes:
        src = os.open(tmp_path / "src", os.O_RDONLY)
        dst = os.open(tmp_path / name, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            assert snapshot.copy_fd(src, dst) == len(data)
        finally:
            os.close(src)
            os.close(dst)
        return (tmp_path / name).read_bytes()

    assert copy("a") == data

    def unsupported(*_args: object) -> int:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", unsupported, raising=False)
    assert copy("b") == data
    monkeypatch.setattr(os, "sendfile", unsupported)
    assert copy("c") == data


def test_largest_on_empty_plan(tmp_path: Path) -> None:
    plan = SnapshotPlan(root=tmp_path, entries=[Entry("d", "dir", 0, 0o755, None)],
                        total_bytes=0, file_count=0)
    assert plan.largest() == []


def test_submitted_manifest_lists_exactly_what_the_committed_task_holds(tree: Path, tmp_path: Path) -> None:
    """submit builds the manifest from the plan, not from a second walk: it must still be
    what a walk of the committed task finds (files with sizes, symlinks with targets)."""
    import json

    from ailabber.storage.manifest import build_manifest
    from ailabber.storage.spool import MANIFEST, NEW, UPLOAD_MEMBERS, Spool
    from ailabber.workstation.submit import submit

    (tree / "link-to-train").symlink_to("train.py")
    (tree / "src" / "pkg-link").symlink_to("pkg")
    spool = Spool(tmp_path / "spool")
    result = submit(tree / "task_config.toml", spool)
    task_dir = spool.stage_dir(NEW) / result.task_id
    written = json.loads((task_dir / MANIFEST).read_text())
    assert written == build_manifest(task_dir, result.task_id, list(UPLOAD_MEMBERS))
    assert written["symlinks"] == {"files/link-to-train": "train.py", "files/src/pkg-link": "pkg",
                                   "files/link_to_src": "src", "files/src/link_up.py": "../train.py"}
    assert "files/src/pkg/m.py" in written["files"] and "task.toml" in written["files"]
