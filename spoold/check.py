"""``ailabber-spoold --check``: can this workstation reach its remote, is the key confined,
and is remoted alive on the other side?  Used by ``ailabber doctor``."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from ailabber.daemonkit.checks import Check
from ailabber.daemonkit.settings import SpooldSettings
from spoold.errors import TransportError
from spoold.transport import RsyncTransport

STALE_AFTER = 120.0


def run_checks(settings: SpooldSettings) -> list[Check]:
    transport = RsyncTransport.to(settings)
    checks: list[Check] = []
    try:
        with tempfile.TemporaryDirectory(prefix="ailabber-doctor-") as tmp:
            beat = Path(tmp) / "remoted.json"
            try:
                transport.list_area()
                checks.append(Check("remote reachable", True, str(settings.remote)))
            except TransportError as exc:
                checks.append(Check("remote reachable", False, str(exc)))
                return checks
            if transport.over_ssh:
                confined = transport.escapes_area()
                checks.append(Check("remote directory confined", not confined,
                                    "the key can only reach this student's directory" if not confined else
                                    "this key can read outside the student's directory: pin it with rrsync"))
            try:
                transport.pull_file("remoted.json", beat)
            except TransportError:
                pass
            data = None
            if beat.exists():
                try:
                    data = json.loads(beat.read_text())
                except ValueError:
                    data = None
            if not isinstance(data, dict):
                checks.append(Check("remoted alive", False, "no heartbeat from remoted in this directory"))
                return checks
            age = time.time() - float(data.get("at", 0))
            checks.append(Check("remoted alive", age < STALE_AFTER,
                                f"last heartbeat {age:.0f}s ago (pid {data.get('pid')}, {data.get('scheduler')})"))
            checks.append(Check("scheduler reachable", bool(data.get("scheduler_ok")),
                                data.get("scheduler_problem") or f"{data.get('scheduler')} answers"))
            checks.append(Check("uv on the cluster side", bool(data.get("uv")),
                                data.get("uv") or "remoted found no uv to build environments with"))
    finally:
        transport.close()
    return checks
