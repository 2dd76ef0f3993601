"""Writes that fail for a while: a full disk, an exhausted quota, a device reporting errors.

Such a failure is not about any one task: every write of every pass fails until the admin
frees space, and then everything must go on where it stopped.  So remoted never acts on a
change it could not write (the next pass derives it again), never gives up on a task for
it, and says so once per kind of write, not once per task and pass.
"""

from __future__ import annotations

import errno
import logging

log = logging.getLogger("remoted")

#: Errors that say "no room": waiting (for the admin) fixes them.
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
#: Errors a later attempt may outlive: no space, or a device that hiccupped.
PASSING = NO_SPACE | {errno.EIO}

WAITING_FOR_SPACE = "the cluster's disk is full; waiting for space"
WAITING_FOR_DISK = "the cluster's disk reports errors; waiting for it to recover"


def passing(exc: BaseException) -> bool:
    """Whether ``exc`` is a write failure that waiting may cure (so a task must wait, not fail)."""
    return isinstance(exc, OSError) and exc.errno in PASSING


def plain(exc: OSError) -> str:
    """The failure in words for the student's status."""
    return WAITING_FOR_SPACE if exc.errno in NO_SPACE else WAITING_FOR_DISK


class WriteTrouble:
    """Remembers which kinds of write are failing, so that an outage is logged when it
    starts and when it ends, and the attempts in between only at debug level."""

    def __init__(self) -> None:
        self._failing: dict[str, str] = {}

    def failed(self, what: str, exc: OSError) -> None:
        """A write of kind ``what`` (e.g. "task records") failed with ``exc``."""
        if what in self._failing:
            log.debug("still cannot write %s: %s", what, exc)
            return
        self._failing[what] = str(exc)
        log.warning("cannot write %s: %s; retrying on every pass until it works", what, exc)

    def ok(self, what: str) -> None:
        """A write of kind ``what`` worked: if it had been failing, say that it recovered."""
        if self._failing.pop(what, None) is not None:
            log.info("writing %s works again", what)

    @property
    def failing(self) -> list[str]:
        """The kinds of write failing right now (for the status line)."""
        return sorted(self._failing)
