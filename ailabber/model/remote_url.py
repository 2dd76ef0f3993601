"""Where the remote spool is: a local path, or ``ssh://user@host[:port]/path``, parsed once
(``parse_remote``) into a typed value that spoold's transport takes as it is.

For a local path the user's area is ``<path>/users/<login>``.  For ssh the path *is* the
user's area as the remote side spells it: with a key pinned by ``rrsync`` it is ``/`` (the
restricted directory's root); without, the absolute ``/srv/ailabber/users/<name>``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple, Union
from urllib.parse import unquote, urlsplit

# Both matched with ``fullmatch``: ``$`` would also accept a trailing newline.
_HOST_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)")
_USER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")


class RemoteUrlError(ValueError):
    pass


class SshRemote(NamedTuple):
    user: str | None
    host: str
    port: int | None
    path: str            # the user's area on the remote side, no trailing slash (except "/")

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        port = f":{self.port}" if self.port else ""
        return f"ssh://{self.destination}{port}{self.path}"


class LocalRemote(NamedTuple):
    """The remote root as a path this machine reaches (the same machine, or a shared
    filesystem); the user's area is ``<root>/users/<login>``."""

    root: Path

    def __str__(self) -> str:
        return str(self.root)


Remote = Union[LocalRemote, SshRemote]


def parse_remote(text: str, base: Path) -> Remote:
    """``remote`` as written in spoold.yaml: an ``ssh://`` URL, or a path (``~`` expanded,
    relative to ``base``, the YAML file's directory).  RemoteUrlError says what is wrong."""
    if not text or "\0" in text:
        raise RemoteUrlError("must be a path (or ssh:// URL) string")
    if text.startswith("ssh://"):
        return parse_ssh_url(text)
    if "://" in text:
        raise RemoteUrlError("must be a local path or an ssh:// URL")
    path = Path(text).expanduser()
    return LocalRemote(path if path.is_absolute() else base / path)


def parse_ssh_url(url: str) -> SshRemote:
    parts = urlsplit(url)
    if parts.scheme != "ssh":
        raise RemoteUrlError("must start with ssh://")
    if parts.query or parts.fragment:
        raise RemoteUrlError("must not have a query or fragment")
    host = parts.hostname or ""
    if parts.netloc.count("[") == 1 and "]" in parts.netloc:
        host = "[" + host + "]"
    if not host or _HOST_RE.fullmatch(host) is None:
        raise RemoteUrlError(f"bad host {host!r}")
    user = unquote(parts.username) if parts.username else None
    if user is not None and _USER_RE.fullmatch(user) is None:
        raise RemoteUrlError(f"bad user name {user!r}")
    if parts.password:
        raise RemoteUrlError("must not contain a password (use identity_file)")
    try:
        port = parts.port
    except ValueError:
        raise RemoteUrlError("bad port") from None
    path = unquote(parts.path) or "/"
    if not path.startswith("/") or "\0" in path or any(seg == ".." for seg in path.split("/")):
        raise RemoteUrlError(f"bad path {path!r}")
    if any(ch.isspace() for ch in path):
        raise RemoteUrlError("the path must not contain spaces")
    path = path.rstrip("/") or "/"
    return SshRemote(user, host, port, path)
