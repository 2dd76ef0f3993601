"""remoted's signs of life: ``heartbeat.json`` at the root for the admin, and
``remoted.json`` in each user's area so that ``ailabber doctor`` on a workstation can tell
remoted is alive, its scheduler answers and uv is there."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from ailabber import __version__
from ailabber.daemonkit.remoted_settings import RemotedSettings
from ailabber.model.remote_layout import USERS
from ailabber.storage import fsutil
from ailabber.storage.safedir import SafeDir
from remoted.intake import user_areas
from remoted.records import QUEUED
from remoted.schedulers.base import Scheduler

log = logging.getLogger("remoted")

HEARTBEAT_EVERY = 5.0
USER_HEARTBEAT_EVERY = 30.0


class Heartbeat:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._last = 0.0
        self._last_user = 0.0
        self._beating: set[str] = set()

    def beat(self, scheduler: Scheduler, settings: RemotedSettings, active: dict[Any, Any]) -> bool:
        """Write what is due: the root's file every few seconds, the users' files every
        half minute (and at once for an area seen for the first time).  True if the
        root's file was due and written (OSError if it could not be)."""
        now = time.time()
        if now - self._last < HEARTBEAT_EVERY:
            return False
        self._last = now
        # "every": how often a reader may expect a beat, so that it can tell a stop from a
        # slow beat; an idle pass comes at least every rescan_interval.
        fsutil.atomic_write_json(self.root / "heartbeat.json", {
            "pid": os.getpid(), "at": now, "every": max(HEARTBEAT_EVERY, settings.rescan_interval),
            "scheduler": scheduler.name,
            "containment": scheduler.containment(),
            "active": len(active),
            "queued": sum(1 for r in active.values() if r.phase == QUEUED),
        })
        areas = user_areas(self.root)
        due = now - self._last_user >= USER_HEARTBEAT_EVERY
        # A student's area seen for the first time gets its heartbeat now, not in 30 s.
        areas = areas if due else [a for a in areas if a.user not in self._beating]
        if not areas:
            return True
        if due:
            self._last_user = now
        from remoted.identity import find_uv

        health = scheduler.health()
        body = json.dumps({
            "pid": os.getpid(), "at": now, "every": max(USER_HEARTBEAT_EVERY, settings.rescan_interval),
            "version": __version__, "scheduler": scheduler.name,
            "scheduler_ok": health is None, "scheduler_problem": health,
            "uv": settings.uv or find_uv(settings.job_python),
        }, sort_keys=True).encode()
        for area in areas:
            try:
                with SafeDir.open(self.root / USERS) as users, users.sub(area.user) as adir:
                    adir.write_atomic("remoted.json", body)
                self._beating.add(area.user)
            except OSError as exc:
                log.debug("%s: cannot write remoted.json: %s", area.user, exc)
        return True
