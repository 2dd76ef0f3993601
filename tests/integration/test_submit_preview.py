"""``submit --dry-run``, the warnings at submit and ``.gitignore`` as the base of the ignore
rules, through the real CLI (and, where the upload itself is the question, the daemons)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from ailabber.storage import fsutil
from testbed.pipeline import Pipeline


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path below ``root`` with its size and mtime: what "writes nothing" compares."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            out[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns)
    return out


def _write(project: Path, rel: str, data: bytes | str) -> None:
    path = project / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    fsutil.atomic_write_bytes(path, data)


def _dry(p: Pipeline, project: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    r = p.cli("submit", "--dry-run", "--json", cwd=project)
    return r, json.loads(r.stdout)


def _excluded(report: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {f"{x['where']} {x['pattern']}": (x["files"], x["bytes"]) for x in report["excluded"]}


def test_dry_run_writes_nothing_and_reports_counts_rules_and_changes(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)                     # no daemon: the CLI alone decides
    kept = {"train.py": "print('hi')\n", "src/model.py": "x = 1\n" * 100, "src/old.py": "old\n",
            ".gitignore": "data/\n*.log\n"}
    project = p.project(["python train.py"], extra_toml='[files]\nignore = ["*.tmp"]\n', files={
        **kept, "data/a.csv": "1,2\n" * 1000, "data/raw/b.csv": "3\n" * 500, "run.log": "log\n",
        "scratch.tmp": "t" * 70})
    spool = p.home / "spool"

    r, report = _dry(p, project)               # before any submit: not even the spool appears
    assert r.returncode == 0, r.stderr
    assert not spool.exists()
    assert report["accepted"] is True and report["changes"] is None
    uploaded = {rel: len(text) for rel, text in kept.items()}
    uploaded["task_config.toml"] = (project / "task_config.toml").stat().st_size
    assert report["upload"]["files"] == len(uploaded)
    assert report["upload"]["bytes"] == sum(uploaded.values())
    assert report["upload"]["largest"][0] == {"path": "src/model.py", "bytes": 600}
    assert _excluded(report) == {".gitignore:1 data/": (2, 4000 + 1000), ".gitignore:2 *.log": (1, 4),
                                 "files.ignore[0] *.tmp": (1, 70)}

    first = p.submit(project)
    _write(project, "train.py", "print('changed')\n")
    _write(project, "src/new.py", "new\n")
    os.unlink(project / "src" / "old.py")
    before = _tree(spool)
    r, report = _dry(p, project)
    assert r.returncode == 0, r.stderr
    assert _tree(spool) == before              # nothing written, nothing touched
    changes = report["changes"]
    assert changes["since"] == first
    assert (changes["new"], changes["changed"], changes["removed"]) == (["src/new.py"], ["train.py"], ["src/old.py"])
    assert changes["bytes"] == len("print('changed')\n") + len("new\n")

    r = p.cli("submit", "--dry-run", cwd=project)
    assert r.returncode == 0, r.stderr
    for words in ("nothing was written", "would upload 5 files", "data/  .gitignore:1", f"since {first}",
                  "1 new, 1 changed, 1 removed", "new      'src/new.py'", "a submit would be accepted"):
        assert words in r.stdout, (words, r.stdout)
    assert _tree(spool) == before


def test_dry_run_exits_as_the_refused_submit_would(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    project = p.project(["true"], files={"big.bin": "x" * 5000, "small.txt": "y"})
    (p.home / "spool").mkdir(parents=True)
    fsutil.atomic_write_json(p.home / "spool" / "limits.json", {"max_upload_bytes": 3000, "max_upload_files": 100})
    r, report = _dry(p, project)
    assert r.returncode == 2
    assert report["accepted"] is False
    assert {c["name"]: c["fits"] for c in report["limits"]} == {
        "max_upload_bytes": False, "max_upload_files": True, "max_disk_bytes": True}
    real = p.cli("submit", cwd=project)
    assert real.returncode == 2
    assert r.stderr == real.stderr and "over the upload limit" in r.stderr, (r.stderr, real.stderr)
    text = p.cli("submit", "--dry-run", cwd=project)
    assert text.returncode == 2 and "EXCEEDS" in text.stdout and "would be refused" in text.stdout
    assert os.listdir(p.home / "spool") == ["limits.json"]        # the refused submit wrote nothing either

    (project / "task_config.toml").write_text('[run]\ncommands = ["true"]\nbogus = 1\n')
    bad = p.cli("submit", "--dry-run", "--json", cwd=project)
    assert bad.returncode == 2 and bad.stdout == "" and "run.bogus" in bad.stderr


def test_gitignored_directory_stays_home_unless_reincluded(pipeline: Pipeline) -> None:
    files = {".gitignore": "data/\n", "data/x.csv": "1\n", "data/sub/y.csv": "2\n", "keep.txt": "k\n"}
    gone = pipeline.project(["test ! -e data", "test -e keep.txt"], files=files)
    back = pipeline.project(["test -e data/x.csv", "test -e data/sub/y.csv"], files=files,
                            extra_toml='[files]\nignore = ["!data/"]\n')
    nested = pipeline.project(["test -e data/.gitignore", "test ! -e data/x.csv", "test ! -e data/sub"],
                              files={**files, ".gitignore": "", "data/.gitignore": "*\n!.gitignore\n"})
    ids = [pipeline.submit(project) for project in (gone, back, nested)]
    for task_id in ids:
        st = pipeline.wait_terminal(task_id)
        assert st["state"] == "completed", (task_id, st, pipeline.cli("logs", task_id).stdout)
    manifest = json.loads((pipeline.home / "spool" / "done" / ids[0] / "manifest.json").read_text())
    assert not [rel for rel in manifest["files"] if rel.startswith("files/data")]


def test_warnings_name_path_size_and_ignore_line_and_can_be_silenced(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    project = p.project(["true"], files={"train.py": "x\n", "env2/pyvenv.cfg": "home = /usr/bin\n",
                                         "env2/lib/site.py": "s\n", "backup.git/HEAD": "ref: refs/heads/main\n",
                                         "backup.git/objects/ab/cdef": "o\n", "small/data/a.csv": "1\n"})
    (project / "datasets").mkdir()
    with open(project / "datasets" / "train.bin", "wb") as fh:     # sparse: 150 MB of size, no blocks
        fh.truncate(150_000_000)

    r = p.cli("submit", cwd=project)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("ailabber: warning:")]
    assert lines == [
        "ailabber: warning: 'datasets/' (150.0 MB) looks like data, checkpoints or run outputs; "
        'unless the job needs it, add "/datasets/" to files.ignore',
        "ailabber: warning: 'backup.git/' (23 B) is a git repository (it has HEAD and objects/); "
        'unless the job needs it, add "/backup.git/" to files.ignore',
        "ailabber: warning: 'env2/' (18 B) is a Python virtual environment (it has pyvenv.cfg); the cluster "
        'builds the job\'s own; unless the job needs it, add "/env2/" to files.ignore',
    ], r.stderr
    assert "files.no_warn" in r.stderr
    assert len(os.listdir(p.home / "spool" / "new")) == 1         # the submit went on

    r, report = _dry(p, project)
    assert [(w["kind"], w["path"], w["ignore_line"]) for w in report["warnings"]] == [
        ("data_dir", "datasets", "/datasets/"), ("git_repo", "backup.git", "/backup.git/"),
        ("venv", "env2", "/env2/")]

    toml = (project / "task_config.toml").read_text()
    (project / "task_config.toml").write_text(toml + '\n[files]\nno_warn = ["/datasets/"]\nignore = ["/env2/"]\n')
    r = p.cli("submit", cwd=project)
    assert r.returncode == 0, r.stderr
    assert "'backup.git/'" in r.stderr and "datasets" not in r.stderr and "env2" not in r.stderr, r.stderr
    (project / "task_config.toml").write_text(toml + "\n[files]\nwarn = false\n")
    r = p.cli("submit", cwd=project)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
