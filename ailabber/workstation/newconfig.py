"""``ailabber init``'s work: look at the project next to the new config, then write the
template that matches it (``model/template.py``) as one atomic replace."""

from __future__ import annotations

import os
from pathlib import Path

from ailabber.model.template import ProjectFiles, template
from ailabber.storage import fsutil


def project_files(directory: Path) -> ProjectFiles:
    """The environment files in ``directory``, the upload directory of a default config."""
    def has(name: str) -> bool:
        return os.path.isfile(directory / name)

    return ProjectFiles(pyproject=has("pyproject.toml"), lock=has("uv.lock"),
                        requirements=has("requirements.txt"), python_version=has(".python-version"))


def write_config(path: Path) -> ProjectFiles:
    """Write the template for the project around ``path`` there (replacing what is there)
    and return what was found."""
    found = project_files(path.absolute().parent)
    fsutil.atomic_write_bytes(path, template(found).encode(), 0o644)
    return found
