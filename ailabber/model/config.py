"""task_config.toml -> a validated ``TaskConfig``.

Everything a student writes is untrusted: every field is type- and range-checked, unknown
keys are refused with a did-you-mean, and every path must stay inside the upload directory.
Errors are collected (not first-only) so one run shows everything to fix, each as one line
``<file>: <field>: <what is wrong>``.

Pure: the parse reads no file.  Whether the files a config names exist is asked of an
``UploadTree`` the caller may hand in (the workstation's, ``ailabber.workstation.project``);
remoted, which may be root, parses the frozen bytes of an upload without one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from ailabber.model.config_fields import (
    MAX_STRING,
    Problems,
    array,
    describe,
    field_key,
    integer_field,
    memory_field,
    quote,
    rel_path,
    time_limit_field,
)
from ailabber.model.names import NAME_KEY, name_field
from ailabber.model.suggest import closest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

MAX_CONFIG_BYTES = 1024 * 1024
MAX_COMMAND = 10_000
MAX_COMMANDS = 100

#: Known keys per table, in the order they are documented.
SCHEMA: dict[str, tuple[str, ...]] = {
    "resources": ("gpus", "cpus", "memory", "time_limit"),
    "environment": ("pyproject_toml", "uv_lock", "extra_wheels"),
    "files": ("upload", "ignore", "workdir", "warn", "no_warn"),
    "run": ("commands", "logs", "results"),
}


class Resources(NamedTuple):
    gpus: int = 0
    cpus: int = 1
    memory_mb: int = 8192       # resources.memory in MiB
    time_limit_s: int = 3600    # resources.time_limit in seconds


class Environment(NamedTuple):
    pyproject_toml: str | None = None   # relative to the upload dir, normalised ("pyproject.toml")
    uv_lock: str | None = None
    extra_wheels: tuple[str, ...] = ()


class Files(NamedTuple):
    upload: str = "."                   # relative to the config file's directory
    ignore: tuple[str, ...] = ()        # gitignore-syntax patterns, relative to the upload dir
    workdir: str = "."                  # relative to the upload dir, normalised
    warn: bool = True                   # warn at submit about what looks uploaded by mistake
    no_warn: tuple[str, ...] = ()       # gitignore-syntax patterns of paths never warned about


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
    name: str | None = None                   # the top-level ``name`` (model/names.py)


class ConfigError(ValueError):
    """One or more problems; ``str()`` is one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class UploadTree(Protocol):
    """The upload directory on the student's disk, checked while a config is parsed.

    The parse says which check belongs to which field, so problems keep the order of the
    fields; the checks themselves touch the disk and live with the workstation.
    """

    root: Path  # absolute, resolved

    def use_ignore(self, p: Problems, patterns: tuple[str, ...]) -> None:
        """Take ``files.ignore`` and ``.ailabberignore`` as the rules for the checks below."""

    def check_file(self, p: Problems, name: str, raw: str, norm: str) -> None:
        """A file the config names: there, regular, not ignored, not behind a symlink out."""

    def check_workdir(self, p: Problems, raw: str, norm: str) -> bool:
        """``files.workdir`` is a usable directory, so logs and results can be placed in it."""

    def stays_inside(self, p: Problems, name: str, raw: str, norm: str) -> bool:
        """No existing symlink on the way to ``norm`` leads out of the upload directory."""


#: Opens ``files.upload`` (as written, and normalised) next to the config: its tree, or None
#: when it cannot be used (the problem is recorded).
OpenUpload = Callable[[Problems, str, str], UploadTree | None]


def _unknown(key: str, table: str | None) -> str:
    known = SCHEMA[table] if table else (NAME_KEY, *SCHEMA)
    message = f"unknown key {quote(key)}"
    if table and key == NAME_KEY:   # written below a [table], TOML puts it in that table
        return f"{message} (name goes at the top of the file, before the first [table])"
    close = closest(key, known, cutoff=0.7)
    if close:
        return f"{message} (did you mean {quote(close)}?)"
    for other, keys in SCHEMA.items():
        if other != table and key in keys:
            return f"{message} (it belongs in [{other}])"
    return f"{message} (known keys: {', '.join(known)})"



# --------------------------------------------------------------------------- tables


def _tables(p: Problems, doc: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """The four tables ({} when absent, None when given as something else)."""
    out: dict[str, dict[str, Any] | None] = {name: {} for name in SCHEMA}
    for key, value in doc.items():
        if key == NAME_KEY:
            continue
        if key not in SCHEMA:
            p.add(field_key(key), _unknown(key, None))
            continue
        if not isinstance(value, dict):
            p.add(key, f"must be a table ([{key}]), got {describe(value)}")
            out[key] = None
            continue
        for sub in value:
            if sub not in SCHEMA[key]:
                p.add(f"{key}.{field_key(sub)}", _unknown(sub, key))
        out[key] = value
    return out


def _resources(p: Problems, tbl: dict[str, Any]) -> Resources:
    gpus = integer_field(p, tbl, "resources", "gpus", 0, 64, _DEFAULT_RESOURCES.gpus)
    cpus = integer_field(p, tbl, "resources", "cpus", 1, 1024, _DEFAULT_RESOURCES.cpus)
    memory_mb = memory_field(p, tbl, _DEFAULT_RESOURCES.memory_mb)
    time_limit_s = time_limit_field(p, tbl, _DEFAULT_RESOURCES.time_limit_s)
    return Resources(gpus=gpus, cpus=cpus, memory_mb=memory_mb, time_limit_s=time_limit_s)



def _strings(p: Problems, name: str, items: list[Any], max_len: int,
             flaw: Callable[[str], str | None]) -> tuple[str, ...]:
    """The non-empty strings of ``items`` up to ``max_len`` characters without ``flaw``."""
    out: list[str] = []
    for i, item in enumerate(items):
        item_name = f"{name}[{i}]"
        if not isinstance(item, str) or not item.strip():
            got = "" if isinstance(item, str) else f", got {describe(item)}"
            p.add(item_name, f"must be a non-empty string{got}")
        elif len(item) > max_len:
            p.add(item_name, f"is longer than {max_len} characters")
        elif (why := flaw(item)) is not None:
            p.add(item_name, why)
        else:
            out.append(item)
    return tuple(out)


def _not_one_line(item: str) -> str | None:
    if "\0" in item or "\n" in item or "\r" in item:
        return f"must be a single line without NUL characters, got {quote(item)}"
    return None


def _has_nul(item: str) -> str | None:
    return "must not contain NUL characters" if "\0" in item else None


def _patterns(p: Problems, tbl: dict[str, Any], key: str = "ignore") -> tuple[str, ...]:
    name = f"files.{key}"
    return _strings(p, name, array(p, name, tbl.get(key, [])), MAX_STRING, _not_one_line)


def _warn(p: Problems, tbl: dict[str, Any]) -> bool:
    value = tbl.get("warn", _DEFAULT_FILES.warn)
    if not isinstance(value, bool):
        p.add("files.warn", f"must be true or false, got {describe(value)}")
        return _DEFAULT_FILES.warn
    return value


def _workdir(p: Problems, tbl: dict[str, Any], tree: UploadTree | None) -> tuple[str, bool]:
    """Normalised ``files.workdir`` and whether it can be used to place logs/results."""
    raw = tbl.get("workdir", _DEFAULT_FILES.workdir)
    norm = rel_path(p, "files.workdir", raw)
    if norm is None:
        return ".", False
    return norm, tree is not None and tree.check_workdir(p, raw, norm)


def _environment(p: Problems, tbl: dict[str, Any], tree: UploadTree | None) -> Environment:
    found: dict[str, str | None] = {}
    for key in ("pyproject_toml", "uv_lock"):
        name = f"environment.{key}"
        found[key] = None
        if key in tbl and (norm := rel_path(p, name, tbl[key])) is not None:
            found[key] = norm
            if tree is not None:
                tree.check_file(p, name, tbl[key], norm)
    if "pyproject_toml" in tbl and "uv_lock" not in tbl:
        p.add("environment.uv_lock", "is required when environment.pyproject_toml is set")
    if "uv_lock" in tbl and "pyproject_toml" not in tbl:
        p.add("environment.pyproject_toml", "is required when environment.uv_lock is set")
    wheels: list[str] = []
    raw_wheels = array(p, "environment.extra_wheels", tbl.get("extra_wheels", []))
    for i, raw in enumerate(raw_wheels):
        name = f"environment.extra_wheels[{i}]"
        norm = rel_path(p, name, raw)
        if norm is None:
            continue
        if not norm.endswith(".whl") or norm.rpartition("/")[2] == ".whl":
            p.add(name, f"must be a wheel file ending in .whl, got {quote(raw)}")
            continue
        wheels.append(norm)
        if tree is not None:
            tree.check_file(p, name, raw, norm)
    if raw_wheels and not ("pyproject_toml" in tbl and "uv_lock" in tbl):
        p.add("environment.extra_wheels", "needs environment.pyproject_toml and "
                                          "environment.uv_lock (wheels go into that environment)")
    return Environment(found["pyproject_toml"], found["uv_lock"], tuple(wheels))


def _commands(p: Problems, tbl: dict[str, Any] | None) -> tuple[str, ...]:
    if tbl is None:
        return ()
    if "commands" not in tbl:
        p.add("run.commands", 'is required: the shell commands to run, '
                              'e.g. commands = ["python train.py"]')
        return ()
    value = tbl["commands"]
    if isinstance(value, list) and not value:
        p.add("run.commands", "must contain at least one command")
    return _strings(p, "run.commands", array(p, "run.commands", value, MAX_COMMANDS),
                    MAX_COMMAND, _has_nul)


def _join(base: str, rel: str) -> str:
    return "/".join(x for x in (base, rel) if x != ".") or "."


def _outputs(p: Problems, tbl: dict[str, Any], key: str, workdir: str,
             tree: UploadTree | None) -> tuple[str, ...]:
    """``run.logs`` / ``run.results``: paths or glob patterns (``ailabber.model.globs``);
    they may match nothing yet, but their fixed leading directories may not point out."""
    out: list[str] = []
    entries = array(p, f"run.{key}", tbl.get(key, []))
    if entries:         # most tasks name none: the glob compiler stays out of their submit
        from ailabber.model.globs import fixed_prefix, glob_problem
    for i, raw in enumerate(entries):
        name = f"run.{key}[{i}]"
        norm = rel_path(p, name, raw)
        if norm is None:
            continue
        if (why := glob_problem(norm)) is not None:
            p.add(name, why)
            continue
        if tree is None or tree.stays_inside(p, name, raw, _join(workdir, fixed_prefix(norm))):
            out.append(norm)
    return tuple(out)


# --------------------------------------------------------------------------- entry points


def parse_task_config(text: str, source: Path, open_upload: OpenUpload | None = None) -> TaskConfig:
    """Validate the TOML ``text`` of ``source``.

    With ``open_upload`` the upload directory is opened through it (the workstation's
    ``files.upload`` next to ``source``, which must exist) and every file the config names
    is checked in it.  Without, no file is checked at all (every path is still checked for
    syntax): remoted, which may be root, parses the bytes it read through a handle and
    never resolves a path in the student's upload; the job wrapper, running as the
    student, finds missing files.  Raises ``ConfigError`` listing every problem.
    """
    p = Problems(source)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        p.add("syntax", " ".join(str(exc).split()))
        raise ConfigError(p.lines) from None
    except RecursionError:
        p.add("syntax", "arrays or tables are nested too deeply")
        raise ConfigError(p.lines) from None
    name = name_field(p, doc)
    tables = _tables(p, doc)
    resources = _resources(p, tables["resources"] or {})
    files_tbl = tables["files"] or {}
    upload_raw = files_tbl.get("upload", _DEFAULT_FILES.upload)
    upload = rel_path(p, "files.upload", upload_raw)
    tree = open_upload(p, upload_raw, upload) if open_upload is not None and upload is not None else None
    ignore = _patterns(p, files_tbl)
    if tree is not None:
        tree.use_ignore(p, ignore)
    environment = _environment(p, tables["environment"] or {}, tree)
    workdir, workdir_ok = _workdir(p, files_tbl, tree)
    warn, no_warn = _warn(p, files_tbl), _patterns(p, files_tbl, "no_warn")
    run_tbl = tables["run"]
    commands = _commands(p, run_tbl)
    out_tree = tree if workdir_ok else None
    logs = _outputs(p, run_tbl or {}, "logs", workdir, out_tree)
    results = _outputs(p, run_tbl or {}, "results", workdir, out_tree)
    if p.lines:
        raise ConfigError(p.lines)
    assert tree is not None or open_upload is None
    return TaskConfig(
        resources=resources,
        environment=environment,
        files=Files(upload=upload or ".", ignore=ignore, workdir=workdir, warn=warn, no_warn=no_warn),
        run=Run(commands=commands, logs=logs, results=results),
        source=source,
        upload_root=tree.root if tree is not None else Path("."),
        name=name,
    )


def decode_config(data: bytes, source: Path) -> str:
    """The text of a config file's bytes (a UTF-8 byte order mark allowed)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{Problems(source).name}: file: is not valid UTF-8 "
                           f"(bad byte at offset {exc.start})"]) from None


def parse_frozen_config(data: bytes, source: Path) -> TaskConfig:
    """The cluster side's one reading of an accepted task's config: the bytes remoted
    read once through a directory handle, validated without touching any file.  These
    bytes, and nothing read later, become the task's job spec."""
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{Problems(source).name}: file: is larger than 1 MiB"])
    return parse_task_config(decode_config(data, source), source)

