"""What an environment is keyed by: the task's inputs and the interpreter uv picks for them.

An environment is reused only when everything that determines its content is the same, so
the key (``env_key``) covers the bytes of ``pyproject.toml``, ``uv.lock`` and each extra
wheel, and the interpreter uv would build with, found the way ``uv sync`` would find it
(``find_interpreter``).  Describing that interpreter costs a second uv run, so the answer
is remembered in the user's cache (``interpreters.json``).  The build itself, the cache
layout and its lock are ``remoted.envs``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ailabber.storage.fsutil import atomic_write_json, read_json_or_none
from ailabber.storage.uvproject import PYTHON_PIN, copy_uv_project

#: Bumped when the cache layout or the build recipe changes, so old entries are not reused.
KEY_FORMAT = b"ailabber-env-v1"
KEY_LENGTH = 32

#: In the environment cache: what ``uv python list`` said about each interpreter path.
INTERPRETERS_FILE = "interpreters.json"
#: In the environment cache: uv's own cache, used instead of any ``UV_CACHE_DIR`` around.
UV_CACHE = "uv-cache"
#: Seconds allowed for ``uv python find`` / ``uv python list``; they normally take ~50 ms.
PROBE_TIMEOUT_S = 30.0


class EnvBuildError(RuntimeError):
    """The environment could not be prepared.  ``str()`` is one plain line; uv's own
    output is in the log passed to ``ensure_env``."""


@dataclass(frozen=True)
class EnvSpec:
    pyproject: Path          # absolute path to the task's pyproject.toml
    uv_lock: Path            # absolute path to the task's uv.lock
    wheels: tuple[Path, ...] = ()



@dataclass(frozen=True)
class Interpreter:
    """What ``uv python find`` answered; ``path`` is None when it found nothing."""

    identity: str
    path: str | None
    problem: str = ""


# --- locating uv and the interpreter ------------------------------------------------------

def which_uv(uv: str) -> str:
    found = shutil.which(uv)
    if found is None:
        raise EnvBuildError(f"uv is not installed on the cluster side (looked for {uv!r} on PATH)")
    return found


def uv_env(cache_root: Path | None, venv: Path | None = None) -> dict[str, str]:
    """The environment for uv calls.

    An activated virtualenv (e.g. the daemon's own) must not leak into discovery or make
    uv warn that it differs from the project environment.  uv's cache goes into the
    user's private ``cache_root``: a ``UV_CACHE_DIR`` or ``XDG_CACHE_HOME`` inherited from
    remoted may be shared by every student or belong to root, and the user's home may be
    world-readable, while that cache holds the project's downloads and builds.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    if cache_root is not None:
        env["UV_CACHE_DIR"] = str(cache_root / UV_CACHE)
    if venv is not None:
        env["UV_PROJECT_ENVIRONMENT"] = str(venv)
    return env


def _python_version_file(spec: EnvSpec) -> Path:
    return spec.pyproject.parent / PYTHON_PIN


def copy_project(spec: EnvSpec, dest: Path) -> None:
    """Copy exactly the files uv reads to choose the interpreter and the packages."""
    copy_uv_project(spec.pyproject, spec.uv_lock, dest)


def _first_error_line(text: str) -> str:
    """uv's ``error:`` line if it printed one (warnings may come first), else its first line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in lines:
        if line.startswith("error:"):
            return line.removeprefix("error:").strip()
    return lines[0] if lines else ""


def find_interpreter(spec: EnvSpec, uv: str, cache_root: Path | None = None) -> Interpreter:
    """Ask uv which interpreter it would use for this project, honouring ``requires-python``
    and ``.python-version``.

    Runs on a throw-away copy of the project so that nothing around the upload (a stray
    ``.venv``, an enclosing workspace) influences the answer, and with ``--system`` so that
    the caller's own virtualenv is not mistaken for the project's interpreter.  With a
    ``cache_root``, uv uses its cache there and the answer is remembered there.
    """
    uv_path = which_uv(uv)
    env = uv_env(cache_root)
    with tempfile.TemporaryDirectory(prefix="ailabber-pyfind-") as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        copy_project(spec, project)
        try:
            found = subprocess.run(
                [uv_path, "python", "find", "--system", "--project", str(project)],
                cwd=tmp, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                text=True, errors="replace", timeout=PROBE_TIMEOUT_S, check=False,
            )
        except subprocess.TimeoutExpired:
            found = None
    path = found.stdout.strip().splitlines()[-1] if found and found.returncode == 0 and found.stdout.strip() else ""
    if not path:
        problem = _first_error_line(found.stderr) if found else "uv python find timed out"
        return Interpreter(_unresolved_identity(spec), None, problem or "no matching interpreter")
    identity = (_remembered_description(cache_root / INTERPRETERS_FILE, uv_path, path, env)
                if cache_root is not None else _describe(uv_path, path, env))
    return Interpreter(identity, path)


def _remembered_description(memo: Path, uv_path: str, path: str, env: dict[str, str]) -> str:
    """``_describe`` with its answer kept in ``memo`` (a JSON file in the environment
    cache) for as long as the interpreter's file is the same one (device, inode, size,
    mtime): a job reusing its environment then runs one uv process instead of two."""
    try:
        st = os.stat(path)
    except OSError:
        return _describe(uv_path, path, env)
    fingerprint = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
    known = read_json_or_none(memo)
    known = known if isinstance(known, dict) else {}
    entry = known.get(path)
    if isinstance(entry, dict) and entry.get("file") == fingerprint and isinstance(entry.get("identity"), str):
        return str(entry["identity"])
    identity = _describe(uv_path, path, env)
    known[path] = {"file": fingerprint, "identity": identity}
    try:
        atomic_write_json(memo, dict(list(known.items())[-32:]))
    except OSError:
        pass          # a read-only or full cache only costs the next job the second uv run
    return identity


def _describe(uv_path: str, path: str, env: dict[str, str]) -> str:
    """``<implementation>-<version>-<os>-<arch>-<libc>-<path>`` for an interpreter path."""
    try:
        listed = subprocess.run(
            [uv_path, "python", "list", path, "--only-installed", "--output-format", "json"],
            env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            errors="replace", timeout=PROBE_TIMEOUT_S, check=False,
        )
        entries = json.loads(listed.stdout) if listed.returncode == 0 else []
    except (subprocess.TimeoutExpired, json.JSONDecodeError):
        entries = []
    candidates = [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
    candidates.sort(key=lambda e: e.get("path") != path)   # the exact path first
    for entry in candidates:
        parts = [entry.get(k) for k in ("implementation", "version", "os", "arch", "libc")]
        if all(isinstance(p, str) and p for p in parts):
            return "-".join([*parts, path])  # type: ignore[list-item]
    # Older uv without JSON listing: the path alone still pins the interpreter.
    return f"python-unknown-{platform.system().lower()}-{platform.machine()}-{path}"


def _unresolved_identity(spec: EnvSpec) -> str:
    """Identity when no installed interpreter matches: uv sync will pick (or download) one.

    It still has to be deterministic, so it is built from the request itself.
    """
    pin = _python_version_file(spec)
    request = pin.read_text(errors="replace").strip() if pin.is_file() else "requires-python"
    return f"unresolved-{request}-{platform.system().lower()}-{platform.machine()}"


def python_identity(spec: EnvSpec, uv: str = "uv") -> str:
    """Which interpreter uv would build this project's environment with, as
    ``<implementation>-<version>-<platform>-<path>`` (e.g.
    ``cpython-3.11.7-linux-x86_64-gnu-/usr/bin/python3.11``).

    Part of the cache key: the same lock on another Python is another environment, and
    the path matters because a virtualenv links to its base interpreter.
    """
    return find_interpreter(spec, uv).identity


# --- the key ------------------------------------------------------------------------------

def _feed(h: Any, label: bytes, data: bytes) -> None:
    """Length-prefixed, so no two different inputs can produce the same byte stream."""
    h.update(label + b"\0" + str(len(data)).encode() + b"\0" + data)


def _feed_file(h: Any, label: bytes, path: Path) -> None:
    h.update(label + b"\0" + str(path.stat().st_size).encode() + b"\0")
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)


def env_key(spec: EnvSpec, python: str) -> str:
    """Cache key: sha256 over pyproject, uv.lock, each wheel (name + bytes) and the
    interpreter identity.  Wheels are taken in name order: installing a set does not
    depend on how the student listed it."""
    h = hashlib.sha256(KEY_FORMAT)
    _feed_file(h, b"pyproject", spec.pyproject)
    _feed_file(h, b"uv.lock", spec.uv_lock)
    for wheel in sorted(spec.wheels, key=lambda p: p.name):
        _feed(h, b"wheel-name", wheel.name.encode())
        _feed_file(h, b"wheel", wheel)
    _feed(h, b"python", python.encode())
    return h.hexdigest()[:KEY_LENGTH]

