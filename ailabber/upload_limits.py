"""Upload size guard: admin-set limits on bytes and file count, checked on the student's
machine at ``submit`` (with the largest files named) and again by remoted.

The cluster publishes its limits as ``limits.json`` in each user's area; spoold pulls it
into the spool, so the CLI knows them without touching the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from ailabber import fsutil

LIMITS_FILE = "limits.json"


class UploadLimits(NamedTuple):
    max_bytes: int | None = None
    max_files: int | None = None

    def tighter(self, other: UploadLimits) -> UploadLimits:
        def low(a: int | None, b: int | None) -> int | None:
            return b if a is None else a if b is None else min(a, b)

        return UploadLimits(low(self.max_bytes, other.max_bytes), low(self.max_files, other.max_files))

    def to_dict(self) -> dict[str, Any]:
        return {"max_upload_bytes": self.max_bytes, "max_upload_files": self.max_files}

    @classmethod
    def from_dict(cls, d: Any) -> UploadLimits:
        if not isinstance(d, dict):
            return cls()

        def num(v: Any) -> int | None:
            return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None

        return cls(num(d.get("max_upload_bytes")), num(d.get("max_upload_files")))

    def problem(self, total_bytes: int, file_count: int) -> str | None:
        """What is over the limit, in words, or None."""
        from ailabber.render import size

        if self.max_bytes is not None and total_bytes > self.max_bytes:
            return f"{size(total_bytes)} is over the upload limit of {size(self.max_bytes)}"
        if self.max_files is not None and file_count > self.max_files:
            return f"{file_count} files is over the upload limit of {self.max_files} files"
        return None


def published(spool_root: Path) -> UploadLimits:
    return UploadLimits.from_dict(fsutil.read_json_or_none(spool_root / LIMITS_FILE))
