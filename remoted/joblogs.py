"""The task's logs as the job wrapper writes them: each byte once, and no more than the cap.

The commands' stdout and stderr go into ``output.log`` only, in arrival order, with the
stream of every chunk recorded in ``output.idx`` (format in ``ailabber/storage/logindex.py``);
``ailabber logs --stream stdout|stderr`` rebuilds one stream from the two.  ailabber's own
notes (start, each ``$ command``, the end state) go there too; the environment build
writes ``setup.log``.

One student's runaway ``print`` must not fill the shared disk, so the output the task
leaves in its logs (commands and environment setup together) is capped per task: past the
cap a log gets one ``[ailabber] output truncated ...`` line and nothing more of the
task's output, while the wrapper keeps draining the pipes so the job runs on undisturbed.
ailabber's own notes (a handful of lines per command) are still written.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ailabber.storage.logindex import INDEX, MARK, NOTE, OUTPUT_LOG, STDERR, STDOUT, record

SETUP_LOG = "setup.log"


def _append_fd(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)


def _append(path: Path) -> IO[bytes]:
    return open(_append_fd(path), "ab", buffering=0)


#: Writes (stream code, bytes) to a log: the stream is recorded only in output.idx.
Emit = Callable[[int, bytes], None]


class _Budget:
    """Bytes of task output still allowed in the task's logs (None: no cap)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0

    def take(self, n: int) -> int:
        """How many of ``n`` bytes may still be written."""
        if self.limit is None:
            return n
        allowed = max(0, min(n, self.limit - self.used))
        self.used += allowed
        return allowed


class _File:
    """One append-only log file that knows whether it ends a line and was truncated."""

    def __init__(self, path: Path) -> None:
        self.fh = _append(path)
        self.at_line_start = True
        self.kept = 0            # task output bytes written (notes not counted)
        self.truncated = False

    def write(self, data: bytes) -> None:
        if data:
            self.fh.write(data)
            self.at_line_start = data.endswith(b"\n")

    def marker(self, limit: int) -> bytes:
        """The one-line truncation marker."""
        self.truncated = True
        return (f"[ailabber] output truncated after {self.kept} bytes (limit {limit} bytes of log per task); "
                "the task keeps running, the rest of its output is discarded\n").encode()


class _Stream:
    """stdout or stderr of the running command: what the wrapper's read loop writes to."""

    def __init__(self, logs: Logs, stream: int) -> None:
        self.logs = logs
        self.stream = stream

    def write(self, data: bytes) -> int:
        self.logs.command_output(self.stream, data)
        return len(data)


class _SetupLog(io.TextIOBase):
    """setup.log as a text stream for the environment build, under the same budget."""

    def __init__(self, logs: Logs, path: Path) -> None:
        super().__init__()
        self.logs = logs
        self.file = _File(path)

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.logs.capped(self.file, NOTE, text.encode("utf-8", "replace"), lambda _s, d: self.file.write(d))
        return len(text)

    def close(self) -> None:
        self.file.fh.close()
        super().close()


class Logs:
    """output.log + output.idx (every chunk once, tagged with its stream) and setup.log.

    ``max_bytes`` is the per-task cap (None: none), from the job spec remoted froze."""

    def __init__(self, log_dir: Path, max_bytes: int | None) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.budget = _Budget(max_bytes)
        self.output = _File(log_dir / OUTPUT_LOG)
        self.index = _append(log_dir / INDEX)
        self.stdout = _Stream(self, STDOUT)
        self.stderr = _Stream(self, STDERR)
        self.setup = _SetupLog(self, log_dir / SETUP_LOG)

    def _output(self, stream: int, data: bytes) -> None:
        """Append to output.log, then its index record: the index never gets ahead."""
        self.output.write(data)
        self.index.write(record(stream, len(data)))

    def capped(self, f: _File, stream: int, data: bytes, emit: Emit) -> None:
        """Emit what the budget allows of ``data`` into ``f``, then the marker, once."""
        if f.truncated:
            return
        allowed = self.budget.take(len(data))
        if allowed:
            emit(stream, data[:allowed])
            f.kept += allowed
        if allowed < len(data):
            assert self.budget.limit is not None
            if not f.at_line_start:
                emit(stream, b"\n")         # ends the cut line in its own stream's view
            emit(MARK, f.marker(self.budget.limit))

    def command_output(self, stream: int, data: bytes) -> None:
        self.capped(self.output, stream, data, self._output)

    def note(self, text: str) -> None:
        """ailabber's own line in output.log; never counted against the cap."""
        line = (b"" if self.output.at_line_start else b"\n") + f"[ailabber] {text}\n".encode()
        self._output(NOTE, line)

    def close(self) -> None:
        for f in (self.output.fh, self.index, self.setup):
            f.close()
