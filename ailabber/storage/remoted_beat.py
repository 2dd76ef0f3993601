"""remoted's sign of life as the student's side sees it: ``remoted.json``.

remoted rewrites ``remoted.json`` in each user's area and says in it how often it does
(``every``).  spoold pulls the file into the spool, so the CLI can tell a task that waits
for a live remoted from one that waits for a stopped one without touching the network;
``doctor`` (spoold's ``--check``) pulls a fresh copy.  remoted counts as stopped after a
few missed beats of its own interval, not after a fixed time: an admin who slows remoted
down makes its beats rarer, and a fixed two minutes would both miss a stop and cry wolf.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

from ailabber.model.render import duration
from ailabber.storage import fsutil

REMOTED_BEAT = "remoted.json"

#: The interval of a remoted that did not yet write ``every`` into the file.
DEFAULT_EVERY = 30.0
#: Beats remoted may miss (a long pass, a slow disk) before it counts as stopped.
MISSED_BEATS = 3

#: What a student can do about a stopped remoted, in one clause.
WHAT_TO_DO = "ask the course admin to start it (on a single machine: ailabber up)"


class RemotedBeat(NamedTuple):
    at: float                 # remoted's clock, seconds since the epoch
    every: float              # seconds between two beats, as remoted says
    pid: int | None
    scheduler: str | None
    data: dict[str, Any]      # the whole file, for what only some readers need

    @classmethod
    def from_dict(cls, data: Any) -> RemotedBeat | None:
        """None for anything that is not a beat: a torn or foreign file proves nothing."""
        if not isinstance(data, dict):
            return None
        try:
            at = float(data["at"])
            every = float(data.get("every") or DEFAULT_EVERY)
        except (KeyError, TypeError, ValueError):
            return None
        pid = data.get("pid")
        scheduler = data.get("scheduler")
        return cls(at, max(every, 0.1), pid if isinstance(pid, int) else None,
                   scheduler if isinstance(scheduler, str) else None, data)

    def age(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.at)

    def stopped(self, now: float | None = None, lag: float = 0.0) -> bool:
        """Whether remoted missed more than a few beats.  ``lag``: how much older than the
        remote file a copy may be (spoold pulls it now and then)."""
        return self.age(now) > MISSED_BEATS * self.every + lag

    def stopped_text(self, now: float | None = None) -> str:
        """One line: that remoted is not running, since when, and what to do."""
        return (f"remoted is not running: its last heartbeat was {duration(self.age(now))} ago "
                f"(it beats every {duration(self.every)}); {WHAT_TO_DO}")


def read_beat(path: Path) -> RemotedBeat | None:
    return RemotedBeat.from_dict(fsutil.read_json_or_none(path))


def pulled(spool_root: Path) -> RemotedBeat | None:
    """The copy spoold last pulled into the spool, if any."""
    return read_beat(spool_root / REMOTED_BEAT)


def pull_every(beat: RemotedBeat | None) -> float:
    """How often spoold pulls the file: once per beat, so that its copy is at most one
    interval behind."""
    return beat.every if beat is not None else DEFAULT_EVERY


def stopped_copy(spool_root: Path, rescan_interval: float) -> RemotedBeat | None:
    """The pulled heartbeat if it shows remoted stopped, allowing for the copy being up to
    one pull (and one spoold pass) behind.  Only meaningful while spoold runs and pulls."""
    beat = pulled(spool_root)
    if beat is None or not beat.stopped(lag=pull_every(beat) + rescan_interval):
        return None
    return beat
