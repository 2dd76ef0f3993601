"""spoold's upload accounting: the bytes "sent" are the task's file bytes rsync had to
transfer, never rsync's protocol overhead, so they never exceed the task's total."""

from __future__ import annotations

import os
from pathlib import Path

from spoold.transport import RsyncTransport


def _task(base: Path, name: str, files: dict[str, bytes]) -> Path:
    d = base / name
    (d / "files").mkdir(parents=True)
    for rel, data in files.items():
        (d / "files" / rel).write_bytes(data)
    (d / "manifest.json").write_text("{}")
    return d


def test_a_small_upload_reports_at_most_its_own_size(tmp_path: Path) -> None:
    area = tmp_path / "area"
    t = RsyncTransport(str(area))
    t.prepare()
    files = {f"f{i}.py": os.urandom(100 + i) for i in range(20)}       # small files: overhead dominates
    task = _task(tmp_path / "spool", "t1", files)
    result = t.push_task("t1", task, ["files"], task / "manifest.json")
    total = sum(len(v) for v in files.values())
    assert result.bytes_total == total
    assert result.bytes_sent == total, result          # all of it was new


def test_a_batch_never_reports_more_than_its_total(tmp_path: Path) -> None:
    area = tmp_path / "area"
    t = RsyncTransport(str(area))
    t.prepare()
    stage = tmp_path / "spool"
    ids = ["t1", "t2"]
    for i in ids:
        _task(stage, i, {f"f{n}.py": os.urandom(10) for n in range(30)})
        (stage / i / "manifest.json").write_text(
            '{"files": {' + ", ".join(f'"files/f{n}.py": 10' for n in range(30)) + "}}")
    results = t.push_tasks(ids, stage, ["files"], "manifest.json")
    for r in results.values():
        assert 0 < r.bytes_sent <= r.bytes_total, results
