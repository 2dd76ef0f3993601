"""A task that names pyproject.toml + uv.lock runs in its built environment; a second
task with the same lock reuses it without building."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

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
    assert "uv sync --frozen failed" in st["message"]
    setup = pipeline.cli("logs", "--stream", "setup", task_id).stdout
    assert "uv.lock" in setup
