"""Globs in ``run.logs``/``run.results`` end to end: the real CLI and both daemons (local
scheduler).  What each entry matched is listed on the cluster when the task ends; what
matched nothing is said by ``status``, ``fetch`` and the task's events; names the job
chose (a newline, a leading ``-``) and symlinks out of the workdir bring nothing from
outside it."""

from __future__ import annotations

import json
import os
import pwd
import time
from pathlib import Path

import pytest

from ailabber.cli.fetch import EXIT_UNMATCHED
from remoted.outputs import MAX_DEPTH
from testbed.pipeline import Pipeline
from testbed.unix_users import chown_tree
from tests.integration.conftest import STUDENTS
from tests.integration.test_slurm_pipeline import slurm_pipeline  # noqa: F401
from tests.integration.test_ssh import ssh_site
from tests.slurm_fixture import slurm_cluster  # noqa: F401


def _results(top: Path) -> dict[str, str]:
    """Every file and symlink fetched into ``top`` but the logs and the status (relative
    name -> content, or ``-> target``)."""
    out: dict[str, str] = {}
    for p in sorted(top.rglob("*")):
        rel = str(p.relative_to(top))
        if rel.startswith("ailabber-logs") or rel == "status.json":
            continue
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = p.read_text()
    return out


def _fetch(p: Pipeline, task_id: str, dest: Path) -> tuple[int, str, dict[str, str]]:
    r = p.cli("fetch", task_id, "--dest", str(dest))
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, r.stderr, _results(dest)


def _events(p: Pipeline, task_id: str) -> list[dict[str, object]]:
    lines = (p.home / "spool" / "done" / task_id / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_a_glob_brings_back_what_it_matches_and_nothing_else(pipeline: Pipeline, tmp_path: Path) -> None:
    cmd = "mkdir -p out/sub; echo 1 > out/a.json; echo 2 > out/.b.json; echo 3 > out/c.txt; echo 4 > out/sub/d.json"
    task_id = pipeline.submit(pipeline.project([cmd], results=["out/*.json"]))
    st = pipeline.wait_terminal(task_id)
    assert st["state"] == "completed"
    assert st["unmatched"] == []
    code, err, got = _fetch(pipeline, task_id, tmp_path / "f")
    assert code == 0, err
    assert got == {"out/a.json": "1\n", "out/.b.json": "2\n"}
    listing = json.loads((pipeline.home / "spool" / "outbox" / task_id / "outputs.json").read_text())
    assert listing["results"] == [{"pattern": "out/*.json", "matches": ["out/.b.json", "out/a.json"]}]
    assert listing["complete"] is True


def test_a_double_star_glob_matches_at_any_depth(pipeline: Pipeline, tmp_path: Path) -> None:
    cmd = ("mkdir -p ck/a/b/c other; echo 0 > top.ckpt; echo 1 > ck/one.ckpt; echo 3 > ck/a/b/c/three.ckpt; "
           "echo no > ck/a/b/skip.txt; echo 2 > other/two.ckpt; mkdir dir.ckpt; echo in > dir.ckpt/inside")
    task_id = pipeline.submit(pipeline.project([cmd], results=["**/*.ckpt", "ck/**/c"]))
    assert pipeline.wait_terminal(task_id)["state"] == "completed"
    code, err, got = _fetch(pipeline, task_id, tmp_path / "f")
    assert code == 0, err
    assert got == {"top.ckpt": "0\n", "ck/one.ckpt": "1\n", "ck/a/b/c/three.ckpt": "3\n",
                   "other/two.ckpt": "2\n", "dir.ckpt/inside": "in\n"}


def test_entries_that_match_nothing_are_said_by_status_fetch_and_the_events(pipeline: Pipeline,
                                                                           tmp_path: Path) -> None:
    cmd = "mkdir -p out; echo 1 > out/metrics.json"
    proj = pipeline.project([cmd], results=["out/metrics.jsn", "out/*.json", "ckpt/*.pt"])
    cfg = proj / "task_config.toml"
    cfg.write_text(cfg.read_text() + 'logs = ["tb/**"]\n')
    task_id = pipeline.submit(proj)
    st = pipeline.wait_terminal(task_id)
    assert st["state"] == "completed"
    assert st["unmatched"] == [{"entry": "run.logs[0]", "pattern": "tb/**"},
                               {"entry": "run.results[0]", "pattern": "out/metrics.jsn"},
                               {"entry": "run.results[2]", "pattern": "ckpt/*.pt"}]
    human = pipeline.cli("status", task_id, check=True).stdout
    assert "run.results[0] 'out/metrics.jsn' matched nothing" in human
    assert "run.results[2] 'ckpt/*.pt' matched nothing" in human
    assert "run.results[1]" not in human
    said = [e for e in _events(pipeline, task_id) if e.get("event") == "unmatched"]
    assert len(said) == 1 and said[0]["unmatched"] == st["unmatched"]
    assert "run.logs[0] 'tb/**' matched nothing" in str(said[0]["message"])
    code, err, got = _fetch(pipeline, task_id, tmp_path / "f")
    assert code == EXIT_UNMATCHED, err
    assert got == {"out/metrics.json": "1\n"}                  # what matched is still fetched
    assert err.splitlines() == ["ailabber: run.logs[0] 'tb/**' matched nothing",
                                "ailabber: run.results[0] 'out/metrics.jsn' matched nothing",
                                "ailabber: run.results[2] 'ckpt/*.pt' matched nothing"]
    # Said once: a second fetch does not add to the history.
    assert pipeline.cli("fetch", task_id, "--dest", str(tmp_path / "g")).returncode == EXIT_UNMATCHED
    assert len([e for e in _events(pipeline, task_id) if e.get("event") == "unmatched"]) == 1


def test_names_the_job_chose_and_symlinks_out_of_the_workdir_fetch_nothing_from_outside(
        pipeline: Pipeline, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.json").write_text("the cluster's secret\n")
    cmd = (f"mkdir -p out/deep; printf 'nl\\n' > 'out/new\nline.json'; echo dash > out/-rf.json; "
           f"echo ok > out/deep/x.json; ln -s {secret}/key.json out/abs.json; ln -s ../../../.. out/up.json; "
           f"ln -s {secret} out/linkdir; ln -s deep/x.json out/inside.json")
    task_id = pipeline.submit(pipeline.project([cmd], results=["out/*.json", "out/**/key.json", "out/linkdir"]))
    assert pipeline.wait_terminal(task_id)["state"] == "completed"
    code, err, got = _fetch(pipeline, task_id, tmp_path / "f")
    assert code == EXIT_UNMATCHED, err       # out/**/key.json: the symlinked directory is not entered
    assert err.splitlines() == ["ailabber: run.results[1] 'out/**/key.json' matched nothing"]
    assert got == {"out/new\nline.json": "nl\n", "out/-rf.json": "dash\n", "out/inside.json": "-> deep/x.json"}
    assert not any("secret" in v for v in got.values())
    listing = json.loads((pipeline.home / "spool" / "outbox" / task_id / "outputs.json").read_text())
    assert listing["results"][0]["matches"] == ["out/-rf.json", "out/abs.json", "out/inside.json",
                                                "out/new\nline.json", "out/up.json"]
    assert listing["results"][2]["matches"] == ["out/linkdir"]      # the link itself, not what it holds


def test_a_listing_cut_short_is_said_and_the_entries_come_back_by_their_patterns(pipeline: Pipeline,
                                                                                 tmp_path: Path) -> None:
    """remoted's walk is bounded (here: depth); past the bound nothing is claimed about what
    matched nothing, and spoold brings the entries back by their patterns instead."""
    deep = "/".join(["d"] * (MAX_DEPTH + 2))
    cmd = f"mkdir -p out/{deep}; echo deep > out/{deep}/x.json; echo top > out/x.json; echo no > out/x.txt"
    task_id = pipeline.submit(pipeline.project([cmd], results=["out/**/x.json", "nothing/*"]))
    st = pipeline.wait_terminal(task_id)
    assert st["state"] == "completed"
    assert "unmatched" not in st
    assert f"more than {MAX_DEPTH} directories deep" in st["outputs_incomplete"]
    assert [e["event"] for e in _events(pipeline, task_id) if "event" in e][-1] == "outputs_incomplete"
    assert "not all listed" in pipeline.cli("status", task_id, check=True).stdout
    code, err, got = _fetch(pipeline, task_id, tmp_path / "f")
    assert code == 0, err
    assert got == {"out/x.json": "top\n", f"out/{deep}/x.json": "deep\n"}


def test_a_running_task_is_fetched_by_its_patterns(pipeline: Pipeline, tmp_path: Path) -> None:
    """Before its end a task has no listing: fetch brings back what the patterns match so
    far (``**`` spanning no directory too) and says nothing about what matched nothing."""
    cmd = "mkdir -p out/a/b; echo 1 > out/x.json; echo 2 > out/a/b/x.json; echo 3 > out/a/y.txt; touch ready; sleep 300"
    task_id = pipeline.submit(pipeline.project([cmd], results=["out/**/x.json", "nothing/*"]))
    ready = pipeline.remote_task(task_id) / "files" / "ready"
    deadline = time.monotonic() + 120
    while not ready.exists():          # the commands have written their files
        assert time.monotonic() < deadline, pipeline.daemon_logs()
        time.sleep(0.1)
    code, err, got = _fetch(pipeline, task_id, tmp_path / "f")
    assert code == 0, err
    assert got == {"out/x.json": "1\n", "out/a/b/x.json": "2\n"}
    pipeline.cli("cancel", task_id, check=True)
    assert pipeline.wait_terminal(task_id)["state"] == "terminated"


def test_over_ssh_a_student_gets_her_globbed_results_with_remoted_as_root(pytestconfig: pytest.Config,
                                                                        student_python: Path) -> None:
    """The student is a real user whose key rrsync pins to her directory; remoted (root)
    lists her workdir through handles, and the names come back through rrsync."""
    with ssh_site(pytestconfig, student_python, "ailabber-globs-") as setup:
        alice = setup.pipes[STUDENTS[0]]
        alice.start("remoted")
        alice.start("spoold")
        cmd = ("mkdir -p out/run; echo 1 > out/run/a.json; printf 'nl\\n' > 'out/run/new\nline.json'; "
               "echo d > out/-x.json; ln -s /etc/passwd out/pw.json")
        proj = alice.project([cmd], name="globs", results=["out/**/*.json", "metrics.jsn"])
        chown_tree(proj, STUDENTS[0])
        task_id = alice.submit(proj)
        st = alice.wait_terminal(task_id, 90)
        assert st["state"] == "completed", (st, alice.daemon_logs())
        assert st["unmatched"] == [{"entry": "run.results[1]", "pattern": "metrics.jsn"}]
        dest = Path(pwd.getpwnam(STUDENTS[0]).pw_dir) / "glob-results" / task_id
        code, err, got = _fetch(alice, task_id, dest)
        assert code == EXIT_UNMATCHED, err
        assert got == {"out/run/a.json": "1\n", "out/run/new\nline.json": "nl\n", "out/-x.json": "d\n"}


def test_under_slurm_the_listing_is_made_when_the_job_ends(slurm_pipeline: Pipeline,  # noqa: F811
                                                          tmp_path: Path) -> None:
    cmd = "mkdir -p out/e1 out/e2; echo 1 > out/e1/m.json; echo 2 > out/e2/m.json; echo x > out/e2/m.txt"
    task_id = slurm_pipeline.submit(slurm_pipeline.project([cmd], results=["out/*/m.json", "out/final.pt"]))
    st = slurm_pipeline.wait_terminal(task_id, timeout=180)
    assert st["state"] == "completed", st
    assert st["unmatched"] == [{"entry": "run.results[1]", "pattern": "out/final.pt"}]
    code, err, got = _fetch(slurm_pipeline, task_id, tmp_path / "f")
    assert code == EXIT_UNMATCHED, err
    assert got == {"out/e1/m.json": "1\n", "out/e2/m.json": "2\n"}
