"""task_config.toml -> a validated ``TaskConfig``.

Everything a student writes is untrusted: every field is type- and range-checked, unknown
keys are refused with a did-you-mean, and every path must stay inside the upload directory.
Errors are collected (not first-only) so one run shows everything to fix, each as one line
``<file>: <field>: <what is wrong>``.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ailabber.ignore import IgnoreRules

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

MAX_CONFIG_BYTES = 1024 * 1024
MAX_STRING = 4096
MAX_COMMAND = 10_000
MAX_COMMANDS = 100
MAX_LIST = 1000
MAX_MEMORY_MB = 64 * 1024 * 1024          # 64T
MAX_TIME_S = 365 * 86400

#: Known keys per table, in the order they are documented.
SCHEMA: dict[str, tuple[str, ...]] = {
    "resources": ("gpus", "cpus", "memory", "time_limit"),
    "environment": ("pyproject_toml", "uv_lock", "extra_wheels"),
    "files": ("upload", "ignore", "workdir"),
    "run": ("commands", "logs", "results"),
}


@dataclass(frozen=True)
class Resources:
    gpus: int = 0
    cpus: int = 1
    memory: str = "8G"          # as written (normalised upper-case unit), e.g. "32G"
    memory_mb: int = 8192       # the same in MiB, for schedulers
    time_limit: str = "1:00:00"  # as written
    time_limit_s: int = 3600     # the same in seconds


@dataclass(frozen=True)
class Environment:
    pyproject_toml: str | None = None   # relative to the upload dir, normalised ("pyproject.toml")
    uv_lock: str | None = None
    extra_wheels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Files:
    upload: str = "."                   # relative to the config file's directory
    ignore: tuple[str, ...] = ()        # gitignore-syntax patterns, relative to the upload dir
    workdir: str = "."                  # relative to the upload dir, normalised


@dataclass(frozen=True)
class Run:
    commands: tuple[str, ...] = ()
    logs: tuple[str, ...] = ()          # relative to workdir, normalised
    results: tuple[str, ...] = ()       # relative to workdir, normalised


@dataclass(frozen=True)
class TaskConfig:
    resources: Resources
    environment: Environment
    files: Files
    run: Run
    source: Path = field(default=Path("task_config.toml"))   # the config file as given
    upload_root: Path = field(default=Path("."))             # absolute, resolved upload dir


class ConfigError(ValueError):
    """One or more problems; ``str()`` is one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))
