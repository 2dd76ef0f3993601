"""The local spool and the file helpers, on a real temporary directory."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ailabber.model.task import TaskStatus, transition
from ailabber.storage import fsutil, manifest, statusfile
from ailabber.storage.spool import Spool


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path: Path) -> None:
    p = tmp_path / "status.json"
    fsutil.atomic_write_json(p, {"a": 1})
    fsutil.atomic_write_json(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 2}
    assert [x.name for x in tmp_path.iterdir()] == ["status.json"]


def test_jsonl_reader_skips_a_torn_last_line(tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    fsutil.append_json_line(p, {"n": 1})
    with open(p, "a") as fh:
        fh.write('{"n": 2')          # a crash in the middle of an append
    assert fsutil.read_json_lines(p) == [{"n": 1}]


def test_commit_rename_refuses_an_existing_target(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(FileExistsError):
        fsutil.commit_rename(tmp_path / "a", tmp_path / "b")


def test_spool_stages_requests_and_stale_tmp(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "spool")
    sp.ensure()
    tid = "261128-103406123-k3f9qz"
    d = sp.new_tmp_dir(tid)
    st, ev = transition(TaskStatus(id=tid), "pending", "waiting_for_upload")
    statusfile.record(d, st, ev)
    assert sp.all_ids() == []                    # invisible until committed
    sp.commit(tid)
    assert sp.locate(tid) == ("new", sp.stage_dir("new") / tid)
    sp.move(tid, "new", "synced")
    assert sp.read_status(tid).reason == "waiting_for_upload"  # type: ignore[union-attr]
    assert sp.resolve("k3f9qz") == tid
    sp.drop_request(tid, "cancel")
    (sp.requests_dir / ".junk.tmp").write_text("x")
    (sp.requests_dir / "not-an-id.cancel").write_text("x")
    assert list(sp.requests()) == [(tid, "cancel")]
    sp.clear_request(tid, "cancel")
    assert list(sp.requests()) == []
    with pytest.raises(ValueError):
        sp.request_path(tid, "delete")
    old = sp.new_tmp_dir("261128-103406124-aaaaaa")
    fresh = sp.new_tmp_dir("261128-103406125-bbbbbb")
    past = time.time() - 2 * 86400
    os.utime(old, (past, past))
    assert sp.clean_stale_tmp() == [old.name]
    assert fresh.exists() and not old.exists()


def test_manifest_detects_missing_short_and_escaping_files(tmp_path: Path) -> None:
    root = tmp_path / "t"
    (root / "files" / "sub").mkdir(parents=True)
    (root / "task.toml").write_text("x")
    (root / "files" / "sub" / "a.bin").write_bytes(b"1234")
    os.symlink("a.bin", root / "files" / "sub" / "link")
    m = manifest.build_manifest(root, "id", ["task.toml", "files"])
    assert m["file_count"] == 2 and m["total_bytes"] == 5 and "files/sub/link" in m["symlinks"]
    assert manifest.verify_manifest(root, m) == []
    (root / "files" / "sub" / "a.bin").write_bytes(b"12")
    assert "size 2, expected 4" in manifest.verify_manifest(root, m)[0]
    bad = dict(m, files={"../../etc/passwd": 10})
    assert "unsafe" in manifest.verify_manifest(root, bad)[0]
    assert manifest.verify_manifest(root, {"version": 99}) != []
    assert manifest.verify_manifest(root, None) != []


def test_manifest_refuses_files_reached_through_a_symlinked_directory(tmp_path: Path) -> None:
    root, outside = tmp_path / "t", tmp_path / "outside"
    (root / "files").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret").write_bytes(b"1234")
    m = {"version": manifest.MANIFEST_VERSION, "files": {"files/sub/secret": 4, "files/ok": 2}, "symlinks": {}}
    (root / "files" / "ok").write_bytes(b"ab")
    os.symlink(outside, root / "files" / "sub")
    problems = manifest.verify_manifest(root, m)
    assert problems == ["files/sub/secret: leads outside the upload (through a symlink)"]
    os.unlink(root / "files" / "sub")
    (root / "files" / "sub").mkdir()
    os.symlink(outside / "secret", root / "files" / "sub" / "secret")
    assert manifest.verify_manifest(root, m) == ["files/sub/secret: is a symlink, not a file"]
    os.unlink(root / "files" / "sub" / "secret")
    (root / "files" / "sub" / "secret").write_bytes(b"4321")
    assert manifest.verify_manifest(root, m) == []
