"""``spoold.yaml``: where the student's spool is, how to reach the cluster, upload caps,
notices and retention.  Read by spoold and by every CLI command (which must know where the
spool is), so a mistake in the file is named by the first command that reads it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ailabber.daemonkit.yamlfile import SettingsError, beside, check_keys, load_yaml, number, path_setting
from ailabber.model.retention_policy import DEFAULT_POLICY, Policy, policy_from_setting
from ailabber.storage.home import ailabber_home

if TYPE_CHECKING:       # parsed only where a spoold.yaml is read: the CLI starts faster
    from ailabber.model.remote_url import Remote


# --------------------------------------------------------------------------- notices
# The keys for the notice of a finished task (``desktop_notifications``, ``on_finish``,
# ``on_finish_timeout``) are checked when the file is loaded, by spoold and by every CLI
# command alike, so a malformed hook is named at once.  Whether the hook's program exists is
# not checked here: the CLI and spoold (a systemd user service) see different PATHs, and a
# program installed later must work without a restart.  spoold reports a program it cannot
# start in the task's notice record and its log.

NOTICE_KEYS = ("desktop_notifications", "on_finish", "on_finish_timeout")
DEFAULT_HOOK_TIMEOUT = 60.0


class NoticeSettings(NamedTuple):
    desktop: bool | None = None        # None: "auto", on where spoold has a session bus
    on_finish: tuple[str, ...] = ()    # the program (resolved) and its arguments; run without a shell
    on_finish_timeout: float = DEFAULT_HOOK_TIMEOUT

    def desktop_on(self, environ: Mapping[str, str] = os.environ) -> bool:
        """Desktop notifications are on when asked for, or by default where spoold has a
        session bus to send them on (a desktop login), and nowhere else (a server)."""
        if self.desktop is None:
            return bool(environ.get("DBUS_SESSION_BUS_ADDRESS"))
        return self.desktop

    def enabled(self, environ: Mapping[str, str] = os.environ) -> bool:
        return bool(self.on_finish) or self.desktop_on(environ)


def parse_notices(settings_file: Path, data: dict[str, Any]) -> NoticeSettings:
    """The notice keys of ``data``; ValueError names the key in one line."""
    desktop = data.get("desktop_notifications", "auto")
    if desktop not in ("auto", True, False):
        raise ValueError(f"desktop_notifications: must be auto, true or false, got {desktop!r}")
    timeout = data.get("on_finish_timeout", DEFAULT_HOOK_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 1 <= timeout <= 86400:
        raise ValueError(f"on_finish_timeout: must be a number of seconds from 1 to 86400, got {timeout!r}")
    hook = data.get("on_finish")
    return NoticeSettings(desktop=None if desktop == "auto" else bool(desktop),
                          on_finish=() if hook is None else _command(settings_file, hook),
                          on_finish_timeout=float(timeout))


def _command(settings_file: Path, v: Any) -> tuple[str, ...]:
    """A command line: a list of words, or a string split into words as a shell would
    (quotes and backslashes), but run without a shell: no pipes, redirections or
    variables, so nothing in a task's status can be taken for shell syntax."""
    if isinstance(v, str):
        import shlex

        try:
            words = shlex.split(v)
        except ValueError as exc:
            raise ValueError(f"on_finish: cannot be split into words: {exc}") from None
    elif isinstance(v, list) and all(isinstance(w, str) for w in v):
        words = list(v)
    else:
        raise ValueError("on_finish: must be a command line (a string) or a list of words")
    if not words or not words[0]:
        raise ValueError("on_finish: must name a program to run")
    if any("\0" in w for w in words):
        raise ValueError("on_finish: must not contain NUL characters")
    return (_program(settings_file, words[0]), *words[1:])


def _program(settings_file: Path, name: str) -> str:
    """A bare name is left to spoold's PATH when the hook runs; a path (``~`` expanded) is
    taken from the directory of spoold.yaml when relative."""
    if "/" not in name:
        return name
    p = Path(name).expanduser()
    return str(p if p.is_absolute() else settings_file.parent / p)


# --------------------------------------------------------------------------- the file

class SpooldSettings(NamedTuple):
    spool: Path
    remote: Remote                   # a local path, or ssh://[user@]host[:port]/path, parsed
    poll_interval: float = 1.0       # seconds between status pulls while tasks are active
    rescan_interval: float = 5.0     # full rescan even without filesystem events
    # With the cluster's gate (change notices over ssh): everything pulled again this
    # often, in case a notice was missed (spoold/pullclock.py).
    remote_rescan_interval: float = 300.0
    identity_file: str | None = None
    ssh_options: tuple[str, ...] = ()
    connect_timeout: int = 10        # ssh ConnectTimeout, and rsync --timeout is 3x this
    max_upload_bytes: int | None = None   # refuse bigger uploads at submit time
    max_upload_files: int | None = None
    upload_bwlimit: int | None = None     # KiB/s an upload may use (rsync --bwlimit); None: no cap
    source: Path | None = None
    notices: NoticeSettings = NoticeSettings()    # desktop notification and on_finish hook
    retention: Policy | None = DEFAULT_POLICY   # None: off (spoold.yaml ``retention: off``)



SPOOLD_KEYS = ("spool", "remote", "poll_interval", "rescan_interval", "remote_rescan_interval", "identity_file",
               "ssh_options", "connect_timeout", "max_upload_bytes", "max_upload_files", "upload_bwlimit", "retention",
               *NOTICE_KEYS)


def default_spoold_settings() -> SpooldSettings:
    home = ailabber_home()
    from ailabber.model.remote_url import LocalRemote

    return SpooldSettings(spool=home / "spool", remote=LocalRemote(home / "remote"))


def load_spoold_settings(path: Path | None) -> SpooldSettings:
    """``path`` None: ``$AILABBER_HOME/spoold.yaml`` if it exists, else the one-machine defaults."""
    if path is None:
        candidate = ailabber_home() / "spoold.yaml"
        if not candidate.exists():
            return default_spoold_settings()
        path = candidate
    data = load_yaml(path)
    check_keys(path, data, SPOOLD_KEYS)
    defaults = default_spoold_settings()
    from ailabber.model.remote_url import RemoteUrlError, parse_remote

    remote: Remote = defaults.remote
    if "remote" in data:
        if not isinstance(data["remote"], str):
            raise SettingsError(f"{path}: remote: must be a path (or ssh:// URL) string")
        try:
            remote = parse_remote(data["remote"], path.parent)
        except RemoteUrlError as exc:
            raise SettingsError(f"{path}: remote: {exc}") from None
    opts = data.get("ssh_options", [])
    if not isinstance(opts, list) or not all(isinstance(o, str) and o and "\n" not in o and "=" in o
                                             and not o.startswith("-") for o in opts):
        raise SettingsError(f"{path}: ssh_options: must be a list of KEY=VALUE strings (each passed as -o)")
    ident = data.get("identity_file")
    if ident is not None:
        if not isinstance(ident, str) or not ident:
            raise SettingsError(f"{path}: identity_file: must be a path string")
        ident = str(beside(path, ident))
    limits = {}
    for key in ("max_upload_bytes", "max_upload_files", "connect_timeout", "upload_bwlimit"):
        v = data.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise SettingsError(f"{path}: {key}: must be a whole number >= 1")
        limits[key] = v
    try:
        notices = parse_notices(path, data)
    except ValueError as exc:
        raise SettingsError(f"{path}: {exc}") from None
    return SpooldSettings(
        spool=path_setting(path, data, "spool") or defaults.spool,
        remote=remote,
        poll_interval=number(path, data, "poll_interval", 1.0, 0.05, 3600),
        rescan_interval=number(path, data, "rescan_interval", 5.0, 0.1, 3600),
        remote_rescan_interval=number(path, data, "remote_rescan_interval", 300.0, 1.0, 86400),
        identity_file=ident,
        ssh_options=tuple(opts),
        connect_timeout=limits["connect_timeout"] or 10,
        max_upload_bytes=limits["max_upload_bytes"],
        max_upload_files=limits["max_upload_files"],
        upload_bwlimit=limits["upload_bwlimit"],
        source=path,
        notices=notices,
        retention=_retention(path, data),
    )


def _retention(path: Path, data: dict[str, Any]) -> Policy | None:
    try:
        return policy_from_setting(data["retention"]) if "retention" in data else DEFAULT_POLICY
    except ValueError as exc:
        raise SettingsError(f"{path}: {exc}") from None


