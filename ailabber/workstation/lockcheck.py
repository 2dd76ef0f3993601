"""Is the task's ``uv.lock`` still the lock of its ``pyproject.toml``?

A requirement added to ``pyproject.toml`` without running ``uv lock`` is the classic way to
lose a job: the cluster builds the environment from the lock, and the commands fail much
later with ModuleNotFoundError.  ``submit`` asks the same question the cluster's
``uv sync --locked`` asks, before anything is queued:

* with uv on the workstation, ``uv lock --check --offline`` on a copy of exactly the files
  the cluster builds from (``pyproject.toml``, ``uv.lock``, ``.python-version``, side by
  side, copied by the same ``storage.uvproject`` the cluster's build uses), with a short timeout;
* without uv, or when uv cannot decide offline (a package missing from its cache, a lock
  it cannot read), a comparison of the requirement *names* the lock records for the
  project with those in ``pyproject.toml``.  Names are all that can be compared without
  uv's normalisation of specifiers and markers; anything else is left to the cluster.

A lock uv cannot read at all is not refused here: the cluster's build says what is wrong.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ailabber.storage.uvproject import copy_uv_project

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

#: Seconds ``uv lock --check --offline`` may take (it normally takes well under one).
UV_CHECK_TIMEOUT_S = 10.0
#: Larger files are left to uv (a big project's lock is a few MB).
MAX_READ_BYTES = 64 << 20
#: What uv says (in every version since ``--locked``) when the lock does not match.
STALE_WORDS = "needs to be updated"

_NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")


def lock_is_stale(pyproject: Path, uv_lock: Path) -> bool:
    """True only when uv, or else the files themselves, show for certain that the lock
    does not match ``pyproject``."""
    try:
        verdict = uv_says_stale(pyproject, uv_lock)
        if verdict is None:
            project_text, lock_text = _read_text(pyproject), _read_text(uv_lock)
            if project_text is not None and lock_text is not None:
                verdict = requirements_differ(project_text, lock_text)
    except OSError:      # changed under us (a fifo now, say): the snapshot will say so
        return False
    return bool(verdict)


def _read_text(path: Path) -> str | None:
    """A regular file's text, or None: never blocks on a fifo put in a file's place."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = fh.read(MAX_READ_BYTES + 1)
    if len(data) > MAX_READ_BYTES:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def uv_says_stale(pyproject: Path, uv_lock: Path) -> bool | None:
    """uv's answer, offline; None when uv is not installed or could not decide."""
    uv = shutil.which("uv")
    if uv is None:
        return None
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    with tempfile.TemporaryDirectory(prefix="ailabber-lock-") as tmp:
        copy_uv_project(pyproject, uv_lock, Path(tmp))
        try:
            r = subprocess.run([uv, "lock", "--check", "--offline", "--no-progress", "--project", tmp],
                               cwd=tmp, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               errors="replace", timeout=UV_CHECK_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
    if r.returncode == 0:
        return False
    return True if STALE_WORDS in r.stderr + r.stdout else None


def _norm(name: str) -> str:
    """PEP 503: ``Foo_Bar`` and ``foo-bar`` are the same project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _names(requirements: Any) -> frozenset[str] | None:
    """The project names of a list of PEP 508 strings; None if it is not one."""
    if not isinstance(requirements, list):
        return None
    names = set()
    for req in requirements:
        m = _NAME.match(req) if isinstance(req, str) else None
        if m is None:
            return None
        names.add(_norm(m.group(1)))
    return frozenset(names)


def _locked_names(entries: Any) -> frozenset[str] | None:
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("name"), str)
                                                for e in entries):
        return None
    return frozenset(_norm(e["name"]) for e in entries)


def _wanted(project: dict[str, Any], doc: dict[str, Any]) -> tuple[frozenset[str], dict[str, frozenset[str]]] | None:
    """(names the project requires, with its extras; names per dependency group)."""
    dynamic = project.get("dynamic", [])
    if not isinstance(dynamic, list) or {"dependencies", "optional-dependencies"} & set(dynamic):
        return None
    dist = _names(project.get("dependencies", []))
    extras = project.get("optional-dependencies", {})
    if dist is None or not isinstance(extras, dict):
        return None
    for reqs in extras.values():
        more = _names(reqs)
        if more is None:
            return None
        dist |= more
    groups: dict[str, frozenset[str]] = {}
    raw_groups = dict(doc.get("dependency-groups", {}))
    uv_table = doc.get("tool", {}).get("uv", {})
    if "dev-dependencies" in uv_table:
        raw_groups["dev"] = [*raw_groups.get("dev", []), *uv_table["dev-dependencies"]]
    for group, reqs in raw_groups.items():
        names = _names(reqs)     # an {include-group = ...} is beyond a name comparison
        if names is None:
            return None
        groups[_norm(group)] = names
    return dist, groups


def requirements_differ(pyproject_text: str, lock_text: str) -> bool | None:
    """Whether the requirement names in ``pyproject.toml`` differ from those the lock
    recorded for the project (``[package.metadata]`` of its own package entry); None when
    that cannot be told reliably (dynamic dependencies, unreadable files, a lock of
    another project, include-groups)."""
    try:
        doc, lock = tomllib.loads(pyproject_text), tomllib.loads(lock_text)
        project = doc.get("project")
        if not isinstance(project, dict) or not isinstance(project.get("name"), str):
            return None
        wanted = _wanted(project, doc)
        own = [p for p in lock.get("package", []) if isinstance(p, dict)
               and p.get("name") == _norm(project["name"]) and isinstance(p.get("source"), dict)
               and p["source"].get("virtual", p["source"].get("editable")) == "."]
    except (tomllib.TOMLDecodeError, AttributeError, TypeError):
        return None
    if wanted is None or len(own) != 1:
        return None
    entry = own[0]
    if "metadata" not in entry and any(k in entry for k in ("dependencies", "optional-dependencies",
                                                            "dev-dependencies")):
        return None          # a lock format that records no metadata: nothing to compare
    meta = entry.get("metadata", {})
    if not isinstance(meta, dict):
        return None
    dist = _locked_names(meta.get("requires-dist", []))
    dev = meta.get("requires-dev", {})
    if dist is None or not isinstance(dev, dict):
        return None
    groups = {_norm(g): _locked_names(entries) for g, entries in dev.items()}
    if any(names is None for names in groups.values()):
        return None
    # An empty group may or may not be recorded; it requires nothing either way.
    return dist != wanted[0] or {g: n for g, n in groups.items() if n} != {g: n for g, n in wanted[1].items() if n}
