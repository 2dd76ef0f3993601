"""Reading a daemon's YAML settings file, and the checks its fields share.

Settings files are written by admins and students alike, so they are validated as strictly
as task configs: unknown keys, wrong types and impossible values each get one line naming
the file and the key (``SettingsError``).  ``spoold_settings`` and ``remoted_settings``
build their typed values from what this module reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ailabber.model.suggest import closest


class SettingsError(ValueError):
    pass


def load_yaml(path: Path) -> dict[str, Any]:
    import yaml  # only when there is a file to read: the CLI starts faster without it

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SettingsError(f"{path}: syntax: {problem}{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: must be a mapping of keys to values")
    return data


def hint(key: str, allowed: tuple[str, ...]) -> str:
    close = closest(key, allowed)
    return f" (did you mean '{close}'?)" if close else ""


def check_keys(path: Path, data: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in data:
        if key not in allowed:
            raise SettingsError(f"{path}: {key}: unknown key{hint(str(key), allowed)}")


def number(path: Path, data: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    v = data.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise SettingsError(f"{path}: {key}: must be a number from {lo} to {hi}, got {v!r}")
    return float(v)


def path_string(path: Path, data: dict[str, Any], key: str, what: str) -> str | None:
    """The non-empty string at ``key`` (None when absent), which will name a file."""
    v = data.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or not v or "\0" in v:
        raise SettingsError(f"{path}: {key}: must be {what}")
    return v


def beside(path: Path, v: str) -> Path:
    """``v`` with ``~`` expanded and, when relative, taken from the directory of the
    settings file ``path``, so a setting means the same whatever directory a daemon runs in."""
    p = Path(v).expanduser()
    return p if p.is_absolute() else path.parent / p


def path_setting(path: Path, data: dict[str, Any], key: str) -> Path | None:
    v = path_string(path, data, key, "a path string")
    return None if v is None else beside(path, v)



def write_yaml(path: Path, data: dict[str, Any]) -> None:
    import yaml

    from ailabber.storage import fsutil

    fsutil.atomic_write_bytes(path, yaml.safe_dump(data, sort_keys=False).encode())
