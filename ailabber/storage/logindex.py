"""A task's output stored once: ``output.log`` plus a compact stream index.

The job wrapper writes the commands' stdout and stderr, interleaved as a terminal would
show them, into ``output.log`` only; keeping separate ``stdout.log``/``stderr.log`` copies
as well would store every byte twice on the cluster and again on the workstation.  Which
stream each chunk came from goes into ``output.idx``: one record per chunk, in the order
of ``output.log``, each an unsigned LEB128 varint of ``length << 2 | stream`` (1 byte for
a chunk under 32 bytes, at most 3 for the wrapper's 64 KiB reads).  Both files only ever
grow, so spoold's ``rsync --append`` pulls just their new bytes, and ``ailabber logs -f``
follows the default view by reading one file.

``StreamReader`` rebuilds one stream from the two files incrementally.  Either file may be
a little ahead of the other (the wrapper writes the log before the record; a pull copies
one file after the other), so it only ever reads as far as both reach.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

OUTPUT_LOG = "output.log"
INDEX = "output.idx"

NOTE, STDOUT, STDERR, MARK = 0, 1, 2, 3   # MARK: a truncation marker, shown in every view
STREAMS = {"stdout": STDOUT, "stderr": STDERR}
MAX_RECORD = 10   # bytes of one varint (lengths fit in 64 bits)


def record(stream: int, length: int) -> bytes:
    """The index record for ``length`` bytes of ``stream`` appended to output.log."""
    value = length << 2 | stream
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode(data: bytes) -> tuple[list[tuple[int, int]], int]:
    """Complete records in ``data`` as (stream, length), and how many bytes they used (a
    torn last record, still being written or pulled, is left for the next read)."""
    records: list[tuple[int, int]] = []
    value = shift = used = 0
    for i, byte in enumerate(data):
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            if shift > 7 * MAX_RECORD:
                raise ValueError("output.idx is corrupt")
            continue
        records.append((value & 3, value >> 2))
        value = shift = 0
        used = i + 1
    return records, used


def read_from(path: Path, pos: int, limit: int = -1) -> bytes:
    """What ``path`` holds from byte ``pos`` on (at most ``limit`` bytes if given), or
    nothing while it does not exist (spoold has not pulled it yet).  The logs only ever
    grow, so a reader that adds the length of what it got to ``pos`` reads each byte once,
    however often it calls."""
    try:
        with open(path, "rb") as fh:
            fh.seek(pos)
            return fh.read(limit)
    except FileNotFoundError:
        return b""


class StreamReader:
    """The bytes of one stream (stdout or stderr) of ``log_dir``'s output, as they arrive.

    ``read_new`` returns what was added since the last call: for ``ailabber logs -f`` it is
    called again and again while spoold appends to both files."""

    def __init__(self, log_dir: Path, stream: int) -> None:
        self.log = log_dir / OUTPUT_LOG
        self.index = log_dir / INDEX
        self.stream = stream
        self.index_pos = 0             # bytes of output.idx decoded so far
        self.log_pos = 0               # start of the current record's unread bytes in output.log
        self.pending: deque[list[int]] = deque()   # [stream, bytes left] of decoded records

    def available(self) -> bool:
        return self.index.exists()

    def read_new(self) -> bytes:
        self._read_index()
        if not self.pending:
            return b""
        out = bytearray()
        try:
            fh = open(self.log, "rb")
        except FileNotFoundError:
            return b""
        with fh:
            end = fh.seek(0, 2)
            while self.pending and self.log_pos < end:
                rec = self.pending[0]
                n = min(rec[1], end - self.log_pos)
                if rec[0] in (self.stream, MARK):
                    fh.seek(self.log_pos)
                    out += fh.read(n)
                self.log_pos += n
                rec[1] -= n
                if rec[1] == 0:
                    self.pending.popleft()
        return bytes(out)

    def _read_index(self) -> None:
        records, used = decode(read_from(self.index, self.index_pos))
        self.index_pos += used
        self.pending.extend([stream, length] for stream, length in records if length)


def split_stream(log_dir: Path, stream: int) -> bytes:
    """All of one stream pulled so far (``ailabber fetch`` writes it as ``<stream>.log``)."""
    return StreamReader(log_dir, stream).read_new()
