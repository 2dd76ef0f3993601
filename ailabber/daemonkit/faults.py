"""Named crash points for tests: ``AILABBER_CRASH_AT=name[,name...]`` makes the process
SIGKILL itself when it reaches that point, exactly as a power cut or OOM kill would."""

from __future__ import annotations

import os
import signal


def crash_point(name: str) -> None:
    wanted = os.environ.get("AILABBER_CRASH_AT")
    if wanted and name in wanted.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
