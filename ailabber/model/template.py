"""The task_config.toml that ``ailabber init`` writes, and how ``submit`` knows it is unedited.

The template's command is a placeholder that cannot pass for a real one: a template
submitted as written would otherwise run someone else's ``python train.py`` on the
cluster, or fail there after an upload and a wait in the queue.  ``submit`` refuses it.

The ``[environment]`` section follows what the project holds (``ProjectFiles``, found by
``workstation/init.py``): a config without one runs on the cluster's system Python, with
none of the project's packages, and nothing would say so.  Pure: no I/O.
"""

from __future__ import annotations

from typing import NamedTuple

from ailabber.model.config import ConfigError, TaskConfig
from ailabber.model.config_fields import Problems

#: What the template's command starts with; no real command does (bash would read a
#: redirection from a file named EDIT).
PLACEHOLDER_MARK = "<EDIT ME"
PLACEHOLDER = f"{PLACEHOLDER_MARK}: the command that runs your code, e.g. python train.py>"


class ProjectFiles(NamedTuple):
    """Which environment files lie next to the config (in the upload directory)."""

    pyproject: bool = False
    lock: bool = False
    requirements: bool = False
    python_version: bool = False

    @property
    def uses_uv(self) -> bool:
        return self.pyproject or self.lock


def refuse_placeholder(cfg: TaskConfig) -> None:
    """Raise ConfigError naming every command that still holds the template's placeholder."""
    p = Problems(cfg.source)
    for i, command in enumerate(cfg.run.commands):
        if command.lstrip().startswith(PLACEHOLDER_MARK):
            p.add(f"run.commands[{i}]", "is the placeholder ailabber init wrote; replace it with the "
                                        "command that runs your code, e.g. \"python train.py\"")
    if p.lines:
        raise ConfigError(p.lines)


def detected(found: ProjectFiles) -> list[str]:
    """What ``init`` says it found and what that means, one line each."""
    if found.pyproject and found.lock:
        extra = " and .python-version" if found.python_version else ""
        return [f"found pyproject.toml, uv.lock{extra}: [environment] names them; the cluster builds "
                "that environment with uv (uv sync --locked)"]
    if found.uses_uv:
        have, missing = ("pyproject.toml", "uv.lock") if found.pyproject else ("uv.lock", "pyproject.toml")
        todo = "run `uv lock`" if found.pyproject else "add the pyproject.toml it was made from"
        return [f"found {have} but no {missing}: [environment] names both; {todo} before you submit"]
    if found.requirements:
        return ["found requirements.txt: the cluster builds environments from pyproject.toml + uv.lock, "
                "which [environment] names; make them before you submit with: "
                "uv init --bare && uv add -r requirements.txt"]
    return ["found no pyproject.toml, uv.lock or requirements.txt: the commands will run with the cluster's "
            "system Python and none of your packages (see [environment] in the file)"]


_ENV_COMMON = '''\
pyproject_toml = "pyproject.toml"   # relative to the upload directory
uv_lock = "uv.lock"                 # required together with pyproject_toml
# extra_wheels = ["dist/my_op-0.1.0-cp310-linux_x86_64.whl"]   # extra wheels (default [])
'''

_ENV_NONE = '''\
# No environment: the commands run with the cluster's system python3, without your
# packages.  To have them installed, lock them with uv (uv init --bare; uv add PACKAGE)
# and give both files:
# pyproject_toml = "pyproject.toml"   # relative to the upload directory
# uv_lock = "uv.lock"                 # required together with pyproject_toml
# extra_wheels = ["dist/my_op-0.1.0-cp310-linux_x86_64.whl"]   # extra wheels (default [])
'''


def _environment(found: ProjectFiles) -> str:
    if found.pyproject and found.lock:
        return "# Found next to this file; the cluster installs them with uv sync --locked.\n" + _ENV_COMMON
    if found.pyproject:
        return "# uv.lock is missing: run `uv lock` next to this file before you submit.\n" + _ENV_COMMON
    if found.lock:
        return "# pyproject.toml is missing: uv.lock is made from it.\n" + _ENV_COMMON
    if found.requirements:
        return ("# Made from requirements.txt, next to this file, with:\n"
                "#     uv init --bare && uv add -r requirements.txt\n" + _ENV_COMMON)
    return _ENV_NONE


def template(found: ProjectFiles) -> str:
    """The commented task_config.toml for a project holding ``found``."""
    return f'''\
# task_config.toml: what to run on the cluster and what it needs.
# Replace the placeholder in run.commands (submit refuses it); every other key shows its
# default.  Paths are relative (no "..", not absolute) and stay inside the upload directory.

# name = "baseline"       # shown by `ailabber list`, and usable instead of the task id
                          # (letters, digits, spaces and - _ .; at most 64 characters)

[resources]
gpus = 0                  # GPUs to reserve (0-64)
cpus = 1                  # CPU cores (1-1024)
memory = "8G"             # RAM with unit K, M, G or T; a bare number means MiB (max 64T)
time_limit = "1:00:00"    # MM, MM:SS, H:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (max 365 days)

[environment]
{_environment(found)}
[files]
upload = "."              # directory to upload, relative to this file
ignore = []               # gitignore-style patterns to leave out, on top of .gitignore (also: .ailabberignore)
workdir = "."             # where the commands run, relative to the upload directory
warn = true               # warn at submit about data, checkpoints, venvs and large files
no_warn = []              # gitignore-style patterns of paths you upload on purpose (no warning)

[run]
commands = [              # REQUIRED: shell commands, run in order in workdir
    "{PLACEHOLDER}",
]
logs = []                 # log files/directories to bring back, relative to workdir (globs: "*.log")
results = []              # result files/directories to bring back, relative to workdir ("out/**/*.json")
'''
