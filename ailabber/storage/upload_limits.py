"""Admin-set limits on what one student may put on the cluster, and the student's usage.

Per upload: bytes and file count, checked on the student's machine at ``submit`` (with the
largest files named), by spoold before sending, and again by remoted.  Per user: the bytes
kept on the cluster (tasks and their outboxes, measured by remoted), the log bytes of one
task (enforced by the job wrapper) and the uploads in flight (sent, not yet accepted).

The cluster publishes these limits, with the user's measured usage, as ``limits.json`` in
each user's area; spoold pulls it into the spool, so the CLI knows them without touching
the network and refuses what the cluster would refuse before anything is sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ailabber.storage import fsutil

if TYPE_CHECKING:      # imported where limits.json is read for it: every verb starts faster
    from ailabber.model.joblimits import JobLimits

LIMITS_FILE = "limits.json"

#: Course defaults for the per-user caps (``limits`` in remoted's YAML overrides them; an
#: explicit ``null`` there means no cap).  A course of ~100 students fits in 2 TB.
DEFAULT_MAX_DISK_BYTES = 20 * 1024**3     # tasks + outbox of one user on the cluster
DEFAULT_MAX_LOG_BYTES = 100 * 1024**2     # output one task may leave in its logs
DEFAULT_MAX_INCOMING = 20                 # uploads of one user in flight at once

#: limits.json keys, in the order ``whoami`` shows them.
_KEYS = ("max_upload_bytes", "max_upload_files", "max_disk_bytes", "max_log_bytes", "max_incoming_uploads")
USED_KEY = "disk_used_bytes"


def _low(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


class UploadLimits(NamedTuple):
    max_bytes: int | None = None         # one upload's bytes
    max_files: int | None = None         # one upload's files
    max_disk_bytes: int | None = None    # bytes one user may keep on the cluster (tasks + outbox)
    max_log_bytes: int | None = None     # log bytes per task
    max_incoming: int | None = None      # uploads in flight per user
    disk_used_bytes: int | None = None   # not a limit: the user's usage as remoted last measured it

    def tighter(self, other: UploadLimits) -> UploadLimits:
        """The lower of each pair of limits; the usage known to either side."""
        used = [u for u in (self.disk_used_bytes, other.disk_used_bytes) if u is not None]
        low = [_low(a, b) for a, b in zip(self[:5], other[:5])]
        return UploadLimits(low[0], low[1], low[2], low[3], low[4], max(used) if used else None)

    def to_dict(self) -> dict[str, Any]:
        return {**dict(zip(_KEYS, self[:5])), USED_KEY: self.disk_used_bytes}

    @classmethod
    def from_dict(cls, d: Any) -> UploadLimits:
        """Anything malformed counts as "no limit known": the cluster checks again anyway."""
        if not isinstance(d, dict):
            return cls()

        def num(v: Any, lowest: int = 1) -> int | None:
            return v if isinstance(v, int) and not isinstance(v, bool) and v >= lowest else None

        caps = [num(d.get(k)) for k in _KEYS]
        return cls(caps[0], caps[1], caps[2], caps[3], caps[4], num(d.get(USED_KEY), 0))

    def problem(self, total_bytes: int, file_count: int) -> str | None:
        """What is over the per-upload limits, in words, or None."""
        from ailabber.model.render import size

        if self.max_bytes is not None and total_bytes > self.max_bytes:
            return f"{size(total_bytes)} is over the upload limit of {size(self.max_bytes)}"
        if self.max_files is not None and file_count > self.max_files:
            return f"{file_count} files is over the upload limit of {self.max_files} files"
        return None

    def quota_problem(self, adding: int, used: int | None = None) -> str | None:
        """Whether ``adding`` bytes on disk would take the user over ``max_disk_bytes``,
        in words naming the numbers; None when it fits or nothing is known."""
        from ailabber.model.render import size

        used = self.disk_used_bytes if used is None else used
        if self.max_disk_bytes is None or used is None or used + adding <= self.max_disk_bytes:
            return None
        return (f"this upload needs {size(adding)} on the cluster, and you already keep {size(used)} there "
                f"(tasks and logs); that is over your quota of {size(self.max_disk_bytes)} "
                f"({size(max(0, self.max_disk_bytes - used))} left); ask the course admin to remove old tasks")

    def remaining(self) -> int | None:
        """Bytes still free under the quota, as last published."""
        if self.max_disk_bytes is None or self.disk_used_bytes is None:
            return None
        return max(0, self.max_disk_bytes - self.disk_used_bytes)


def published(spool_root: Path) -> UploadLimits:
    return UploadLimits.from_dict(fsutil.read_json_or_none(spool_root / LIMITS_FILE))


def published_limits(spool_root: Path) -> tuple[UploadLimits, JobLimits | None]:
    """limits.json read once: the upload limits, and the job limits with the current use
    (``ailabber.model.joblimits``); None for those before spoold first pulled the file,
    when nothing is known to check a task against."""
    doc = fsutil.read_json_or_none(spool_root / LIMITS_FILE)
    if doc is None:
        return UploadLimits(), None
    from ailabber.model.joblimits import JobLimits

    return UploadLimits.from_dict(doc), JobLimits.from_dict(doc)
