"""``ailabber doctor``: check a setup end to end and say in plain words what is wrong.

Local checks run here; whatever needs the network or the cluster side is asked of the
daemons' own ``--check`` (a separate process), so the CLI itself stays free of both.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from ailabber.cli.common import print_json
from ailabber.cli.helptext import describe
from ailabber.daemonkit.checks import Check, load, passed, render
from ailabber.daemonkit.lock import holder_pid
from ailabber.daemonkit.spoold_settings import load_spoold_settings
from ailabber.daemonkit.yamlfile import SettingsError
from ailabber.storage.home import ailabber_home
from ailabber.storage.spool import DAEMON_LOCK


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, """\
Check your setup, one ok/FAIL line each: spoold.yaml, the spool, spoold, the remote
(and over ssh, that your key reaches only your directory), remoted, its scheduler and
uv.  Exits 0 only if every check passes.""", """\
  ailabber doctor
  ailabber doctor --remoted-config /etc/ailabber/remoted.yaml     (admins, on the cluster)""")
    p.add_argument("--json", action="store_true")
    p.add_argument("--remoted-config", type=Path, help="(admins, on the cluster) check this remoted setup instead")
    p.add_argument("--timeout", type=float, default=60)
    p.set_defaults(func=run)


def _daemon_check(module: str, config: Path | None, timeout: float) -> list[Check]:
    cfg = ["--config", str(config)] if config else []
    try:
        proc = subprocess.run([sys.executable, "-m", module, *cfg, "--check"],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return [Check("remote reachable", False, f"no answer within {timeout:g}s")]
    try:
        return load(proc.stdout)
    except (ValueError, KeyError, TypeError):
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return [Check(f"{module} --check", False, last)]


def local_checks() -> tuple[list[Check], Path | None]:
    checks: list[Check] = []
    config = ailabber_home() / "spoold.yaml"
    try:
        settings = load_spoold_settings(None)
    except SettingsError as exc:
        return [Check("configuration valid", False, str(exc))], None
    checks.append(Check("configuration valid", True, str(settings.source or "defaults (no spoold.yaml)")))
    probe = settings.spool / "tmp" / f".doctor-{os.getpid()}"
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"x")
        probe.unlink()
        checks.append(Check("spool writable", True, str(settings.spool)))
    except OSError as exc:
        checks.append(Check("spool writable", False, f"{settings.spool}: {exc.strerror or exc}"))
    pid = holder_pid(settings.spool / DAEMON_LOCK)
    if pid and pid > 0:
        import psutil

        try:
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(psutil.Process(pid).create_time()))
        except psutil.Error:
            since = "?"
        checks.append(Check("spoold running", True, f"pid {pid}, since {since}"))
    else:
        checks.append(Check("spoold running", False, "not running: start it with 'ailabber up' or systemctl --user"))
    return checks, (config if config.exists() else None)


def run(args: argparse.Namespace) -> int:
    if args.remoted_config:
        checks = _daemon_check("remoted", args.remoted_config, args.timeout)
    else:
        checks, config = local_checks()
        if checks and checks[0].ok:
            checks += _daemon_check("spoold", config, args.timeout)
    if args.json:
        print_json([c.to_dict() for c in checks])
    else:
        print(render(checks))
    return 0 if passed(checks) else 1
