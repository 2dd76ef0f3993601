"""The files uv reads to choose a project's interpreter and packages, laid out as uv wants
them: the workstation's lock check and the cluster's environment build copy the same ones,
so that both ask uv about exactly what the cluster will build."""

from __future__ import annotations

import shutil
from pathlib import Path

PYTHON_PIN = ".python-version"


def copy_uv_project(pyproject: Path, uv_lock: Path, dest: Path) -> None:
    """Copy ``pyproject.toml``, ``uv.lock`` and the ``.python-version`` beside the
    pyproject (if there is one) into ``dest``."""
    shutil.copyfile(pyproject, dest / "pyproject.toml")
    shutil.copyfile(uv_lock, dest / "uv.lock")
    pin = pyproject.parent / PYTHON_PIN
    if pin.is_file():
        shutil.copyfile(pin, dest / PYTHON_PIN)
