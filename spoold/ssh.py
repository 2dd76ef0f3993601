"""The ssh command spoold hands to rsync (``--rsh``).

One multiplexed connection per daemon (ControlMaster/ControlPersist) so that many small
transfers do not each pay a handshake; keepalives and a connect timeout so a dead link is
noticed in seconds instead of hanging; BatchMode so nothing ever waits for a password.

The master's socket is named after everything that decides where a session lands, not
only ssh's ``%C`` (local host, remote host, port, login): a key pinned with rrsync decides
which directory the session may touch, and options such as ``ProxyJump`` decide the path,
so two spoolds of one Unix user with different keys to the same account never share a
master (the second's transfers would otherwise run under the first one's key).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from ailabber.model.remote_url import SshRemote


def control_dir() -> Path:
    """A short, private directory for the ControlMaster socket (paths are length-limited)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    d = Path(base) / "ailabber-ssh" if base and os.path.isdir(base) else \
        Path(tempfile.gettempdir()) / f"ailabber-ssh-{os.getuid()}"
    d.mkdir(mode=0o700, exist_ok=True)
    st = d.lstat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(f"{d} must be a private directory of uid {os.getuid()}")
    return d


def ssh_command(remote: SshRemote, identity_file: str | None = None, options: tuple[str, ...] = (),
                connect_timeout: int = 10) -> list[str]:
    cmd = ["ssh"]
    for opt in options:            # the user's options first: ssh takes the first value given
        cmd += ["-o", opt]
    if remote.port:
        cmd += ["-p", str(remote.port)]
    if identity_file:
        cmd += ["-i", identity_file, "-o", "IdentitiesOnly=yes"]
    cmd += [
        "-o", "BatchMode=yes",
        "-o", f"ConnectTimeout={connect_timeout}",
        "-o", "ServerAliveInterval=5",
        "-o", "ServerAliveCountMax=3",
        "-o", "ControlMaster=auto",
        "-o", f"ControlPath={control_dir()}/%C-{_session_key(identity_file, options)}",
        "-o", "ControlPersist=120",
    ]
    return cmd


def _session_key(identity_file: str | None, options: tuple[str, ...]) -> str:
    """A short digest of the key file (as an absolute path) and the user's ssh options."""
    ident = os.path.abspath(identity_file) if identity_file else ""
    digest = hashlib.sha256("\0".join((ident, *options)).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:12]
