"""Reproduce a task's Python environment with ``uv sync --locked``, once per distinct input.

Students pin their environment with ``pyproject.toml`` + ``uv.lock`` (plus, rarely, a few
wheels of their own).  Building a GPU environment can take minutes and gigabytes, and a
class submits the same lock file dozens of times, so environments are cached under a key
derived from everything that determines their content (``remoted.envkey``; its ``EnvSpec``,
``EnvBuildError`` and ``UV_CACHE`` are imported from here, with ``ensure_env``):

* the bytes of ``pyproject.toml`` and ``uv.lock``,
* the name and bytes of every extra wheel,
* the interpreter uv picks for the project (implementation, version, platform and path).

Layout under ``cache_root``, one directory per user (``<env_cache>/<user>``), owned by
that user and mode 0700 (``private_dir``): the copies of ``pyproject.toml`` and ``uv.lock``
may name private package indexes with their passwords, and the wheels and environments are
the student's own, so no other account may list or read anything below it::

    <key>.lock          flock taken while building; kept forever (deleting it would let a
                        second builder lock a fresh inode while the first still holds the old)
    <key>/pyproject.toml, uv.lock[, .python-version]   private copy: the uv project dir
    <key>/wheels/       copies of the extra wheels, original file names kept
    <key>/venv/         the environment
    <key>/ready.json    written last, atomically: its presence is the commit
    interpreters.json   what uv said about each interpreter path, kept while its file is
                        unchanged (a cache of the slower half of the key's interpreter part)
    uv-cache/           uv's own cache (``UV_CACHE_DIR``) for these builds: downloaded and
                        built wheels are project content, so it is as private as the rest

A key dir without ``ready.json`` is a build that died half-way; the next builder removes it.
Several jobs (processes, possibly on several hosts sharing the filesystem) may ask for the
same key at once: the lock makes exactly one of them build while the others wait, and once
``ready.json`` exists nobody takes the lock any more.

The environment deliberately excludes the student's own project (``--no-install-project``):
their code runs from the task's working directory, so editing it must not change the key,
and a project without a build backend must work as well as one with.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
import subprocess
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock, Timeout

from ailabber.model.task import now_iso
from ailabber.storage.fsutil import atomic_write_json, fsync_tree, read_json_or_none
from remoted.envkey import (
    PROBE_TIMEOUT_S,
    UV_CACHE,
    EnvBuildError,
    EnvSpec,
    Interpreter,
    copy_project,
    env_key,
    find_interpreter,
    uv_env,
    which_uv,
)


class LogStream(Protocol):
    """Where the build says what it does (the task's setup.log, capped with its logs)."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


#: How long a job waits for another job building the same environment.  Large GPU stacks
#: (torch + CUDA wheels) over a slow cluster link can take tens of minutes.
LOCK_TIMEOUT_S = 3600.0
LOCK_POLL_S = 0.5

#: Lines of uv output kept in memory to summarise a failure.
_TAIL_LINES = 200


@dataclass(frozen=True)
class EnvResult:
    venv: Path        # the ready virtualenv (has bin/python)
    key: str
    built: bool       # True if this call built it, False if reused
    seconds: float


# --- the per-user cache directory ---------------------------------------------------------

def private_dir(path: Path, uid: int | None = None, gid: int | None = None) -> None:
    """Make ``path`` a directory only its user can enter: created 0700 if missing, owned by
    ``uid``/``gid`` (given by remoted, as root) or by the caller, and tightened to 0700 if
    it is group- or world-accessible, as earlier versions left every user's cache.

    remoted calls it before a job starts and the job again before it uses the cache, so
    an old cache is closed at its first use either way.  The directory is changed through
    a handle opened without following symlinks.  One that belongs to another account is
    refused, never taken over: whatever that account put inside (a ``venv/bin/python`` of
    its own, say) would stay its.  Only a root-owned one is given away, by root.
    """
    as_root = os.geteuid() == 0
    owner = uid if as_root and uid is not None else os.geteuid()
    path.parent.mkdir(parents=True, exist_ok=True)   # the shared levels hold only user names
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if st.st_uid != owner and not (as_root and st.st_uid == 0):
            raise PermissionError(errno.EPERM, f"it belongs to uid {st.st_uid}, not to uid {owner} "
                                               "(an admin must remove it)", str(path))
        if as_root and (st.st_uid, st.st_gid) != (owner, st.st_gid if gid is None else gid):
            os.fchown(fd, owner, -1 if gid is None else gid)
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


# --- building -----------------------------------------------------------------------------

def _say(log: LogStream, message: str) -> None:
    log.write(f"[ailabber] {message}\n")
    log.flush()


def _summary(lines: deque[str]) -> str:
    """One line out of uv's report: its ``error:`` line plus the innermost cause."""
    text = [ln.strip() for ln in lines if ln.strip()]
    if not text:
        return "no output"
    errors = [ln for ln in text if ln.startswith("error:")]
    if not errors:
        return text[-1]
    head = errors[0].removeprefix("error:").strip()
    causes = [ln.split(":", 1)[1].strip() for ln in text
              if ln.startswith(("cause:", "Caused by:")) and ":" in ln]
    return f"{head}: {causes[-1]}" if causes and causes[-1] else head


def _run_uv(what: str, argv: list[str], log: LogStream, *, cwd: Path, env: dict[str, str]) -> None:
    """Run uv, copying its output line by line to ``log`` (which may be any text stream,
    not only a real file), and raise a one-line ``EnvBuildError`` on failure."""
    _say(log, "$ " + " ".join(argv))
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1,
        )
    except OSError as exc:
        raise EnvBuildError(f"{what} could not start: {exc.strerror or exc}") from exc
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    assert proc.stdout is not None
    with proc.stdout:
        for line in proc.stdout:
            log.write(line if line.endswith("\n") else line + "\n")
            log.flush()
            tail.append(line)
    code = proc.wait()
    if code != 0:
        raise EnvBuildError(f"{what} failed (exit {code}): {_summary(tail)}")


def _uv_version(uv_path: str) -> str:
    try:
        out = subprocess.run([uv_path, "--version"], stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, errors="replace", timeout=PROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return "unknown"
    return out.stdout.strip() or "unknown"


def _discard(path: Path) -> None:
    """Remove a key dir: rename it aside first so the name is free at once even if deleting
    takes long or leaves busy files behind (NFS ``.nfsXXXX``)."""
    if not path.exists():
        return
    trash = path.with_name(f"{path.name}.trash-{os.getpid()}-{secrets.token_hex(3)}")
    try:
        os.rename(path, trash)
    except OSError:
        trash = path
    shutil.rmtree(trash, ignore_errors=True)


def _read_ready(keydir: Path, key: str) -> dict[str, Any] | None:
    ready = read_json_or_none(keydir / "ready.json")
    if isinstance(ready, dict) and ready.get("key") == key and (keydir / "venv" / "bin" / "python").exists():
        return ready
    return None


def _build(spec: EnvSpec, keydir: Path, interp: Interpreter, uv_path: str, log: LogStream) -> None:
    venv = keydir / "venv"
    cache_root = keydir.parent
    keydir.mkdir()
    copy_project(spec, keydir)
    wheels: list[Path] = []
    if spec.wheels:
        (keydir / "wheels").mkdir()
        for wheel in spec.wheels:
            dest = keydir / "wheels" / wheel.name
            if dest.exists():
                raise EnvBuildError(f"two extra wheels have the same file name {wheel.name!r}")
            shutil.copyfile(wheel, dest)
            wheels.append(dest)

    # --locked, not --frozen (uv allows only one of them): a lock that no longer matches
    # pyproject.toml fails the build with uv's own words, instead of an environment
    # without the packages the commands then import (ModuleNotFoundError, much later).
    sync = [uv_path, "sync", "--locked", "--no-install-project", "--project", str(keydir)]
    if interp.path is not None:
        # The interpreter that went into the key, not whatever discovery finds next time.
        sync += ["--python", interp.path]
    _run_uv("uv sync --locked", sync, log, cwd=keydir.parent, env=uv_env(cache_root, venv))
    if wheels:
        install = [uv_path, "pip", "install", "--python", str(venv / "bin" / "python"),
                   *map(str, wheels)]
        _run_uv("uv pip install of the extra wheels", install, log, cwd=keydir.parent,
                env=uv_env(cache_root))
    if not (venv / "bin" / "python").exists():
        raise EnvBuildError("uv finished but the environment has no bin/python")
    # The commit marker must not outlive the files it vouches for after a power cut.
    fsync_tree(venv)


def ensure_env(spec: EnvSpec, cache_root: Path, log: LogStream, *, uv: str = "uv") -> EnvResult:
    """Return a ready virtualenv for ``spec``, building it unless an identical one exists.

    Progress lines (``[ailabber] ...``) and uv's full output go to ``log``.  Raises
    ``EnvBuildError`` with one plain line when uv is missing or fails; a failed build
    leaves nothing behind, so a later task retries from scratch.
    """
    started = time.monotonic()
    uv_path = which_uv(uv)
    for name, path in (("pyproject.toml", spec.pyproject), ("uv.lock", spec.uv_lock),
                       *((w.name, w) for w in spec.wheels)):
        if not path.is_file():
            raise EnvBuildError(f"{name} not found at {path}")
    cache_root = cache_root.absolute()
    try:
        private_dir(cache_root)
    except OSError as exc:
        raise EnvBuildError(f"cannot use the environment cache {cache_root}: "
                            f"{exc.strerror or exc}") from exc
    interp = find_interpreter(spec, uv_path, cache_root)
    key = env_key(spec, interp.identity)
    keydir = cache_root / key
    venv = keydir / "venv"

    if _read_ready(keydir, key) is not None:
        _say(log, f"reusing env {key} (python {interp.identity})")
        return EnvResult(venv, key, False, time.monotonic() - started)

    lock = FileLock(str(cache_root / f"{key}.lock"))
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            _say(log, "waiting for another job building the same environment")
            lock.acquire(timeout=LOCK_TIMEOUT_S, poll_interval=LOCK_POLL_S)
    except Timeout:
        raise EnvBuildError(
            f"gave up after {LOCK_TIMEOUT_S / 60:.0f} min waiting for another job "
            f"building environment {key}") from None
    except OSError as exc:
        raise EnvBuildError(f"cannot use the environment cache {cache_root}: "
                            f"{exc.strerror or exc}") from exc
    try:
        if _read_ready(keydir, key) is not None:
            _say(log, f"reusing env {key} built meanwhile by another job (python {interp.identity})")
            return EnvResult(venv, key, False, time.monotonic() - started)
        if keydir.exists():
            _say(log, f"removing unfinished build of env {key}")
            _discard(keydir)
        if interp.path is None:
            _say(log, f"uv found no installed Python for this project ({interp.problem}); "
                      "letting uv sync choose one")
        _say(log, f"building env {key} with python {interp.identity}")
        build_started = time.monotonic()
        try:
            _build(spec, keydir, interp, uv_path, log)
        except OSError as exc:
            _discard(keydir)
            raise EnvBuildError(f"could not write the environment under {cache_root}: "
                                f"{exc.strerror or exc}") from exc
        except BaseException:
            _discard(keydir)
            raise
        build_s = time.monotonic() - build_started
        atomic_write_json(keydir / "ready.json", {
            "key": key,
            "python": interp.identity,
            "uv": _uv_version(uv_path),
            "build_seconds": round(build_s, 3),
            "created": now_iso(),
            "wheels": sorted(w.name for w in spec.wheels),
        })
        _say(log, f"env {key} ready, built in {build_s:.1f} s")
        return EnvResult(venv, key, True, time.monotonic() - started)
    finally:
        lock.release()
