"""Telling the student that a task ended: a desktop notification and the ``on_finish`` hook.

At most once per task, even across restarts.  spoold queues the notice
(``spool/notify/<id>``) before it moves the finished task to ``done/``; a later pass writes
``done/<id>/notified.json`` saying what is about to be sent, then removes the queue entry,
then sends.  A stop before the record is written leaves the entry: the notice is sent
after the restart.  A stop after it leaves the record without an outcome: ``status`` says
so, and nothing is sent twice.  At most once, rather than at least once, because a hook
typically mails or posts somewhere, where a duplicate costs more than the rare notice lost
to a stop in the seconds a hook runs.

Sending happens in worker threads, a few at a time, so that a slow hook never holds up
the pass that uploads and pulls everyone's tasks.  A missing notification program or
session bus, or a failing hook, is recorded and logged; it never stops spoold.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ailabber.daemonkit.faults import crash_point
from ailabber.daemonkit.spoold_settings import NoticeSettings
from ailabber.model.notice import HOOK_LOG, body, summary
from ailabber.model.task import now_iso
from ailabber.storage import notices, statusfile
from ailabber.storage.spool import DONE, Spool

log = logging.getLogger("spoold")
MAX_SENDING = 2             # notices being sent at once
DESKTOP_TIMEOUT = 15.0      # seconds for notify-send or gdbus to hand the message over
KILL_GRACE = 5.0            # seconds between TERM and KILL for a hook past its timeout
STOP_WAIT = 20.0            # seconds a stopping spoold waits for the notices being sent


class Notices:
    def __init__(self, spool: Spool, settings: NoticeSettings) -> None:
        self.spool = spool
        self.settings = settings
        self._sending: dict[str, threading.Thread] = {}
        self._no_desktop_logged = False

    def configure(self, settings: NoticeSettings) -> None:
        """SIGHUP: the new settings apply to the notices not yet started."""
        self.settings = settings

    def ended(self, task_id: str, task_dir: Path) -> None:
        """The task in ``task_dir`` has reached its final state and is about to move to
        ``done/``: queue its notice, durably, before the move."""
        if self.settings.enabled() and notices.read_record(task_dir) is None:
            notices.queue(self.spool, task_id)

    def step(self) -> bool:
        """Start the queued notices of tasks now in ``done/``; True when some must wait for
        a free worker (the pass should come back soon)."""
        for task_id in [t for t, th in self._sending.items() if not th.is_alive()]:
            del self._sending[task_id]
        for task_id in notices.queued(self.spool):
            if task_id in self._sending:
                continue
            loc = self.spool.locate(task_id)
            if loc is None or not self.settings.enabled():
                notices.unqueue(self.spool, task_id)    # gone, or notices turned off since
                continue
            if loc[0] != DONE:
                continue          # still being retired: its directory is about to move
            if len(self._sending) >= MAX_SENDING:
                return True
            self._start(task_id, loc[1])
        return False

    def _start(self, task_id: str, task_dir: Path) -> None:
        st = statusfile.read_status(task_dir)
        if notices.read_record(task_dir) is not None or st is None:
            notices.unqueue(self.spool, task_id)    # begun before a stop: never again
            return
        record: dict[str, Any] = {"state": st.state, "started_at": now_iso(), "spoold_pid": os.getpid()}
        if self.settings.desktop_on():
            record["desktop"] = {}
        if self.settings.on_finish:
            record["hook"] = {"command": list(self.settings.on_finish)}
        notices.write_record(task_dir, record)        # from here on it is never sent again
        crash_point("spoold:notice_recorded")
        notices.unqueue(self.spool, task_id)
        status = {**st.to_dict(), "stage": DONE}
        th = threading.Thread(target=self._send, args=(task_id, task_dir, status, record, self.settings),
                              name=f"notice-{task_id}", daemon=True)   # close() bounds the wait
        self._sending[task_id] = th
        th.start()

    def _send(self, task_id: str, task_dir: Path, status: dict[str, Any], record: dict[str, Any],
              settings: NoticeSettings) -> None:
        try:
            if "desktop" in record:
                record["desktop"] = self._desktop(task_id, status)
            if "hook" in record:
                record["hook"].update(self._hook(task_id, task_dir, status, settings))
        except Exception as exc:       # a worker must never die silently with the record open
            log.exception("%s: notice failed", task_id)
            record["error"] = str(exc)
        record["finished_at"] = now_iso()
        try:
            notices.write_record(task_dir, record)
        except OSError as exc:
            log.warning("%s: cannot record the notice: %s", task_id, exc)

    # --- desktop -------------------------------------------------------------------------
    def _desktop(self, task_id: str, status: dict[str, Any]) -> dict[str, Any]:
        argv = desktop_command(summary(task_id, str(status.get("state"))), body(status))
        if argv is None:
            if not self._no_desktop_logged:
                log.debug("no notify-send or gdbus: desktop notifications are not sent")
                self._no_desktop_logged = True
            return {"at": now_iso(), "error": "neither notify-send nor gdbus is installed"}
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=DESKTOP_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.debug("%s: desktop notification: %s", task_id, exc)
            return {"at": now_iso(), "error": str(exc)}
        if r.returncode != 0:
            why = (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1]
            log.debug("%s: desktop notification not delivered: %s", task_id, why)
            return {"at": now_iso(), "error": why, "via": os.path.basename(argv[0])}
        return {"at": now_iso(), "sent": True, "via": os.path.basename(argv[0])}

    # --- hook ----------------------------------------------------------------------------
    def _hook(self, task_id: str, task_dir: Path, status: dict[str, Any],
              settings: NoticeSettings) -> dict[str, Any]:
        """Run the hook without a shell, the status as JSON on its standard input, its
        output into ``on_finish.log`` beside the record; its process group is ended at the
        timeout."""
        env = dict(os.environ, AILABBER_TASK_ID=task_id, AILABBER_STATE=str(status.get("state")),
                   AILABBER_TASK_DIR=str(task_dir))
        timeout = settings.on_finish_timeout
        with tempfile.TemporaryFile() as stdin, open(task_dir / HOOK_LOG, "wb") as out:
            stdin.write(json.dumps(status, indent=2, sort_keys=True).encode() + b"\n")
            stdin.seek(0)
            try:
                p = subprocess.Popen(settings.on_finish, stdin=stdin, stdout=out, stderr=subprocess.STDOUT,
                                     env=env, cwd=task_dir, start_new_session=True)
            except OSError as exc:
                log.warning("%s: on_finish hook cannot run: %s", task_id, exc)
                return {"finished_at": now_iso(), "error": f"{exc.strerror or exc}: {settings.on_finish[0]}"}
            try:
                code = p.wait(timeout)
            except subprocess.TimeoutExpired:
                code = _end_group(p)
                log.warning("%s: on_finish hook still running after %g s: stopped", task_id, timeout)
                return {"finished_at": now_iso(), "timed_out": True, "timeout": timeout, "exit_code": code}
        if code != 0:
            log.warning("%s: on_finish hook exited with %d (see %s)", task_id, code, task_dir / HOOK_LOG)
        else:
            log.info("%s: on_finish hook ran", task_id)
        return {"finished_at": now_iso(), "exit_code": code}

    def close(self) -> None:
        """At spoold's stop: let the notices being sent finish, for up to ``STOP_WAIT``
        seconds in all (within the 30 s systemd gives a stopping spoold).  A hook still
        running then is left to itself, and its record says spoold stopped before it ended."""
        deadline = time.monotonic() + STOP_WAIT
        for th in list(self._sending.values()):
            th.join(max(0.0, deadline - time.monotonic()))


def _end_group(p: subprocess.Popen[bytes]) -> int:
    """TERM to the hook's process group, KILL after a grace; its exit code."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, None)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            return p.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    return p.wait()


def desktop_command(title: str, text: str) -> list[str] | None:
    """notify-send where installed, else gdbus calling the notification service on the
    session bus (dbus-send cannot: it has no way to write Notify's empty array and
    dictionary); None when neither is there."""
    found = shutil.which("notify-send")
    if found:
        return [found, "--app-name=ailabber", "--", title, text]
    found = shutil.which("gdbus")
    if found:
        return [found, "call", "--session", "--timeout", str(int(DESKTOP_TIMEOUT) - 5),
                "--dest", "org.freedesktop.Notifications", "--object-path", "/org/freedesktop/Notifications",
                "--method", "org.freedesktop.Notifications.Notify",
                _gvariant("ailabber"), "uint32 0", "''", _gvariant(title), _gvariant(text),
                "@as []", "@a{sv} {}", "int32 -1"]
    return None


def _gvariant(s: str) -> str:
    """A string in GVariant text form (what gdbus parses its arguments as)."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"
