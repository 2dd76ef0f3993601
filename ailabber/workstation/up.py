"""The one-machine installation: spoold and remoted side by side under ``$AILABBER_HOME``.

Both daemons run as real child processes with their own config files (written once, then
left for the user to edit), exactly as systemd would run them; ``up`` only supervises.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from ailabber.daemonkit.yamlfile import SettingsError, write_yaml
from ailabber.storage import fsutil
from ailabber.storage.home import ailabber_home

log = logging.getLogger("ailabber.workstation.up")

ALREADY_RUNNING = 3      # the exit code of a daemon that finds its lock taken (daemonkit.loop)


def write_default_configs(home: Path, scheduler: str | None, gpus: int | None) -> tuple[Path, Path]:
    """Write both config files on first use; afterwards only the options given on the
    command line are changed, so the user's own edits survive."""
    fsutil.ensure_dirs(home, mode=0o700)
    spoold_cfg = home / "spoold.yaml"
    remoted_cfg = home / "remoted.yaml"
    if not spoold_cfg.exists():
        write_yaml(spoold_cfg, {"spool": str(home / "spool"), "remote": str(home / "remote"),
                                "poll_interval": 0.5})
    data: dict[str, object] = {"root": str(home / "remote"), "scheduler": "local", "poll_interval": 0.5}
    if remoted_cfg.exists():
        try:
            loaded = yaml.safe_load(remoted_cfg.read_text(encoding="utf-8"))
        except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{remoted_cfg}: cannot read: {str(exc).splitlines()[0]}") from None
        if not isinstance(loaded, dict):
            raise SettingsError(f"{remoted_cfg}: must be a mapping of keys to values")
        data = loaded
    wanted = dict(data)
    if scheduler is not None:
        wanted["scheduler"] = scheduler
    if gpus is not None:
        wanted["gpus"] = gpus
    if wanted != data or not remoted_cfg.exists():
        write_yaml(remoted_cfg, wanted)
    return spoold_cfg, remoted_cfg


def start(home: Path | None = None, scheduler: str | None = None, gpus: int | None = None,
          verbose: bool = False, stderr: int | None = None) -> list[subprocess.Popen[bytes]]:
    home = home or ailabber_home()
    spoold_cfg, remoted_cfg = write_default_configs(home, scheduler, gpus)
    env = dict(os.environ, AILABBER_HOME=str(home))
    extra = ["--verbose"] if verbose else []
    procs = [
        subprocess.Popen([sys.executable, "-m", "remoted", "--config", str(remoted_cfg), *extra],
                         env=env, stdin=subprocess.DEVNULL, stderr=stderr),
        subprocess.Popen([sys.executable, "-m", "spoold", "--config", str(spoold_cfg), *extra],
                         env=env, stdin=subprocess.DEVNULL, stderr=stderr),
    ]
    return procs


def stop(procs: list[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def running(home: Path) -> list[str]:
    """The daemons already serving this home's spool and remote root, as "name (pid N)":
    a second ``up`` must say so before it claims anything, not after its children fail."""
    from ailabber.daemonkit.lock import holder_pid
    from ailabber.daemonkit.remoted_settings import load_remoted_settings
    from ailabber.daemonkit.spoold_settings import load_spoold_settings
    from ailabber.model.remote_layout import DAEMON_LOCK as REMOTED_LOCK
    from ailabber.storage.spool import DAEMON_LOCK as SPOOLD_LOCK

    spoold_cfg, remoted_cfg = home / "spoold.yaml", home / "remoted.yaml"
    spool = load_spoold_settings(spoold_cfg).spool if spoold_cfg.exists() else home / "spool"
    root = load_remoted_settings(remoted_cfg).root if remoted_cfg.exists() else home / "remote"
    found = [(name, holder_pid(lock)) for name, lock in
             (("spoold", spool / SPOOLD_LOCK), ("remoted", root / REMOTED_LOCK))]
    return [f"{name} (pid {pid})" for name, pid in found if pid is not None]


def run_foreground(scheduler: str | None, gpus: int | None, verbose: bool) -> int:
    """Supervise both daemons until Ctrl-C / SIGTERM, or until one of them exits."""
    home = ailabber_home()
    already = running(home)
    if already:
        print(f"ailabber up: already running for {home}: {', '.join(already)}; "
              "stop it first (Ctrl-C in its terminal) to start it again", file=sys.stderr)
        return ALREADY_RUNNING
    stopping = False

    def _stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    old_int = signal.signal(signal.SIGINT, _stop)
    old_term = signal.signal(signal.SIGTERM, _stop)
    procs = start(home, scheduler=scheduler, gpus=gpus, verbose=verbose)
    print(f"ailabber up: spoold and remoted running for {home} (config: {home / 'remoted.yaml'}); Ctrl-C stops",
          file=sys.stderr)
    code = 0
    try:
        while not stopping:
            for p in procs:
                rc = p.poll()
                if rc is not None:
                    print(f"ailabber up: a daemon exited with code {rc}; stopping the other", file=sys.stderr)
                    code = rc or 1
                    stopping = True
            time.sleep(0.2)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop(procs)
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    return code
