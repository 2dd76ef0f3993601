"""``ailabber init`` through the real CLI: it writes the [environment] the project's files
call for and says what it found, and ``submit`` refuses the template's placeholder
command until it is replaced.  The uv project then runs in its own environment on the
real daemons (local scheduler), not on the system's Python."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ailabber.model.template import PLACEHOLDER
from testbed.pipeline import Pipeline
from tests.integration.test_pipeline_env import CMD, PYPROJECT, UV

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _init(p: Pipeline, proj: Path) -> tuple[str, dict[str, object]]:
    r = p.cli("init", cwd=proj, check=True)
    return r.stdout, tomllib.loads((proj / "task_config.toml").read_text())


def _edit(proj: Path, command: str, results: str = "") -> None:
    cfg = proj / "task_config.toml"
    text = cfg.read_text().replace(json.dumps(PLACEHOLDER), json.dumps(command))
    cfg.write_text(text.replace("results = []", f"results = [{results}]") if results else text)


def test_init_in_a_uv_project_names_its_files_and_the_task_runs_in_that_environment(
        pipeline: Pipeline, tmp_path: Path) -> None:
    proj = tmp_path / "uvproj"
    proj.mkdir()
    (proj / "pyproject.toml").write_text(PYPROJECT)
    subprocess.run([UV, "lock", "--offline", "--project", str(proj)], check=True, capture_output=True)
    out, doc = _init(pipeline, proj)
    assert "found pyproject.toml, uv.lock" in out, out
    assert doc["environment"] == {"pyproject_toml": "pyproject.toml", "uv_lock": "uv.lock"}
    _edit(proj, CMD, '"output"')
    task_id = pipeline.submit(proj)
    st = pipeline.wait_terminal(task_id, timeout=240)
    assert st["state"] == "completed", (st, pipeline.cli("logs", task_id, "--stream", "setup").stdout)
    pipeline.cli("fetch", task_id, "--dest", str(tmp_path / "got"), check=True)
    prefix = Path((tmp_path / "got" / "output" / "prefix").read_text())
    assert prefix.is_relative_to(pipeline.base / "envs"), prefix      # the project's environment


def test_init_next_to_requirements_txt_names_the_uv_files_and_says_how_to_make_them(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    proj = tmp_path / "reqproj"
    proj.mkdir()
    (proj / "requirements.txt").write_text("numpy\n")
    out, doc = _init(p, proj)
    assert "found requirements.txt" in out and "uv init --bare && uv add -r requirements.txt" in out, out
    assert doc["environment"] == {"pyproject_toml": "pyproject.toml", "uv_lock": "uv.lock"}
    _edit(proj, "python train.py")
    r = p.cli("submit", cwd=proj)       # not silently on the system's Python: it says what is missing
    assert r.returncode == 2, r
    assert r.stderr.strip().splitlines() == [
        "ailabber: task_config.toml: environment.pyproject_toml: 'pyproject.toml' does not exist "
        "in the upload directory",
        "ailabber: task_config.toml: environment.uv_lock: 'uv.lock' does not exist in the upload directory"]


def test_init_in_an_empty_project_says_there_is_no_environment_and_submit_wants_the_command_edited(
        tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    proj = tmp_path / "bare"
    proj.mkdir()
    out, doc = _init(p, proj)
    assert "found no pyproject.toml, uv.lock or requirements.txt" in out and "system Python" in out, out
    assert doc["environment"] == {} and doc["run"]["commands"] == [PLACEHOLDER]    # type: ignore[index]
    r = p.cli("submit", cwd=proj)
    assert r.returncode == 2, r
    assert r.stderr.strip().splitlines() == [
        "ailabber: task_config.toml: run.commands[0]: is the placeholder ailabber init wrote; "
        'replace it with the command that runs your code, e.g. "python train.py"']
    assert not (p.home / "spool" / "new").exists() or not any((p.home / "spool" / "new").iterdir())
    _edit(proj, "python train.py")
    assert p.cli("submit", cwd=proj).returncode == 0
    r = p.cli("init", cwd=proj)
    assert r.returncode == 2 and "already exists" in r.stderr, r
