"""A task that names pyproject.toml + uv.lock runs in its built environment; a second
task with the same lock reuses it without building."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from testbed.pipeline import Pipeline

UV = shutil.which("uv") or "uv"
PYPROJECT = """\
[project]
name = "envprobe"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = []

[tool.uv]
package = false
"""
CMD = ('python -c "import sys, os; os.makedirs(\'output\', exist_ok=True); '
       'open(\'output/prefix\', \'w\').write(sys.prefix)"')


def _project(p: Pipeline, name: str) -> Path:
    d = p.project([CMD], name=name, results=["output"], extra_toml=(
        '[environment]\npyproject_toml = "pyproject.toml"\nuv_lock = "uv.lock"\n'),
        files={"pyproject.toml": PYPROJECT})
    subprocess.run([UV, "lock", "--offline", "--project", str(d)], check=True, capture_output=True)
    return d


def test_env_is_built_once_and_reused(pipeline: Pipeline, tmp_path: Path) -> None:
    first = pipeline.submit(_project(pipeline, "a"))
    st = pipeline.wait_terminal(first, timeout=180)
    assert st["state"] == "completed", (st, pipeline.cli("logs", first).stdout)
    second = pipeline.submit(_project(pipeline, "b"))
    st = pipeline.wait_terminal(second, timeout=180)
    assert st["state"] == "completed", st
    prefixes = []
    for task_id in (first, second):
        dest = tmp_path / f"r-{task_id}"
        pipeline.cli("fetch", task_id, "--dest", str(dest), check=True)
        prefixes.append((dest / "output" / "prefix").read_text())
    envs = pipeline.base / "envs"
    assert prefixes[0] == prefixes[1]
    assert Path(prefixes[0]).is_relative_to(envs)
    assert "built" in pipeline.cli("logs", first).stdout
    assert "reused" in pipeline.cli("logs", second).stdout
    assert len([d for d in envs.iterdir() if d.is_dir()]) == 1


def test_broken_lock_fails_with_setup_failed(pipeline: Pipeline) -> None:
    d = _project(pipeline, "broken")
    (d / "uv.lock").write_text("this is = not [ a lock\n")
    task_id = pipeline.submit(d)
    st = pipeline.wait_terminal(task_id, timeout=120)
    assert (st["state"], st["reason"]) == ("failed", "setup_failed"), st
    assert "uv sync --locked failed" in st["message"]
    setup = pipeline.cli("logs", "--stream", "setup", task_id).stdout
    assert "uv.lock" in setup


def _path_without_uv() -> str:
    """The test's PATH minus every directory that holds a uv: a workstation without uv."""
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(d for d in dirs if d and not os.path.exists(os.path.join(d, "uv")))


@pytest.mark.parametrize("with_uv", [True, False], ids=["uv lock --check", "without uv"])
def test_submit_refuses_a_lock_older_than_its_pyproject(tmp_path: Path, with_uv: bool) -> None:
    """A dependency added to pyproject.toml without ``uv lock``: the job would fail much
    later with ModuleNotFoundError.  submit says so in one line, and nothing is queued."""
    p = Pipeline(tmp_path)              # no daemons: submit alone decides
    d = _project(p, "stale")
    (d / "pyproject.toml").write_text(PYPROJECT.replace("dependencies = []", 'dependencies = ["numpy"]'))
    env = {} if with_uv else {"PATH": _path_without_uv()}
    r = p.cli("submit", cwd=d, env=env)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.splitlines() == [
        "ailabber: task_config.toml: environment.uv_lock: 'uv.lock' is out of date with 'pyproject.toml'; "
        "run `uv lock` and submit again"], r.stderr
    assert list((p.home / "spool").glob("*/*-*-*")) == []


def test_a_stale_lock_that_reaches_the_cluster_fails_setup_with_uvs_message(pipeline: Pipeline) -> None:
    """A change the workstation cannot see without uv (the project's version) still makes
    the lock stale: the build refuses it (``--locked``) instead of syncing an environment
    the commands would then miss modules in."""
    d = _project(pipeline, "stale-on-cluster")
    (d / "pyproject.toml").write_text(PYPROJECT.replace('version = "0.1.0"', 'version = "0.2.0"'))
    task_id = pipeline.submit(d, env={"PATH": _path_without_uv()})
    st = pipeline.wait_terminal(task_id, timeout=180)
    assert (st["state"], st["reason"]) == ("failed", "setup_failed"), st
    assert "uv sync --locked failed" in st["message"] and "needs to be updated" in st["message"], st
    assert "run `uv lock`" in pipeline.cli("logs", "--stream", "setup", task_id).stdout
