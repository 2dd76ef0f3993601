"""The watch channel: one long-lived ssh session per spoold, running the gate's ``watch``
inside the same multiplexed connection as every rsync (``spoold/ssh.py``).

A reader thread turns the gate's lines into values (``ailabber/model/watch_lines.py``),
keeps what they say until the next pass takes it, and wakes the daemon's loop.  The
channel is only a hint: the pass still decides, and pulls everything when the channel
(re)opens, since whatever changed while it was closed went unannounced.

States, as the pass sees them:

- ``up``: the gate said ``ready``; news arrives as it happens.
- ``down``: not open, or it ended; it is reopened after a back-off (1 s after a channel
  that had worked for a minute, doubling for each one that did not, up to a minute)
  while spoold polls meanwhile.
- ``refused``: the session ended without ``ready`` and without an ssh error: the key is
  pinned with plain rrsync (no gate), which refuses ``watch``.  spoold polls
  (``PullClock``'s ``ADAPTIVE``) and asks again every ``RETRY_REFUSED`` seconds, so a
  gate the admin installs later is used without a restart.

spoold sends its set of unfinished tasks whenever it changes, and at least every
``PING_EVERY`` seconds; the gate answers each with ``watching <n>``.  A channel whose
answer does not come within ``ack_timeout`` seconds is stuck (a connection that died
without closing, a gate that stopped): it is killed and reopened.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Any

from ailabber.model.watch_lines import PING_EVERY, Ack, Beat, Changed, Ready, ids_line, parse_line

log = logging.getLogger("spoold")

UP, DOWN, REFUSED = "up", "down", "refused"
RETRY_REFUSED = 600.0
RETRY_MAX = 60.0
SSH_FAILED = 255          # ssh's own exit status: the connection, not the remote command
NOTHING = Changed(False, False, False, frozenset(), frozenset())


class WatchChannel:
    def __init__(self, argv: Sequence[str], wake: Callable[[], None], ack_timeout: float = 30.0):
        self.argv = list(argv)
        self.wake = wake
        self.ack_timeout = ack_timeout
        self.state = DOWN
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._news: Changed = NOTHING
        self._beat: dict[str, Any] | None = None
        self._ready = False
        self._ready_at = 0.0
        self._reopen = False          # a pass must pull everything: the channel (re)opened
        self._retry_at = 0.0
        self._failures = 0
        self._sent: frozenset[str] | None = None
        self._sent_at = 0.0
        self._acked = True
        self._stderr = b""

    # --- the session ---------------------------------------------------------------------
    def keep_open(self, task_ids: Iterable[str], now: float) -> None:
        """Open the channel if it is due, and tell it the tasks to watch (when they
        changed, or as a sign of life); kill it if it stopped answering."""
        proc = self._proc
        if proc is not None and proc.poll() is not None:
            self._ended(proc)
        if self._proc is None:
            if now >= self._retry_at:
                self._open(now)
            return
        if self.state == UP and not self._acked and now - self._sent_at > self.ack_timeout:
            log.warning("watch channel: no answer for %.0f s; reopening it", now - self._sent_at)
            self.close()
            self._retry_at = now
            return
        ids = frozenset(task_ids)
        if self.state == UP and (ids != self._sent or now - self._sent_at >= PING_EVERY):
            self._send(ids, now)

    def _open(self, now: float) -> None:
        try:
            proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
        except OSError as exc:
            log.warning("watch channel: cannot start ssh: %s", exc)
            self._retry_at = now + RETRY_MAX
            return
        log.debug("watch channel opened: %s", " ".join(self.argv))
        with self._lock:
            self._proc = proc
            self._ready = False
            self._sent = None
            self._acked = True
            self._stderr = b""
        assert proc.stdout is not None and proc.stderr is not None
        threading.Thread(target=self._read, args=(proc, proc.stdout), name="watch", daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(proc.stderr,), name="watch-stderr", daemon=True).start()

    def _send(self, ids: frozenset[str], now: float) -> None:
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        with self._lock:              # before the write: the answer may come before it returns
            self._sent, self._sent_at, self._acked = ids, now, False
        try:
            proc.stdin.write(ids_line(ids))
            proc.stdin.flush()
        except OSError:
            pass                      # it ended: the reader says so

    def _ended(self, proc: subprocess.Popen[bytes]) -> None:
        """The session ended: why, and when to try again."""
        code = proc.returncode
        with self._lock:
            was_ready, ready_for = self._ready, time.monotonic() - self._ready_at
            err = self._stderr.decode(errors="replace").strip().splitlines()
        self._proc = None
        why = err[-1] if err else f"exit status {code}"
        if not was_ready and code != SSH_FAILED:
            if self.state != REFUSED:
                log.info("the cluster does not offer change notices (%s): polling instead", why)
            self.state = REFUSED
            self._retry_at = time.monotonic() + RETRY_REFUSED
            return
        # A channel that worked for a while is reopened at once; one that keeps ending
        # (or never opens) is reopened less and less often: each opening is a session.
        self._failures = 0 if was_ready and ready_for > RETRY_MAX else self._failures + 1
        delay = min(RETRY_MAX, 2.0 ** self._failures)
        log.warning("watch channel ended (%s); reopening in %.0f s", why, delay)
        self.state = DOWN
        self._retry_at = time.monotonic() + delay

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if self.state == UP:
            self.state = DOWN
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            pass

    # --- what it said --------------------------------------------------------------------
    def take(self) -> tuple[bool, Changed, dict[str, Any] | None]:
        """(whether everything must be pulled, the news, the newest heartbeat) since the
        last call; consumed."""
        with self._lock:
            reopen, news, beat = self._reopen, self._news, self._beat
            self._reopen, self._news, self._beat = False, NOTHING, None
            if self._ready and self._proc is not None:
                self.state = UP
        return reopen, news, beat

    def _read(self, proc: subprocess.Popen[bytes], out: IO[bytes]) -> None:
        for raw in out:
            line = parse_line(raw.rstrip(b"\n"))
            with self._lock:
                if self._proc is not proc:
                    return               # closed meanwhile: its news is the next one's to say
                if isinstance(line, Ready):
                    self._ready = self._reopen = True
                    self._ready_at = time.monotonic()
                elif isinstance(line, Ack):
                    self._acked = True
                elif isinstance(line, Changed):
                    n = self._news
                    self._news = Changed(n.everything or line.everything, n.limits or line.limits,
                                         n.queue or line.queue, n.tasks | line.tasks, n.logs | line.logs)
                elif isinstance(line, Beat):
                    self._beat = line.data
            self.wake()
        proc.wait()
        self.wake()                       # the pass notices the end and schedules a reopen

    def _read_stderr(self, err: IO[bytes]) -> None:
        """Kept for the reason of an end, and logged: what the gate says about itself
        (a watch the kernel refused) is the admin's news."""
        for raw in err:
            with self._lock:
                self._stderr = (self._stderr + raw)[-2000:]
            log.info("watch channel: %s", raw.decode(errors="replace").strip()[:300])


def offered(argv: Sequence[str], timeout: float) -> str | None:
    """Whether the cluster answers ``watch`` (one short session, ended at once by closing
    its input): None if it does, else why not, in a few words (for ``doctor``)."""
    try:
        r = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"no answer within {timeout:.0f} s"
    except OSError as exc:
        return str(exc)
    if any(isinstance(parse_line(line), Ready) for line in r.stdout.splitlines()):
        return None
    err = r.stderr.decode(errors="replace").strip().splitlines()
    return err[-1] if err else f"exit status {r.returncode}"

