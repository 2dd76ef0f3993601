"""The job's metrics file: where ``$AILABBER_METRICS`` points, and one word when it grows
past the task's log cap.

The job appends JSON lines to it itself, in the task's log directory, so spoold's
appending log pulls bring it back while the job runs and ``ailabber metrics`` can show it.
The wrapper never sees those writes, so the log cap (``max_log_bytes``), which it applies
to the output it copies, cannot cut this file: it is bounded, like any file the job
writes, by the student's disk cap.  Shortening it behind the job's back would not do
either: a pull appends whatever lies past the length it already copied, so a file cut and
grown again would arrive garbled.  What the wrapper does is say so once in
``output.log`` when the file passes the cap, so the student learns to log less often
before the quota runs out.
"""

from __future__ import annotations

import os

from ailabber.model.remote_layout import METRICS

METRICS_VAR = "AILABBER_METRICS"
#: Seconds between two looks at the file's size while a command runs.
CHECK_EVERY = 5.0


def metrics_path(log_dir: str) -> str:
    return os.path.join(log_dir, METRICS)


class SizeWatch:
    """Whether the metrics file has passed ``limit`` bytes, looked at every few seconds,
    said once."""

    def __init__(self, log_dir: str, limit: int | None) -> None:
        self.path = metrics_path(log_dir)
        self.limit = limit
        self.next_look = 0.0
        self.said = False

    def note(self, now: float) -> str | None:
        """The line for output.log the first time the file is seen over the cap, else None."""
        if self.limit is None or self.said or now < self.next_look:
            return None
        self.next_look = now + CHECK_EVERY
        try:
            size = os.lstat(self.path).st_size
        except OSError:
            return None
        if size <= self.limit:
            return None
        self.said = True
        return (f"${METRICS_VAR} ({METRICS}) has grown to {size} bytes, past the log limit of {self.limit} bytes "
                "per task; it is kept whole and counts against your disk quota: write metrics less often")
