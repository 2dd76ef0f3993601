"""The student's project on the workstation: task_config.toml read once, and the files it
names checked on disk.

The model validates a config's bytes without touching a file, which is all remoted, possibly
root, may do with an upload.  Here, running as the student before a submit, the upload
directory is resolved: ``files.upload`` must exist next to the config, every file named must
be there and not ignored, and no path may lead out through a symlink, so a mistake shows at
submit rather than on the cluster.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ailabber.model.config import MAX_CONFIG_BYTES, ConfigError, TaskConfig, decode_config, parse_task_config
from ailabber.model.config_fields import Problems, quote
from ailabber.workstation.ignore import BUILTIN, CONFIG, IGNORE_FILE, IgnoreRules, pattern_for


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _symlink_escape(root: Path, norm: str) -> str | None:
    """The first existing prefix of ``norm`` that is a symlink leading out of ``root``."""
    if norm == ".":
        return None
    root_s, cur = str(root), str(root)
    parts = norm.split("/")
    for i, part in enumerate(parts):
        cur = os.path.join(cur, part)
        try:
            is_link = stat.S_ISLNK(os.lstat(cur).st_mode)
        except OSError:
            return None  # not there (yet): nothing to follow
        if is_link and not _inside(os.path.realpath(cur), root_s):
            return "/".join(parts[: i + 1])
    return None


def _excluded(rules: IgnoreRules, raw: str, norm: str, is_dir: bool) -> str | None:
    why = None if norm == "." else rules.excluded_by(norm, is_dir)
    if why is None:
        return None
    if why.rule.source == BUILTIN:
        return f"{quote(raw)} is excluded by the built-in ignore rules (.git/, .venv/, __pycache__/, ...)"
    if why.rule.source in (CONFIG, IGNORE_FILE):
        fix = f"remove that line from {CONFIG if why.rule.source == CONFIG else IGNORE_FILE}"
    else:
        fix = f"to upload it anyway, add {quote('!' + pattern_for(why.path, why.is_dir))} to files.ignore"
    return f"{quote(raw)} is excluded by {why.rule.where()} ({quote(why.rule.text)}); {fix}"


class UploadDir:
    """``files.upload`` resolved on disk: the ``UploadTree`` a config's paths are checked in."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.rules: IgnoreRules | None = None  # None until read, or when unreadable

    def use_ignore(self, p: Problems, patterns: tuple[str, ...]) -> None:
        try:
            self.rules = IgnoreRules.from_upload_root(self.root, patterns)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "it is not valid UTF-8"
            p.add("files.ignore", f"cannot read .ailabberignore: {reason}")

    def stays_inside(self, p: Problems, name: str, raw: str, norm: str) -> bool:
        bad = _symlink_escape(self.root, norm)
        if bad is not None:
            p.add(name, f"{quote(raw)} leads outside the upload directory through the symlink {quote(bad)}")
            return False
        return True

    def check_file(self, p: Problems, name: str, raw: str, norm: str) -> None:
        if not self.stays_inside(p, name, raw, norm):
            return
        path = self.root / norm
        if not path.exists():
            p.add(name, f"{quote(raw)} does not exist in the upload directory")
        elif not path.is_file():
            p.add(name, f"{quote(raw)} is not a regular file")
        elif self.rules is not None and (why := _excluded(self.rules, raw, norm, False)):
            p.add(name, why)

    def check_workdir(self, p: Problems, raw: str, norm: str) -> bool:
        if not self.stays_inside(p, "files.workdir", raw, norm):
            return False
        path = self.root / norm
        if not path.exists():
            p.add("files.workdir", f"{quote(raw)} does not exist in the upload directory")
        elif not path.is_dir():
            p.add("files.workdir", f"{quote(raw)} is not a directory")
        elif self.rules is not None and (why := _excluded(self.rules, raw, norm, True)):
            p.add("files.workdir", why)
        else:
            return True
        return False


def open_upload_dir(source: Path, p: Problems, raw: str, norm: str) -> UploadDir | None:
    """``files.upload`` (normalised ``norm``) next to the config ``source``, resolved, if it is
    a directory that does not lead out of the config's own directory."""
    base = os.path.realpath(source.absolute().parent)
    root = Path(os.path.realpath(os.path.join(base, norm)))
    if not _inside(str(root), base):
        p.add("files.upload", f"{quote(raw)} leads outside the directory of {p.name} through a symlink")
    elif not root.exists():
        p.add("files.upload", f"{quote(raw)} does not exist next to {p.name}")
    elif not root.is_dir():
        p.add("files.upload", f"{quote(raw)} is not a directory")
    else:
        return UploadDir(root)
    return None


def load_task_config(path: Path) -> TaskConfig:
    """Read and validate a task_config.toml, checking every file it names on disk."""
    return load_task_config_bytes(path)[0]


def load_task_config_bytes(path: Path) -> tuple[TaskConfig, bytes]:
    """The config and the very bytes it was validated from (which ``submit`` stores: the
    file is read once)."""
    path = Path(path)
    data = read_config_bytes(path)
    text = decode_config(data, path)
    return parse_task_config(text, path, lambda p, raw, norm: open_upload_dir(path, p, raw, norm)), data


def read_config_bytes(path: Path) -> bytes:
    """The bytes of a config file: a regular file of at most 1 MiB, else ConfigError."""
    p = Problems(path)
    data = b""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            # Named as typed: the last component alone ("sub" of proj/sub) names nothing
            # the user wrote.
            inside = path / "task_config.toml"
            hint = f"; did you mean {inside}?" if inside.is_file() else ""
            p = Problems(path, as_typed=True)
            p.add("file", f"is a directory, not a TOML file{hint}")
        elif not stat.S_ISREG(st.st_mode):
            p.add("file", "is not a regular file")
        elif st.st_size > MAX_CONFIG_BYTES:
            p.add("file", f"is larger than 1 MiB ({st.st_size} bytes)")
        else:
            with open(path, "rb") as fh:
                data = fh.read(MAX_CONFIG_BYTES + 1)
            if len(data) > MAX_CONFIG_BYTES:
                p.add("file", "is larger than 1 MiB")
    except FileNotFoundError:
        p.add("file", f"does not exist; write one with: ailabber init {_init_arg(path)}".rstrip())
    except OSError as exc:
        p.add("file", f"cannot be read: {exc.strerror or exc}")
    if p.lines:
        raise ConfigError(p.lines)
    return data


def check_lock(cfg: TaskConfig, config_path: Path) -> None:
    """Refuse a ``uv.lock`` that no longer matches its ``pyproject.toml`` (ConfigError):
    the cluster builds with ``uv sync --locked``, so such a task could only fail there,
    after its upload and its wait in the queue (``workstation/lockcheck.py``)."""
    env = cfg.environment
    if not (env.pyproject_toml and env.uv_lock):
        return
    from ailabber.workstation.lockcheck import lock_is_stale

    if lock_is_stale(cfg.upload_root / env.pyproject_toml, cfg.upload_root / env.uv_lock):
        p = Problems(config_path)
        p.add("environment.uv_lock", f"{quote(env.uv_lock)} is out of date with {quote(env.pyproject_toml)}; "
                                     "run `uv lock` and submit again")
        raise ConfigError(p.lines)


def _init_arg(path: Path) -> str:
    """What to give ``ailabber init`` to write the missing file: nothing for the default."""
    import shlex  # on this error only: submit's start-up stays as small as it was

    return "" if str(path) == "task_config.toml" else shlex.quote(str(path))
