"""When spoold pulls what remoted publishes: the decision alone, fed the time (pure).

Over ssh a pull costs the login node a session (sshd, the forced command and rsync's start,
some 40-60 ms of CPU) whatever it carries, so each pull carries everything small at once
(every unfinished task's status and events, ``queue.json``, ``limits.json``, and
``remoted.json`` when due: one rsync run) and the only question is *when*.  Three modes:

- ``WATCH``: the cluster's gate tells spoold what changed (``spoold/watchchannel.py``).
  Status news is pulled at once; log news at once for a task someone follows, otherwise
  on the same back-off as below (a job that prints all day costs a pull every
  ``QUIET_MAX`` seconds, not four a second).  Everything is pulled again every
  ``rescan`` seconds, in case a notification was missed.  The heartbeat travels in the
  channel: never pulled.
- ``ADAPTIVE``: ssh to a key pinned with plain rrsync (no gate): poll, fast right after a
  task was seen or changed state and while someone follows it (``logs -f``, ``wait``),
  then backing off to ``QUIET_MAX`` seconds for quiet tasks; ``limits.json`` rides along
  in each pull (rsync sends it only when it changed).
- ``POLL``: the local transport: no session to save (the remote root is a path, often a
  network filesystem where inotify sees no other host's writes), so every
  ``poll_interval`` as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from ailabber.model.watch_lines import Changed

POLL, ADAPTIVE, WATCH = "poll", "adaptive", "watch"
FAST_FOR = 30.0        # seconds after a task is seen or changes state: pulls at poll_interval
QUIET_MAX = 30.0       # the longest a quiet task waits between two pulls
LIMITS_EVERY = 60.0    # limits.json when no task is on the cluster (polling modes)
RETRY_AFTER = 5.0      # WATCH: news whose pull failed is pulled again after this long


class Due(NamedTuple):
    small: bool        # statuses, events, queue.json, limits.json (one rsync)
    beat: bool         # ... and remoted.json with them
    logs: bool         # the logs of every unfinished task (a second rsync: --append)

    def __bool__(self) -> bool:
        return self.small or self.logs


def backoff(quiet_for: float, fast: float) -> float:
    """How long a task that has been quiet for ``quiet_for`` seconds waits between pulls:
    ``fast`` at first, then a quarter of its quiet time, at most ``QUIET_MAX``."""
    if quiet_for < FAST_FOR:
        return fast
    return min(QUIET_MAX, max(fast, quiet_for / 4))


class PullClock:
    def __init__(self, poll_interval: float, rescan: float):
        self.poll_interval = poll_interval
        self.rescan = rescan                   # WATCH: everything again at least this often
        self.changed_at: dict[str, float] = {}
        self.last_small = float("-inf")
        self.last_logs = float("-inf")
        self.last_beat = float("-inf")
        self.news_small = False
        self.news_logs = False
        self.retry_at = float("-inf")

    # --- what happened -------------------------------------------------------------------
    def observe(self, active: Iterable[str], now: float) -> None:
        """The unfinished tasks now: a task seen for the first time counts as a change."""
        active = set(active)
        for task_id in active - self.changed_at.keys():
            self.changed_at[task_id] = now
        for task_id in self.changed_at.keys() - active:
            del self.changed_at[task_id]

    def changed(self, task_ids: Iterable[str], now: float) -> None:
        """These tasks' states changed (seen in the last pull)."""
        for task_id in task_ids:
            self.changed_at[task_id] = now

    def heard(self, news: Changed) -> None:
        """What the gate said changed."""
        if news.everything:
            self.news_small = self.news_logs = True
        if news.tasks or news.limits or news.queue:
            self.news_small = True
        if news.logs:
            self.news_logs = True

    def everything(self) -> None:
        """Pull everything at the next pass (the channel (re)opened, or a notice was lost)."""
        self.news_small = self.news_logs = True
        self.last_small = self.last_logs = float("-inf")

    # --- what is due ---------------------------------------------------------------------
    def interval(self, now: float, followed: bool) -> float:
        """Between two pulls of the unfinished tasks, while polling (ADAPTIVE)."""
        if followed or not self.changed_at:
            return self.poll_interval
        return min(backoff(now - at, self.poll_interval) for at in self.changed_at.values())

    def due(self, mode: str, now: float, followed: bool, beat_every: float) -> Due:
        active = bool(self.changed_at)
        if mode == POLL:
            small = now - self.last_small >= (self.poll_interval if active else LIMITS_EVERY)
            beat = now - self.last_beat >= beat_every
            return Due(small or beat, beat, active and small)
        if mode == ADAPTIVE:
            every = self.interval(now, followed) if active else LIMITS_EVERY
            small = now - self.last_small >= every
            logs = active and now - self.last_logs >= every
            # What is due within half an interval goes with what is due now: the passes
            # that pull stay one interval apart instead of drifting into two series.
            small = small or (logs and now - self.last_small >= every / 2)
            logs = logs or (active and small and now - self.last_logs >= every / 2)
            beat = now - self.last_beat >= beat_every - (every / 2 if small else 0.0)
            return Due(small or beat, beat, logs)
        news = now >= self.retry_at
        small = (self.news_small and news) or now - self.last_small >= self.rescan
        logs = active and (now - self.last_logs >= self.rescan
                           or (self.news_logs and news
                               and (followed or now - self.last_logs >= self.interval(now, False))))
        return Due(small, False, logs)

    def wait(self, mode: str, now: float, followed: bool, beat_every: float) -> float:
        """Seconds until something is due (the daemon's loop may wake sooner on news)."""
        active = bool(self.changed_at)
        if mode == POLL:
            nxt = min(self.last_small + (self.poll_interval if active else LIMITS_EVERY), self.last_beat + beat_every)
        elif mode == ADAPTIVE:
            every = self.interval(now, followed) if active else LIMITS_EVERY
            nxt = min(self.last_small + every, self.last_beat + beat_every)
        else:
            nxt = self.last_small + self.rescan
            if active:
                nxt = min(nxt, self.last_logs + self.rescan)
            if self.news_small:
                nxt = min(nxt, self.retry_at)
            if self.news_logs and active:
                nxt = min(nxt, max(self.retry_at, self.last_logs + self.interval(now, False)))
        return max(0.0, nxt - now)

    def pulled(self, due: Due, now: float, ok: bool = True) -> None:
        """``due`` was pulled, or the pull failed (``ok`` False): polling then waits its
        interval as after a pull, and news is kept and tried again ``RETRY_AFTER`` later."""
        if due.small:
            self.last_small = now
            self.news_small = self.news_small and not ok
        if due.beat:
            self.last_beat = now
        if due.logs:
            self.last_logs = now
            self.news_logs = self.news_logs and not ok
        self.retry_at = now if ok else now + RETRY_AFTER
