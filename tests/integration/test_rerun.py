"""``ailabber resubmit``: a task's snapshot again as a new task, its files shared with the
earlier task's in the spool, with the real CLI and daemons (local scheduler)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from testbed.pipeline import Pipeline


def _spool_dir(p: Pipeline, task_id: str) -> Path:
    stage = p.status(task_id)["stage"]
    return p.home / "spool" / stage / task_id


def test_a_resubmitted_task_shares_the_files_and_runs_them_as_they_were(pipeline: Pipeline, tmp_path: Path) -> None:
    """The rerun runs the first task's snapshot, not the project as it is now, through the
    same inodes in the spool; the job appending to its own copy on the cluster changes
    neither task's file in the spool."""
    proj = pipeline.project(["mkdir -p output; cat data.txt > output/seen; echo job >> data.txt"],
                            files={"data.txt": "first\n", "sub/deep.txt": "deep\n"}, results=["output"])
    first = pipeline.submit(proj)
    (proj / "data.txt").write_text("edited later\n")
    assert pipeline.wait_terminal(first)["state"] == "completed"

    r = pipeline.cli("resubmit", first[-6:], "--json", check=True)
    again = json.loads(r.stdout)["id"]
    assert again != first
    final = pipeline.wait_terminal(again)
    assert final["state"] == "completed", final
    assert final["rerun_of"] == first
    shown = pipeline.cli("status", again, check=True).stdout.splitlines()
    assert any(line.split() == ["rerun", "of", first] for line in shown), shown

    a, b = _spool_dir(pipeline, first) / "files", _spool_dir(pipeline, again) / "files"
    for rel in ("data.txt", "sub/deep.txt", "task_config.toml"):
        sa, sb = os.stat(a / rel), os.stat(b / rel)
        assert (sa.st_ino, sa.st_dev) == (sb.st_ino, sb.st_dev), rel
    assert (a / "data.txt").read_text() == "first\n"            # the job's append stayed on the cluster
    assert os.stat(pipeline.remote_task(again) / "files" / "data.txt").st_ino != os.stat(b / "data.txt").st_ino
    pipeline.cli("fetch", again, "--dest", str(tmp_path / "out"), check=True)
    assert (tmp_path / "out" / "output" / "seen").read_text() == "first\n"
    meta = json.loads((_spool_dir(pipeline, again) / "meta.json").read_text())
    assert meta["rerun_of"] == first and meta["config_file"] == str(proj / "task_config.toml")


def test_resubmit_with_an_edit_changes_the_time_limit_and_a_bad_edit_is_refused(tmp_path: Path) -> None:
    """While spoold is down and the first task has not even been sent: the edit takes, a
    bad value is refused in one line naming the key, and nothing is written for it."""
    p = Pipeline(tmp_path)
    first = p.submit(p.project(["sleep 60"], time_limit="10:00"))

    r = p.cli("resubmit", first, "--edit", "resources.time_limit=soon")
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "resources.time_limit" in lines[0] and "'soon'" in lines[0], lines
    r = p.cli("resubmit", first, "--edit", "run.time_limit=0:02")
    assert r.returncode == 2 and "belongs in [resources]" in r.stderr, r
    assert [t["id"] for t in json.loads(p.cli("list", "--json", check=True).stdout)] == [first]
    assert os.listdir(p.home / "spool" / "tmp") == []

    r = p.cli("resubmit", first, "--edit", "resources.time_limit=0:02", "--edit", "resources.gpus=0")
    assert r.returncode == 0, r
    assert f"a rerun of {first}" in r.stdout
    again = json.loads(p.cli("list", "--json", check=True).stdout)[-1]["id"]
    assert 'time_limit = "0:02"' in (p.home / "spool" / "new" / again / "task.toml").read_text()
    p.cli("cancel", first, check=True)
    p.start_all()
    try:
        st = p.wait_terminal(again, timeout=90)
        assert (st["state"], st["reason"]) == ("failed", "timeout"), st
        assert p.wait_terminal(first)["state"] == "canceled"
    finally:
        p.stop_all()


def test_a_rerun_keeps_the_name_given_at_submit_or_takes_a_new_one(tmp_path: Path) -> None:
    """The name from ``submit --name`` is not in task.toml: the rerun takes it from the
    earlier task; ``resubmit --name`` gives another (and a bad one is refused in one line)."""
    p = Pipeline(tmp_path)
    first = json.loads(p.cli("submit", "--json", "--name", "baseline", str(p.project(["true"]) / "task_config.toml"),
                             check=True).stdout)["id"]
    p.cli("resubmit", first, check=True)
    p.cli("resubmit", first, "--name", "longer run", "--edit", "resources.time_limit=20:00", check=True)
    r = p.cli("resubmit", first, "--name", "bad/name")
    assert r.returncode == 2 and r.stderr.startswith("ailabber: --name:") and r.stderr.count("\n") == 1, r
    listed = json.loads(p.cli("list", "--json", check=True).stdout)
    assert [t["name"] for t in listed] == ["baseline", "baseline", "longer run"], listed
    r = p.cli("status", "baseline")
    assert r.returncode == 2 and listed[0]["id"] in r.stderr and listed[1]["id"] in r.stderr, r
    assert p.cli("status", "--json", "longer run", check=True).stdout.count(listed[2]["id"]) == 1
