"""task_config.toml -> a validated ``TaskConfig``.

Everything a student writes is untrusted: every field is type- and range-checked, unknown
keys are refused with a did-you-mean, and every path must stay inside the upload directory.
Errors are collected (not first-only) so one run shows everything to fix, each as one line
``<file>: <field>: <what is wrong>``.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any, NamedTuple

from ailabber.model.suggest import closest
from ailabber.workstation.ignore import IgnoreRules

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


class Resources(NamedTuple):
    gpus: int = 0
    cpus: int = 1
    memory: str = "8G"          # as written (normalised upper-case unit), e.g. "32G"
    memory_mb: int = 8192       # the same in MiB, for schedulers
    time_limit: str = "1:00:00"  # as written
    time_limit_s: int = 3600     # the same in seconds


class Environment(NamedTuple):
    pyproject_toml: str | None = None   # relative to the upload dir, normalised ("pyproject.toml")
    uv_lock: str | None = None
    extra_wheels: tuple[str, ...] = ()


class Files(NamedTuple):
    upload: str = "."                   # relative to the config file's directory
    ignore: tuple[str, ...] = ()        # gitignore-syntax patterns, relative to the upload dir
    workdir: str = "."                  # relative to the upload dir, normalised


class Run(NamedTuple):
    commands: tuple[str, ...] = ()
    logs: tuple[str, ...] = ()          # relative to workdir, normalised
    results: tuple[str, ...] = ()       # relative to workdir, normalised


_DEFAULT_RESOURCES, _DEFAULT_FILES = Resources(), Files()


class TaskConfig(NamedTuple):
    resources: Resources
    environment: Environment
    files: Files
    run: Run
    source: Path = Path("task_config.toml")   # the config file as given
    upload_root: Path = Path(".")             # absolute, resolved upload dir


class ConfigError(ValueError):
    """One or more problems; ``str()`` is one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


# --------------------------------------------------------------------------- messages


def _q(value: str, limit: int = 60) -> str:
    """Quote a student's string for a message: shortened and escaped so it stays one line."""
    shown = value if len(value) <= limit else value[:limit] + "..."
    if shown.isprintable() and "'" not in shown and "\\" not in shown:
        return f"'{shown}'"
    return json.dumps(shown)  # ASCII-escapes newlines, line separators and other controls


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"float {value}"
    if isinstance(value, str):
        return f"string {_q(value)}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]{1,60}", key) else _q(key)


class _Problems:
    """Collects every problem so a single run shows the student all there is to fix."""

    def __init__(self, source: Path) -> None:
        name = source.name or str(source)
        self.name = name if name.isprintable() else _q(name)
        self.lines: list[str] = []

    def add(self, field_name: str, message: str) -> None:
        self.lines.append(f"{self.name}: {field_name}: {message}")


def _unknown(key: str, table: str | None) -> str:
    known = SCHEMA[table] if table else tuple(SCHEMA)
    message = f"unknown key {_q(key)}"
    close = closest(key, known, cutoff=0.7)
    if close:
        return f"{message} (did you mean {_q(close)}?)"
    for other, keys in SCHEMA.items():
        if other != table and key in keys:
            return f"{message} (it belongs in [{other}])"
    return f"{message} (known keys: {', '.join(known)})"


# --------------------------------------------------------------------------- scalars


def _int(p: _Problems, tbl: dict[str, Any], section: str, key: str,
         lo: int, hi: int, default: int) -> int:
    if key not in tbl:
        return default
    value, name = tbl[key], f"{section}.{key}"
    if type(value) is not int:  # bool is an int subclass, and 1.5 GPUs means nothing
        p.add(name, f"must be an integer between {lo} and {hi}, got {_describe(value)}")
        return default
    if value < lo:
        p.add(name, f"must be an integer >= {lo}, got {value}")
    elif value > hi:
        p.add(name, f"must be an integer <= {hi}, got {value}")
    return value


_MEMORY_RE = re.compile(r"([0-9]{1,15})([KkMmGgTt]?)")
_KIB = {"K": 1, "M": 1024, "G": 1024**2, "T": 1024**3}


def _memory(p: _Problems, tbl: dict[str, Any]) -> tuple[str, int]:
    default = (_DEFAULT_RESOURCES.memory, _DEFAULT_RESOURCES.memory_mb)
    if "memory" not in tbl:
        return default
    value, name = tbl["memory"], "resources.memory"
    if type(value) is int:  # a bare number means MiB, as in Slurm's --mem
        number, unit, shown = value, "M", str(value)
    elif isinstance(value, str):
        match = _MEMORY_RE.fullmatch(value)
        if match is None:
            p.add(name, 'must be a size like "512M", "32G" or "1T" (unit K, M, G or T; '
                        f"a bare number means MiB), got {_q(value)}")
            return default
        number, unit, shown = int(match[1]), (match[2] or "M").upper(), _q(value)
    else:
        p.add(name, f'must be a size string like "32G", got {_describe(value)}')
        return default
    kib = number * _KIB[unit]
    if kib <= 0:
        p.add(name, f"must be greater than 0, got {shown}")
    elif kib > MAX_MEMORY_MB * 1024:
        p.add(name, f"must be at most 64T, got {shown}")
    else:
        return f"{number}{unit}", -(-kib // 1024)
    return default


_TIME_RE = re.compile(r"(?:([0-9]{1,9})-)?([0-9]{1,9})(?::([0-9]{1,9}))?(?::([0-9]{1,9}))?")
_TIME_FORMS = ('must be a time like "30", "4:00:00" or "2-12:00:00" '
               "(MM, MM:SS, H:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)")


def _slurm_seconds(text: str) -> int | str:
    """Seconds for a Slurm ``--time`` value, or the reason it is not one.

    Only the leading field is unbounded ("90" or "90:00" minutes, "36:00:00" hours), as in
    Slurm; later fields must stay below their wrap-around so a typo is not silently rescaled.
    """
    match = _TIME_RE.fullmatch(text)
    if match is None:
        return _TIME_FORMS
    days, *rest = match.groups()
    nums = [int(x) for x in rest if x is not None]
    if days is not None:
        hours, minutes, seconds = (nums + [0, 0])[:3]
        if hours >= 24:
            return "hours must be below 24 after a day part"
        lead = int(days) * 86400 + hours * 3600
    elif len(nums) == 3:
        lead, minutes, seconds = nums[0] * 3600, nums[1], nums[2]
    else:
        lead, minutes, seconds = nums[0] * 60, 0, (nums + [0])[1]
    if minutes >= 60:
        return "minutes must be below 60 when not the first field"
    if seconds >= 60:
        return "seconds must be below 60"
    return lead + minutes * 60 + seconds


def _time_limit(p: _Problems, tbl: dict[str, Any]) -> tuple[str, int]:
    default = (_DEFAULT_RESOURCES.time_limit, _DEFAULT_RESOURCES.time_limit_s)
    if "time_limit" not in tbl:
        return default
    value, name = tbl["time_limit"], "resources.time_limit"
    if type(value) is int:  # whole minutes, as Slurm reads a bare number
        text, seconds, shown = str(value), value * 60, str(value)
    elif isinstance(value, str):
        shown, text = _q(value), value
        got = _slurm_seconds(value)
        if isinstance(got, str):
            p.add(name, f"{got}, got {shown}")
            return default
        seconds = got
    else:
        p.add(name, f'{_TIME_FORMS}, got {_describe(value)}')
        return default
    if seconds <= 0:
        p.add(name, f"must be greater than 0, got {shown}")
    elif seconds > MAX_TIME_S:
        p.add(name, f"must be at most 365 days, got {shown}")
    else:
        return text, seconds
    return default


# --------------------------------------------------------------------------- lists, paths


def _list(p: _Problems, name: str, value: Any, limit: int = MAX_LIST) -> list[Any]:
    if not isinstance(value, list):
        hint = f' (write {name.split(".")[-1]} = ["..."])' if isinstance(value, str) else ""
        p.add(name, f"must be an array, got {_describe(value)}{hint}")
        return []
    if len(value) > limit:
        p.add(name, f"has {len(value)} entries; at most {limit} are allowed")
        return []
    return value


def _rel_path(p: _Problems, name: str, value: Any) -> str | None:
    """Syntax only: a relative path that cannot climb out.  Returns the normalised form."""
    if not isinstance(value, str):
        p.add(name, f"must be a relative path (a string), got {_describe(value)}")
        return None
    problem = None
    if not value:
        problem = "must not be empty"
    elif len(value) > MAX_STRING:
        problem = f"is longer than {MAX_STRING} characters"
    elif "\0" in value:
        problem = "must not contain NUL characters"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        problem = f"must not contain control characters, got {_q(value)}"
    elif value.startswith("/"):
        problem = f"must be a relative path, got absolute path {_q(value)}"
    parts = [part for part in value.split("/") if part not in ("", ".")]
    if problem is None and ".." in parts:
        problem = f"must not contain '..', got {_q(value)}"
    if problem is not None:
        p.add(name, problem)
        return None
    return "/".join(parts) or "."


def _join(base: str, rel: str) -> str:
    return "/".join(x for x in (base, rel) if x != ".") or "."


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


def _stays_inside(p: _Problems, name: str, raw: str, norm: str, root: Path) -> bool:
    bad = _symlink_escape(root, norm)
    if bad is not None:
        p.add(name, f"{_q(raw)} leads outside the upload directory through the symlink {_q(bad)}")
        return False
    return True


def _excluded(rules: IgnoreRules, raw: str, norm: str, is_dir: bool) -> str | None:
    if norm == "." or not rules.is_ignored(norm, is_dir):
        return None
    if rules.is_builtin(norm, is_dir):
        return f"{_q(raw)} is excluded by the built-in ignore rules (.git/, .venv/, __pycache__/, ...)"
    return f"{_q(raw)} is excluded by files.ignore / .ailabberignore"


def _upload_file(p: _Problems, name: str, raw: str, norm: str,
                 root: Path | None, rules: IgnoreRules | None) -> None:
    if root is None or not _stays_inside(p, name, raw, norm, root):
        return
    path = root / norm
    if not path.exists():
        p.add(name, f"{_q(raw)} does not exist in the upload directory")
    elif not path.is_file():
        p.add(name, f"{_q(raw)} is not a regular file")
    elif rules is not None and (why := _excluded(rules, raw, norm, False)):
        p.add(name, why)


# --------------------------------------------------------------------------- tables


def _tables(p: _Problems, doc: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """The four tables ({} when absent, None when given as something else)."""
    out: dict[str, dict[str, Any] | None] = {name: {} for name in SCHEMA}
    for key, value in doc.items():
        if key not in SCHEMA:
            p.add(_key(key), _unknown(key, None))
            continue
        if not isinstance(value, dict):
            p.add(key, f"must be a table ([{key}]), got {_describe(value)}")
            out[key] = None
            continue
        for sub in value:
            if sub not in SCHEMA[key]:
                p.add(f"{key}.{_key(sub)}", _unknown(sub, key))
        out[key] = value
    return out


def _resources(p: _Problems, tbl: dict[str, Any]) -> Resources:
    gpus = _int(p, tbl, "resources", "gpus", 0, 64, _DEFAULT_RESOURCES.gpus)
    cpus = _int(p, tbl, "resources", "cpus", 1, 1024, _DEFAULT_RESOURCES.cpus)
    memory, memory_mb = _memory(p, tbl)
    time_limit, time_limit_s = _time_limit(p, tbl)
    return Resources(
        gpus=gpus, cpus=cpus, memory=memory, memory_mb=memory_mb,
        time_limit=time_limit, time_limit_s=time_limit_s,
    )


def _upload_root(p: _Problems, tbl: dict[str, Any], source: Path) -> tuple[str, Path | None]:
    """Normalised ``files.upload`` and the resolved directory to check files against."""
    raw = tbl.get("upload", _DEFAULT_FILES.upload)
    norm = _rel_path(p, "files.upload", raw)
    if norm is None:
        return ".", None
    base = os.path.realpath(source.absolute().parent)
    root = Path(os.path.realpath(os.path.join(base, norm)))
    if not _inside(str(root), base):
        p.add("files.upload", f"{_q(raw)} leads outside the directory of {p.name} through a symlink")
    elif not root.exists():
        p.add("files.upload", f"{_q(raw)} does not exist next to {p.name}")
    elif not root.is_dir():
        p.add("files.upload", f"{_q(raw)} is not a directory")
    else:
        return norm, root
    return norm, None


def _patterns(p: _Problems, tbl: dict[str, Any]) -> tuple[str, ...]:
    out: list[str] = []
    for i, item in enumerate(_list(p, "files.ignore", tbl.get("ignore", []))):
        name = f"files.ignore[{i}]"
        if not isinstance(item, str) or not item.strip():
            got = "" if isinstance(item, str) else f", got {_describe(item)}"
            p.add(name, f"must be a non-empty string{got}")
        elif len(item) > MAX_STRING:
            p.add(name, f"is longer than {MAX_STRING} characters")
        elif "\0" in item or "\n" in item or "\r" in item:
            p.add(name, f"must be a single line without NUL characters, got {_q(item)}")
        else:
            out.append(item)
    return tuple(out)


def _workdir(p: _Problems, tbl: dict[str, Any], root: Path | None,
             rules: IgnoreRules | None) -> tuple[str, bool]:
    """Normalised ``files.workdir`` and whether it can be used to place logs/results."""
    raw = tbl.get("workdir", _DEFAULT_FILES.workdir)
    norm = _rel_path(p, "files.workdir", raw)
    if norm is None:
        return ".", False
    if root is None:
        return norm, False
    if not _stays_inside(p, "files.workdir", raw, norm, root):
        return norm, False
    path = root / norm
    if not path.exists():
        p.add("files.workdir", f"{_q(raw)} does not exist in the upload directory")
    elif not path.is_dir():
        p.add("files.workdir", f"{_q(raw)} is not a directory")
    elif rules is not None and (why := _excluded(rules, raw, norm, True)):
        p.add("files.workdir", why)
    else:
        return norm, True
    return norm, False


def _environment(p: _Problems, tbl: dict[str, Any], root: Path | None,
                 rules: IgnoreRules | None) -> Environment:
    found: dict[str, str | None] = {}
    for key in ("pyproject_toml", "uv_lock"):
        name = f"environment.{key}"
        found[key] = None
        if key in tbl and (norm := _rel_path(p, name, tbl[key])) is not None:
            found[key] = norm
            _upload_file(p, name, tbl[key], norm, root, rules)
    if "pyproject_toml" in tbl and "uv_lock" not in tbl:
        p.add("environment.uv_lock", "is required when environment.pyproject_toml is set")
    if "uv_lock" in tbl and "pyproject_toml" not in tbl:
        p.add("environment.pyproject_toml", "is required when environment.uv_lock is set")
    wheels: list[str] = []
    raw_wheels = _list(p, "environment.extra_wheels", tbl.get("extra_wheels", []))
    for i, raw in enumerate(raw_wheels):
        name = f"environment.extra_wheels[{i}]"
        norm = _rel_path(p, name, raw)
        if norm is None:
            continue
        if not norm.endswith(".whl") or norm.rpartition("/")[2] == ".whl":
            p.add(name, f"must be a wheel file ending in .whl, got {_q(raw)}")
            continue
        wheels.append(norm)
        _upload_file(p, name, raw, norm, root, rules)
    if raw_wheels and not ("pyproject_toml" in tbl and "uv_lock" in tbl):
        p.add("environment.extra_wheels", "needs environment.pyproject_toml and "
                                          "environment.uv_lock (wheels go into that environment)")
    return Environment(found["pyproject_toml"], found["uv_lock"], tuple(wheels))


def _commands(p: _Problems, tbl: dict[str, Any] | None) -> tuple[str, ...]:
    if tbl is None:
        return ()
    if "commands" not in tbl:
        p.add("run.commands", 'is required: the shell commands to run, '
                              'e.g. commands = ["python train.py"]')
        return ()
    value = tbl["commands"]
    if isinstance(value, list) and not value:
        p.add("run.commands", "must contain at least one command")
    out: list[str] = []
    for i, cmd in enumerate(_list(p, "run.commands", value, MAX_COMMANDS)):
        name = f"run.commands[{i}]"
        if not isinstance(cmd, str) or not cmd.strip():
            got = "" if isinstance(cmd, str) else f", got {_describe(cmd)}"
            p.add(name, f"must be a non-empty string{got}")
        elif len(cmd) > MAX_COMMAND:
            p.add(name, f"is longer than {MAX_COMMAND} characters")
        elif "\0" in cmd:
            p.add(name, "must not contain NUL characters")
        else:
            out.append(cmd)
    return tuple(out)


def _outputs(p: _Problems, tbl: dict[str, Any], key: str, workdir: str,
             root: Path | None) -> tuple[str, ...]:
    """``run.logs`` / ``run.results``: may not exist yet, but may not point out either."""
    out: list[str] = []
    for i, raw in enumerate(_list(p, f"run.{key}", tbl.get(key, []))):
        name = f"run.{key}[{i}]"
        norm = _rel_path(p, name, raw)
        if norm is None:
            continue
        if root is None or _stays_inside(p, name, raw, _join(workdir, norm), root):
            out.append(norm)
    return tuple(out)


# --------------------------------------------------------------------------- entry points


def parse_task_config(text: str, source: Path, *, check_files: bool = True) -> TaskConfig:
    """Validate the TOML ``text`` of ``source``.

    The upload directory is ``files.upload`` next to ``source`` and must exist, and every
    file the config names is checked in it.  ``check_files=False`` checks no file at all
    (every path is still checked for syntax): remoted, which may be root, parses the
    bytes it read through a handle and never resolves a path in the student's upload; the
    job wrapper, running as the student, finds missing files.  Raises ``ConfigError``
    listing every problem.
    """
    p = _Problems(source)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        p.add("syntax", " ".join(str(exc).split()))
        raise ConfigError(p.lines) from None
    except RecursionError:
        p.add("syntax", "arrays or tables are nested too deeply")
        raise ConfigError(p.lines) from None
    tables = _tables(p, doc)
    resources = _resources(p, tables["resources"] or {})
    files_tbl = tables["files"] or {}
    if check_files:
        upload, root = _upload_root(p, files_tbl, source)
    else:
        upload, root = _rel_path(p, "files.upload", files_tbl.get("upload", _DEFAULT_FILES.upload)) or ".", None
    ignore = _patterns(p, files_tbl)
    rules: IgnoreRules | None = None
    if root is not None:
        try:
            rules = IgnoreRules.from_upload_root(root, ignore)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "it is not valid UTF-8"
            p.add("files.ignore", f"cannot read .ailabberignore: {reason}")
    environment = _environment(p, tables["environment"] or {}, root, rules)
    workdir, workdir_ok = _workdir(p, files_tbl, root, rules)
    run_tbl = tables["run"]
    commands = _commands(p, run_tbl)
    out_root = root if workdir_ok else None
    logs = _outputs(p, run_tbl or {}, "logs", workdir, out_root)
    results = _outputs(p, run_tbl or {}, "results", workdir, out_root)
    if p.lines:
        raise ConfigError(p.lines)
    assert root is not None or not check_files
    return TaskConfig(
        resources=resources,
        environment=environment,
        files=Files(upload=upload, ignore=ignore, workdir=workdir),
        run=Run(commands=commands, logs=logs, results=results),
        source=source,
        upload_root=root if root is not None else Path("."),
    )


def load_task_config(path: Path) -> TaskConfig:
    """Read and validate a task_config.toml; see ``parse_task_config``."""
    return load_task_config_bytes(path)[0]


def load_task_config_bytes(path: Path) -> tuple[TaskConfig, bytes]:
    """The config and the very bytes it was validated from (which ``submit`` stores: the
    file is read once)."""
    path = Path(path)
    data = read_config_bytes(path)
    return parse_task_config(decode_config(data, path), path), data


def read_config_bytes(path: Path) -> bytes:
    """The bytes of a config file: a regular file of at most 1 MiB, else ConfigError."""
    p = _Problems(path)
    data = b""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            p.add("file", "is a directory, not a TOML file")
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
        p.add("file", "does not exist")
    except OSError as exc:
        p.add("file", f"cannot be read: {exc.strerror or exc}")
    if p.lines:
        raise ConfigError(p.lines)
    return data


def decode_config(data: bytes, source: Path) -> str:
    """The text of a config file's bytes (a UTF-8 byte order mark allowed)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{_Problems(source).name}: file: is not valid UTF-8 "
                           f"(bad byte at offset {exc.start})"]) from None


def parse_frozen_config(data: bytes, source: Path) -> TaskConfig:
    """The cluster side's one reading of an accepted task's config: the bytes remoted
    read once through a directory handle, validated without touching any file.  These
    bytes, and nothing read later, become the task's job spec."""
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{_Problems(source).name}: file: is larger than 1 MiB"])
    return parse_task_config(decode_config(data, source), source, check_files=False)


TEMPLATE: str = '''\
# task_config.toml: what to run on the cluster and what it needs.
# Only run.commands is required; every other key shows its default.
# Paths are relative (no "..", not absolute) and must stay inside the upload directory.

[resources]
gpus = 0                  # GPUs to reserve (0-64)
cpus = 1                  # CPU cores (1-1024)
memory = "8G"             # RAM with unit K, M, G or T; a bare number means MiB (max 64T)
time_limit = "1:00:00"    # MM, MM:SS, H:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (max 365 days)

[environment]
# Give both files to install your locked dependencies with uv (default: none).
# pyproject_toml = "./pyproject.toml"   # relative to the upload directory
# uv_lock = "./uv.lock"                 # required together with pyproject_toml
# extra_wheels = ["./dist/my_op-0.1.0-cp310-linux_x86_64.whl"]   # extra wheels (default [])

[files]
upload = "."              # directory to upload, relative to this file
ignore = []               # gitignore-style patterns to leave out (also: .ailabberignore)
workdir = "."             # where the commands run, relative to the upload directory

[run]
commands = [              # REQUIRED: shell commands, run in order in workdir
    "python train.py",
]
logs = []                 # log files/directories to bring back, relative to workdir
results = []              # result files/directories to bring back, relative to workdir
'''
