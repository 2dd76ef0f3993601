"""Daemon configuration files (YAML): ``spoold.yaml`` and remoted's file.

Written by admins and students alike, so validated as strictly as task configs: unknown
keys, wrong types and impossible values each get one line naming the file and the key.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ailabber.home import ailabber_home


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class SpooldSettings:
    spool: Path
    remote: str                      # a local path, or ssh://user@host[:port]/path later
    poll_interval: float = 1.0       # seconds between status pulls while tasks are active
    rescan_interval: float = 5.0     # full rescan even without filesystem events
    identity_file: str | None = None
    ssh_options: tuple[str, ...] = ()
    source: Path | None = None


@dataclass(frozen=True)
class RemotedSettings:
    root: Path
    scheduler: str = "local"
    gpus: int | None = None          # None: count with nvidia-smi -L
    poll_interval: float = 1.0
    rescan_interval: float = 5.0
    kill_grace: float = 10.0         # seconds between TERM and KILL when ending a task
    env_cache: Path | None = None    # default <root>/envs
    extra: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None

    @property
    def env_cache_dir(self) -> Path:
        return self.env_cache or (self.root / "envs")


SCHEDULERS = ("local",)


def _load_yaml(path: Path) -> dict[str, Any]:
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


def _check_keys(path: Path, data: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in data:
        if key not in allowed:
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            extra = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise SettingsError(f"{path}: {key}: unknown key{extra}")


def _number(path: Path, data: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    v = data.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise SettingsError(f"{path}: {key}: must be a number from {lo} to {hi}, got {v!r}")
    return float(v)


def _path(path: Path, data: dict[str, Any], key: str) -> Path | None:
    v = data.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or not v or "\0" in v:
        raise SettingsError(f"{path}: {key}: must be a path string")
    p = Path(v).expanduser()
    return p if p.is_absolute() else (path.parent / p)


SPOOLD_KEYS = ("spool", "remote", "poll_interval", "rescan_interval", "identity_file", "ssh_options")


def default_spoold_settings() -> SpooldSettings:
    home = ailabber_home()
    return SpooldSettings(spool=home / "spool", remote=str(home / "remote"))


def load_spoold_settings(path: Path | None) -> SpooldSettings:
    """``path`` None: ``$AILABBER_HOME/spoold.yaml`` if it exists, else the one-machine defaults."""
    if path is None:
        candidate = ailabber_home() / "spoold.yaml"
        if not candidate.exists():
            return default_spoold_settings()
        path = candidate
    data = _load_yaml(path)
    _check_keys(path, data, SPOOLD_KEYS)
    defaults = default_spoold_settings()
    remote = data.get("remote", defaults.remote)
    if not isinstance(remote, str) or not remote or "\0" in remote:
        raise SettingsError(f"{path}: remote: must be a path (or ssh:// URL) string")
    if remote.startswith("ssh://"):
        raise SettingsError(f"{path}: remote: ssh:// remotes are not supported by this version; use a local path")
    remote_path = Path(remote).expanduser()
    if not remote_path.is_absolute():
        remote_path = path.parent / remote_path
    opts = data.get("ssh_options", [])
    if not isinstance(opts, list) or not all(isinstance(o, str) for o in opts):
        raise SettingsError(f"{path}: ssh_options: must be a list of strings")
    ident = data.get("identity_file")
    if ident is not None and not isinstance(ident, str):
        raise SettingsError(f"{path}: identity_file: must be a path string")
    return SpooldSettings(
        spool=_path(path, data, "spool") or defaults.spool,
        remote=str(remote_path),
        poll_interval=_number(path, data, "poll_interval", 1.0, 0.05, 3600),
        rescan_interval=_number(path, data, "rescan_interval", 5.0, 0.1, 3600),
        identity_file=ident,
        ssh_options=tuple(opts),
        source=path,
    )


REMOTED_KEYS = ("root", "scheduler", "gpus", "poll_interval", "rescan_interval", "kill_grace", "env_cache")


def load_remoted_settings(path: Path) -> RemotedSettings:
    data = _load_yaml(path)
    _check_keys(path, data, REMOTED_KEYS)
    root = _path(path, data, "root")
    if root is None:
        raise SettingsError(f"{path}: root: required (the remote spool directory)")
    sched = data.get("scheduler", "local")
    if sched not in SCHEDULERS:
        raise SettingsError(f"{path}: scheduler: must be one of {', '.join(SCHEDULERS)}, got {sched!r}")
    gpus = data.get("gpus", "auto")
    if gpus == "auto" or gpus is None:
        gpus_v: int | None = None
    elif isinstance(gpus, int) and not isinstance(gpus, bool) and 0 <= gpus <= 1024:
        gpus_v = gpus
    else:
        raise SettingsError(f"{path}: gpus: must be 'auto' or an integer >= 0, got {gpus!r}")
    return RemotedSettings(
        root=root,
        scheduler=sched,
        gpus=gpus_v,
        poll_interval=_number(path, data, "poll_interval", 1.0, 0.05, 3600),
        rescan_interval=_number(path, data, "rescan_interval", 5.0, 0.1, 3600),
        kill_grace=_number(path, data, "kill_grace", 10.0, 0.0, 3600),
        env_cache=_path(path, data, "env_cache"),
        source=path,
    )


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    from ailabber import fsutil

    fsutil.atomic_write_bytes(path, yaml.safe_dump(data, sort_keys=False).encode())
