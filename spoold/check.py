"""``ailabber-spoold --check``: can this workstation reach its remote, is the key confined
(and does it offer change notices), and is remoted alive on the other side?  Used by
``ailabber doctor``."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ailabber.daemonkit.checks import Check
from ailabber.daemonkit.spoold_settings import SpooldSettings
from ailabber.model.remote_layout import UserArea
from ailabber.model.remote_url import LocalRemote
from ailabber.model.render import duration
from ailabber.storage.home import os_user
from ailabber.storage.remoted_beat import REMOTED_BEAT, RemotedBeat, read_beat
from spoold.errors import TransportError
from spoold.transport import RsyncTransport
from spoold.watchchannel import offered


def not_set_up(settings: SpooldSettings) -> str | None:
    """A local remote that no daemon has created yet, in plain words: before the first
    ``ailabber up`` rsync would only say that it cannot change into a directory."""
    remote = settings.remote
    if not isinstance(remote, LocalRemote):
        return None
    area = UserArea(remote.root, os_user()).path
    if area.is_dir():
        return None
    if not remote.root.exists():
        return (f"nothing is set up yet: the remote {remote.root} does not exist; "
                "run 'ailabber up' (or start remoted and spoold as services) to create it")
    return (f"your directory {area} does not exist yet: spoold creates it when it starts "
            "(ailabber up, or systemctl --user start ailabber-spoold)")


def run_checks(settings: SpooldSettings) -> list[Check]:
    missing = not_set_up(settings)
    if missing:
        return [Check("remote reachable", False, missing)]
    transport = RsyncTransport.to(settings)
    checks: list[Check] = []
    try:
        with tempfile.TemporaryDirectory(prefix="ailabber-doctor-") as tmp:
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
                checks.append(notices_check(transport, 3.0 * settings.connect_timeout))
            beat_file = Path(tmp) / REMOTED_BEAT
            try:
                transport.pull_file(REMOTED_BEAT, beat_file)
            except TransportError:
                pass
            beat = read_beat(beat_file)
            if beat is None:
                checks.append(Check("remoted alive", False, "no heartbeat from remoted in this directory"))
                return checks
            checks += remoted_checks(beat)
    finally:
        transport.close()
    return checks


def notices_check(transport: RsyncTransport, timeout: float) -> Check:
    """Whether the key is pinned with ailabber-gate (spoold is told of changes) or with
    plain rrsync (spoold polls: it works, at a higher cost to the login node)."""
    argv = transport.watch_argv()
    why = offered(argv, timeout) if argv is not None else "not over ssh"
    if why is None:
        return Check("change notices", True, "the key is pinned with ailabber-gate: spoold pulls when told")
    return Check("change notices", False, f"not offered ({why}): spoold polls, which costs the login node more; "
                 "the admin can pin the key with ailabber-gate instead of rrsync", warning=True)


def remoted_checks(beat: RemotedBeat) -> list[Check]:
    """What remoted's heartbeat tells, if it is fresh: a stopped remoted's last word about
    its scheduler is no answer from the scheduler now."""
    data = beat.data
    who = f"pid {beat.pid}, {beat.scheduler}"
    if beat.stopped():
        return [Check("remoted alive", False, f"{beat.stopped_text()} (was {who})"),
                Check("scheduler reachable", False, "unknown: remoted, which asks the scheduler, is not running")]
    return [
        Check("remoted alive", True, f"last heartbeat {duration(beat.age())} ago ({who})"),
        Check("scheduler reachable", bool(data.get("scheduler_ok")),
              data.get("scheduler_problem") or f"{beat.scheduler} answers"),
        Check("uv on the cluster side", bool(data.get("uv")),
              data.get("uv") or "remoted found no uv to build environments with"),
    ]
