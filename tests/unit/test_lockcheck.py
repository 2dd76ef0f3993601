"""What ``submit`` can tell from the files alone about a uv.lock that no longer matches
its pyproject.toml (when uv is not installed on the workstation)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ailabber.workstation.lockcheck import lock_is_stale, requirements_differ

PYPROJECT = """\
[project]
name = "Foo_Bar"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = ["iniconfig>=1", "Packaging ; python_version>'3.8'"]

[project.optional-dependencies]
x = ["pluggy"]

[dependency-groups]
dev = ["pytest"]
"""

LOCK = """\
version = 1
revision = 3
requires-python = ">=3.10"

[[package]]
name = "foo-bar"
version = "0.1.0"
source = { virtual = "." }

[package.metadata]
requires-dist = [
    { name = "iniconfig", specifier = ">=1" },
    { name = "packaging", marker = "python_full_version >= '3.9'" },
    { name = "pluggy", marker = "extra == 'x'" },
]
provides-extras = ["x"]

[package.metadata.requires-dev]
dev = [{ name = "pytest" }]

[[package]]
name = "iniconfig"
version = "2.3.1"
source = { registry = "https://pypi.org/simple" }
"""

NO_DEPS_PYPROJECT = '[project]\nname = "p"\nversion = "0.1.0"\ndependencies = []\n'
NO_DEPS_LOCK = 'version = 1\n\n[[package]]\nname = "p"\nversion = "0.1.0"\nsource = { virtual = "." }\n'


def test_a_lock_made_from_the_pyproject_matches_it() -> None:
    assert requirements_differ(PYPROJECT, LOCK) is False
    assert requirements_differ(NO_DEPS_PYPROJECT, NO_DEPS_LOCK) is False


@pytest.mark.parametrize("change", [
    ('"iniconfig>=1", ', '"iniconfig>=1", "numpy", '),          # a dependency added
    ('"iniconfig>=1", ', ''),                                    # one removed
    ('x = ["pluggy"]', 'x = ["pluggy", "rich"]'),                # an extra's
    ('dev = ["pytest"]', 'dev = ["pytest", "ruff"]'),            # a dependency group's
])
def test_a_requirement_added_or_removed_since_the_lock_is_found(change: tuple[str, str]) -> None:
    assert requirements_differ(PYPROJECT.replace(*change), LOCK) is True
    assert requirements_differ(NO_DEPS_PYPROJECT.replace("[]", '["numpy"]'), NO_DEPS_LOCK) is True


@pytest.mark.parametrize("pyproject,lock", [
    (PYPROJECT.replace('dependencies = [', 'dynamic = ["dependencies"]\nxdependencies = ['), LOCK),  # dynamic
    (PYPROJECT.replace('name = "Foo_Bar"', 'name = "other"'), LOCK),   # the lock is of another project
    (PYPROJECT, "this is = not [ a lock\n"),                           # uv will say what is wrong
    ("[project\n", LOCK),
    (PYPROJECT.replace('dev = ["pytest"]', 'dev = [{ include-group = "lint" }]'), LOCK),
])
def test_what_cannot_be_compared_reliably_is_left_to_uv(pyproject: str, lock: str) -> None:
    assert requirements_differ(pyproject, lock) is None


def test_only_names_count_so_formatting_and_specifiers_never_refuse_a_good_lock() -> None:
    """uv records specifiers and markers normalised; a name is compared in PEP 503 form."""
    respelled = PYPROJECT.replace('"iniconfig>=1"', '"IniConfig >= 1.0"').replace("Packaging ;", "packaging;")
    assert requirements_differ(respelled, LOCK) is False


def test_empty_groups_and_locks_without_metadata_never_refuse() -> None:
    """uv records an empty group in some versions and not in others; a lock format without
    ``[package.metadata]`` says nothing about the requirements."""
    empty_group = NO_DEPS_PYPROJECT + '\n[dependency-groups]\ndev = []\n'
    assert requirements_differ(empty_group, NO_DEPS_LOCK) is False
    assert requirements_differ(NO_DEPS_PYPROJECT, NO_DEPS_LOCK + "\n[package.metadata.requires-dev]\ndev = []\n") is False
    old_format = LOCK.split("[package.metadata]")[0] + 'dependencies = [{ name = "iniconfig" }]\n'
    assert requirements_differ(PYPROJECT, old_format) is None


def test_without_uv_the_files_decide_and_a_fifo_is_never_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-uv-here"))
    (tmp_path / "pyproject.toml").write_text(NO_DEPS_PYPROJECT.replace("[]", '["numpy"]'))
    (tmp_path / "uv.lock").write_text(NO_DEPS_LOCK)
    assert lock_is_stale(tmp_path / "pyproject.toml", tmp_path / "uv.lock") is True
    (tmp_path / "pyproject.toml").write_text(NO_DEPS_PYPROJECT)
    assert lock_is_stale(tmp_path / "pyproject.toml", tmp_path / "uv.lock") is False
    os.unlink(tmp_path / "uv.lock")
    os.mkfifo(tmp_path / "uv.lock")
    assert lock_is_stale(tmp_path / "pyproject.toml", tmp_path / "uv.lock") is False
