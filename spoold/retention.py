"""spoold's own retention: the ``retention`` policy of spoold.yaml, applied to the local
spool when spoold starts, after a reload, and about once an hour.

The same rules as ``ailabber clean`` (``storage/cleaning.py``): only finished tasks whose
logs and results are back, never one another command is reading.  It runs inside spoold's
pass, so it never overlaps spoold's own pulls of a task's results.
"""

from __future__ import annotations

import logging
import os
import time

from ailabber.model.render import size
from ailabber.model.retention import freed_total
from ailabber.model.retention_policy import Policy
from ailabber.storage import statusfile
from ailabber.storage.cleaning import clean
from ailabber.storage.spool import Spool
from ailabber.storage.trash import empty_trash

log = logging.getLogger("spoold")
RETENTION_EVERY = 3600.0


class Retention:
    def __init__(self, spool: Spool, policy: Policy | None) -> None:
        self.spool = spool
        self.policy = policy
        self._last: float | None = None      # None: due at the next pass

    def reconfigure(self, policy: Policy | None) -> None:
        """A reload applies the new policy at once."""
        self.policy = policy
        self._last = None

    def maybe_run(self) -> None:
        now = time.time()
        if self._last is not None and now - self._last < RETENTION_EVERY:
            return
        self._last = now
        try:
            if self.policy is None:
                empty_trash(self.spool)          # still finish what a crashed removal began
                return
            outcome = clean(self.spool, self.policy, now)
        except OSError as exc:
            log.warning("retention pass stopped: %s", exc)
            return
        for r in outcome.removed:
            log.info("%s: removed from the spool by retention (%s), %s freed", r.id, r.why, size(r.freed or 0))
        for task_id, why in outcome.left:
            log.debug("%s: kept by retention: %s", task_id, why)
        if outcome.removed:
            log.info("retention removed %d finished task(s), %s freed", len(outcome.removed),
                     size(freed_total(outcome.removed)))


def drop_status_mirror(spool: Spool, task_id: str) -> None:
    """Once a task is in ``done/``, its record holds everything the remote status and
    events said: the copies pulled into ``outbox/<id>/`` to merge them are dropped (the
    logs stay there)."""
    for name in (statusfile.STATUS, statusfile.EVENTS):
        try:
            os.unlink(spool.outbox(task_id) / name)
        except FileNotFoundError:
            pass
