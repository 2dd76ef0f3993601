"""The template ``init`` writes: every key documented, an [environment] that follows the
project's files, and a command that ``submit`` refuses until it is replaced."""

from __future__ import annotations

from pathlib import Path

import pytest

from ailabber.model.config import ConfigError, Environment, Resources
from ailabber.model.template import PLACEHOLDER, ProjectFiles, detected, refuse_placeholder, template
from ailabber.workstation.newconfig import project_files, write_config
from ailabber.workstation.project import load_task_config

UV = ProjectFiles(pyproject=True, lock=True)


def _write(d: Path, found: ProjectFiles, command: str | None = None) -> Path:
    path = d / "task_config.toml"
    text = template(found)
    path.write_text(text if command is None else text.replace(PLACEHOLDER, command))
    return path


def test_the_template_in_an_empty_directory_documents_every_key_and_holds_a_placeholder(
        tmp_path: Path) -> None:
    text = template(ProjectFiles())
    for key in ("name", "gpus", "cpus", "memory", "time_limit", "pyproject_toml", "uv_lock",
                "extra_wheels", "upload", "ignore", "workdir", "commands", "logs", "results"):
        assert key in text
    cfg = load_task_config(_write(tmp_path, ProjectFiles()))
    assert cfg.run.commands == (PLACEHOLDER,)
    assert cfg.resources == Resources() and cfg.environment == Environment() and cfg.name is None
    assert "system" in text.split("[environment]")[1].split("[files]")[0]


def test_submit_refuses_the_placeholder_in_one_line(tmp_path: Path) -> None:
    cfg = load_task_config(_write(tmp_path, ProjectFiles()))
    with pytest.raises(ConfigError) as exc:
        refuse_placeholder(cfg)
    assert exc.value.problems == [
        'task_config.toml: run.commands[0]: is the placeholder ailabber init wrote; '
        'replace it with the command that runs your code, e.g. "python train.py"']
    refuse_placeholder(load_task_config(_write(tmp_path, ProjectFiles(), "python train.py")))   # edited: fine


def test_with_pyproject_and_lock_the_environment_is_live(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "uv.lock").write_text("version = 1\n")
    assert project_files(tmp_path) == UV
    cfg = load_task_config(_write(tmp_path, UV, "python train.py"))
    assert cfg.environment == Environment(pyproject_toml="pyproject.toml", uv_lock="uv.lock")


@pytest.mark.parametrize("found", [ProjectFiles(requirements=True), ProjectFiles(pyproject=True),
                                   ProjectFiles(lock=True)])
def test_a_half_ready_environment_is_named_so_submit_says_what_is_missing(
        tmp_path: Path, found: ProjectFiles) -> None:
    with pytest.raises(ConfigError) as exc:
        load_task_config(_write(tmp_path, found, "python train.py"))
    assert all("does not exist in the upload directory" in line for line in exc.value.problems)
    assert {line.split(": ")[1] for line in exc.value.problems} <= {"environment.pyproject_toml",
                                                                   "environment.uv_lock"}


def test_what_init_says_it_found() -> None:
    assert "uv sync --locked" in detected(UV)[0]
    assert "uv lock" in detected(ProjectFiles(pyproject=True))[0]
    assert "uv add -r requirements.txt" in detected(ProjectFiles(requirements=True))[0]
    assert "system Python" in detected(ProjectFiles())[0]
    assert detected(ProjectFiles(pyproject=True, lock=True, requirements=True)) == detected(UV)


def test_write_config_looks_next_to_the_file_it_writes(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "requirements.txt").write_text("numpy\n")
    assert write_config(tmp_path / "sub" / "task_config.toml") == ProjectFiles(requirements=True)
    assert 'pyproject_toml = "pyproject.toml"' in (tmp_path / "sub" / "task_config.toml").read_text()
