"""A throwaway sshd on loopback (or inside a network namespace) for transport tests.

Its own host key, config and authorized_keys live in a temporary directory; each student's
key is pinned to that student's directory, exactly as an admin would do it: with rrsync,
or with ailabber's gate (``ailabber-gate``: rrsync plus the ``watch`` verb) when one is given.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"
RRSYNC = shutil.which("rrsync") or "/usr/bin/rrsync"


def available() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "root (to run sshd for several real users)"
    for exe in (SSHD, shutil.which("ssh-keygen"), shutil.which("rsync"), RRSYNC):
        if not exe or not os.path.exists(exe):
            return False, f"{exe or 'ssh-keygen'} (openssh-server, rsync)"
    return True, ""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def keygen(path: Path, owner: str | None = None) -> str:
    """An ed25519 key pair at ``path``; returns the public key line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    if owner:
        pw = pwd.getpwnam(owner)
        for p in (path, path.with_suffix(".pub")):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    return path.with_suffix(".pub").read_text().strip()


class Sshd:
    def __init__(self, listen: str = "127.0.0.1", netns: str | None = None, gate: Path | None = None):
        """``gate``: the ``ailabber-gate`` program keys are pinned with (None: rrsync)."""
        self.listen = listen
        self.netns = netns
        self.gate = gate
        self.dir = Path(tempfile.mkdtemp(prefix="ailabber-sshd-"))
        os.chmod(self.dir, 0o755)
        self.port = free_port() if netns is None else 2222
        self.keys_dir = self.dir / "authorized"
        self.keys_dir.mkdir()
        os.chmod(self.keys_dir, 0o755)
        self.proc: subprocess.Popen[bytes] | None = None

    def authorize(self, user: str, public_key: str, rrsync_dir: Path | None, jump_to: str | None = None) -> None:
        """Pin ``public_key`` for ``user``: with ``rrsync_dir``, to rsync inside it only (and
        the gate's ``watch`` of it, with a gate); with ``jump_to`` (``host:port``), to
        forwarding a connection there and nothing else (a bastion's key for ``ProxyJump``
        or ``ssh -L``)."""
        prefix = (f'command="{self.gate or RRSYNC} {rrsync_dir}",restrict ' if rrsync_dir
                  else f'restrict,port-forwarding,permitopen="{jump_to}" ' if jump_to else "")
        path = self.keys_dir / user
        with open(path, "a") as fh:
            fh.write(prefix + public_key + "\n")
        os.chmod(path, 0o644)
        # UsePAM no refuses accounts whose password is locked ('!'): unlock without a password.
        subprocess.run(["usermod", "-p", "*", user], check=False, capture_output=True)

    def start(self) -> None:
        host_key = self.dir / "host_key"
        keygen(host_key)
        cfg = self.dir / "sshd_config"
        cfg.write_text(
            f"Port {self.port}\nListenAddress {self.listen}\nHostKey {host_key}\n"
            f"PidFile {self.dir / 'sshd.pid'}\nAuthorizedKeysFile {self.keys_dir}/%u\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "ClientAliveInterval 5\nClientAliveCountMax 3\nMaxStartups 100\nMaxSessions 100\n"
            "LogLevel ERROR\n")
        os.makedirs("/run/sshd", exist_ok=True)
        cmd = [SSHD, "-D", "-e", "-f", str(cfg)]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        self.log = open(self.dir / "sshd.log", "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.dir / 'sshd.log').read_text()}")
            if self._listening():
                return
            time.sleep(0.05)
        raise RuntimeError("sshd did not start listening within 10 s")

    def _listening(self) -> bool:
        cmd = ["bash", "-c", f"exec 3<>/dev/tcp/{self.listen}/{self.port}"]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        return subprocess.run(cmd, capture_output=True).returncode == 0

    def client_options(self) -> list[str]:
        return ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR"]

    def url(self, user: str, path: str = "/") -> str:
        return f"ssh://{user}@{self.listen}:{self.port}{path}"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
