"""Where a user's ailabber lives: ``$AILABBER_HOME`` (default ``~/.ailabber``)."""

from __future__ import annotations

import os
import pwd
from pathlib import Path


def ailabber_home() -> Path:
    env = os.environ.get("AILABBER_HOME")
    if env:
        return Path(env).expanduser().absolute()
    return Path.home() / ".ailabber"


def spool_path() -> Path:
    return ailabber_home() / "spool"


def os_user() -> str:
    """The submitting identity.  Taken from the kernel's uid, never from a file or $USER."""
    return pwd.getpwuid(os.getuid()).pw_name
