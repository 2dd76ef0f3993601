"""spoold.yaml's keys for the notice of a finished task: ``desktop_notifications``,
``on_finish`` and ``on_finish_timeout``, checked when the file is loaded (by spoold and by
every CLI command alike), so a malformed hook is named at once.

Whether the hook's program exists is not checked here: the CLI and spoold (a systemd user
service) see different PATHs, and a program installed later must work without a restart.
spoold reports a program it cannot start in the task's notice record and its log."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

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
