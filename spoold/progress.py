"""An upload's progress, from rsync's running figures into the status of the tasks it
carries, so that ``status``, ``list`` and ``wait`` show bytes sent, rate and time left.

rsync prints its overall progress (``--info=progress2``) about once a second and, for a
batch, one ``--out-format`` line per file it finished.  ``UploadProgress`` reads both as
they come and writes the figures into each task's ``status.json`` (atomically, without an
event: progress is not a state change) at most once per ``PUBLISH_EVERY`` seconds, so a
long upload costs one small write a second, not one per line of rsync's output.
"""

from __future__ import annotations

import codecs
import os
import re
import selectors
import subprocess
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from ailabber.model.task import now_iso
from ailabber.storage import statusfile
from ailabber.storage.manifest import manifest_files

PUBLISH_EVERY = 1.0
#: The rate is measured over this many seconds of recent progress, and not before
#: ``RATE_AFTER`` seconds (rsync's first figures come in bursts).
RATE_WINDOW = 10.0
RATE_AFTER = 2.0
#: ``--info=progress2``: "      1,081,344  21%    1.00MB/s    0:00:03 (xfr#1, to-chk=1/2)"
#: rsync ends such a line only when it prints the next one, so a whole one (up to the time
#: left) is read before its end arrives.
_PROGRESS = re.compile(r"\s*([\d,]+)\s+\d+%\s+\S+/s\s+\d+:\d\d:\d\d")
#: The status fields this module writes (``upload_bytes_sent`` is spoold's final figure too).
FIELDS = ("upload_bytes_sent", "upload_rate", "upload_eta_s", "upload_progress_at")


class UploadProgress:
    """Progress of one rsync run that uploads the tasks in ``task_dirs`` (one, or a batch).

    A single task's figure is rsync's overall one; in a batch each task counts the files
    of its own that rsync has finished, while the rate and the time left are the batch's
    (its tasks are committed together, after the last file)."""

    def __init__(self, task_dirs: dict[str, Path], totals: dict[str, int],
                 clock: Callable[[], float] = time.monotonic, every: float = PUBLISH_EVERY):
        self.task_dirs = task_dirs
        self.totals = totals
        self.clock = clock
        self.every = every
        self.overall = 0                                  # bytes rsync has gone through
        self.done: dict[str, int] = dict.fromkeys(task_dirs, 0)
        self._samples: deque[tuple[float, int]] = deque([(clock(), 0)])
        self._last_publish = clock()
        self._published: dict[str, int] = {}
        self._partial = ""

    @classmethod
    def of(cls, stage_dir: Path, batch: list[str]) -> UploadProgress:
        """The progress of uploading the tasks ``batch`` of ``stage_dir``, each sized from
        its manifest."""
        from ailabber.storage.spool import MANIFEST

        totals = {t: sum(manifest_files(stage_dir / t / MANIFEST).values()) for t in batch}
        return cls({t: stage_dir / t for t in batch}, totals)

    # --- reading rsync's output ----------------------------------------------------------
    def feed(self, text: str) -> None:
        """A chunk of rsync's standard output, as it arrives (lines end in \\r or \\n)."""
        pieces = re.split(r"[\r\n]", self._partial + text)
        self._partial = pieces.pop()
        for piece in pieces:
            self._read(piece)
        if _PROGRESS.match(self._partial):
            self._read(self._partial)
        if self.clock() - self._last_publish >= self.every:
            self.publish()

    def _read(self, piece: str) -> None:
        m = _PROGRESS.match(piece)
        if m:
            self.overall = int(m.group(1).replace(",", ""))
            if self._samples[-1][1] != self.overall:
                self._samples.append((self.clock(), self.overall))
            return
        rest, _, length = piece.rpartition("|")
        name, _, sent = rest.rpartition("|")
        task_id = name.split("/", 1)[0]
        if task_id in self.done and sent.isdigit() and length.isdigit() and not name.endswith("/"):
            self.done[task_id] += min(int(sent), int(length))

    # --- the figures ---------------------------------------------------------------------
    def rate(self) -> float | None:
        """Bytes per second over the last ``RATE_WINDOW`` seconds, up to now (a stall
        lowers it); None while too little is known."""
        now = self.clock()
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW:
            self._samples.popleft()
        (t0, b0), (_t1, b1) = self._samples[0], self._samples[-1]
        return (b1 - b0) / (now - t0) if now - t0 >= RATE_AFTER and b1 > b0 else None

    def sent(self, task_id: str) -> int:
        figure = self.overall if len(self.task_dirs) == 1 else self.done[task_id]
        return min(figure, self.totals.get(task_id, figure))

    def seconds_left(self, rate: float | None) -> int | None:
        """At most this long: files rsync finds already there are skipped, never sent."""
        if not rate:
            return None
        return int(max(0, sum(self.totals.values()) - self.overall) / rate + 0.999)

    def finished(self) -> dict[str, int]:
        """The fields that close the figures of a task whose upload went through."""
        return {"upload_eta_s": 0} if self._published else {}

    def publish(self) -> None:
        """Write the figures of each task whose bytes moved into its status."""
        self._last_publish = self.clock()
        rate = self.rate()
        left = self.seconds_left(rate)
        for task_id, task_dir in self.task_dirs.items():
            sent = self.sent(task_id)
            if self._published.get(task_id) == sent and len(self.task_dirs) > 1:
                continue
            st = statusfile.read_status(task_dir)
            if st is None or st.terminal or st.reason != "uploading":
                continue
            st.extra.update(upload_bytes_sent=sent, upload_rate=None if rate is None else round(rate),
                            upload_eta_s=left, upload_progress_at=now_iso())
            statusfile.record(task_dir, st, None)
            self._published[task_id] = sent


def stream_output(proc: subprocess.Popen[str], on_output: Callable[[str], None], timeout: float
                  ) -> tuple[str, str]:
    """``proc.communicate`` that hands each chunk of standard output to ``on_output`` as it
    arrives; raises ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
    assert proc.stdout is not None and proc.stderr is not None
    deadline = time.monotonic() + timeout
    out: list[str] = []
    err: list[str] = []
    decoders = {proc.stdout.fileno(): (codecs.getincrementaldecoder("utf-8")("replace"), out),
                proc.stderr.fileno(): (codecs.getincrementaldecoder("utf-8")("replace"), err)}
    with selectors.DefaultSelector() as sel:
        for fd in decoders:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(proc.args, timeout)
            for key, _events in sel.select(min(left, 1.0)):
                fd = int(key.fd)
                data = os.read(fd, 65536)
                decoder, sink = decoders[fd]
                text = decoder.decode(data, final=not data)
                if not data:
                    sel.unregister(fd)
                if text:
                    sink.append(text)
                    if sink is out:
                        on_output(text)
    proc.wait(max(0.0, deadline - time.monotonic()) or None)
    return "".join(out), "".join(err)
