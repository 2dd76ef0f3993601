"""``ailabber logs ID [-f]``: the task's output as pulled back by spoold.

``output.log`` interleaves stdout, stderr and ailabber's own notes as a terminal would have
shown them; ``--stream`` picks one stream.  stdout and stderr are not stored separately:
they are read out of ``output.log`` through its stream index (``ailabber/storage/logindex.py``),
or from ``stdout.log``/``stderr.log`` for tasks that ran on an older cluster.  ``-f``
follows while the task runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Protocol

from ailabber.cli.common import EXIT_FAIL, find_task, get_spool, holding
from ailabber.cli.helptext import describe
from ailabber.model.task import TaskStatus
from ailabber.storage.following import following
from ailabber.storage.logindex import STREAMS as INDEXED
from ailabber.storage.logindex import StreamReader, read_from
from ailabber.storage.spool import Spool

STREAMS = ("output", "stdout", "stderr", "setup")


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, """\
Print a task's output as spoold pulled it back so far: stdout and stderr interleaved,
with ailabber's own [ailabber] notes.  -f keeps printing until the task has ended.""", """\
  ailabber logs 63d
  ailabber logs -f 63d                          follow while it runs
  ailabber logs --stream stderr 63d             only what the commands wrote to stderr
  ailabber logs --stream setup 63d              the environment build""")
    p.add_argument("id", help="task id, or a unique prefix or suffix of one")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("--stream", choices=STREAMS, default="output")
    p.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


class Source(Protocol):
    def read_new(self) -> bytes: ...


class FileTail:
    """A log file read from where the last read stopped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pos = 0

    def read_new(self) -> bytes:
        chunk = read_from(self.path, self.pos)
        self.pos += len(chunk)
        return chunk


class OneStream:
    """stdout or stderr: from the index once there is one, from a separate file (older
    clusters) if that is what was pulled; decided when the first of them appears."""

    def __init__(self, log_dir: Path, stream: str) -> None:
        self.log_dir = log_dir
        self.stream = stream
        self.source: Source | None = None

    def read_new(self) -> bytes:
        if self.source is None:
            indexed = StreamReader(self.log_dir, INDEXED[self.stream])
            separate = self.log_dir / f"{self.stream}.log"
            if indexed.available():
                self.source = indexed
            elif separate.exists():
                self.source = FileTail(separate)
            else:
                return b""
        return self.source.read_new()


def source_for(log_dir: Path, stream: str) -> Source:
    return OneStream(log_dir, stream) if stream in INDEXED else FileTail(log_dir / f"{stream}.log")


def run(args: argparse.Namespace) -> int:
    spool = get_spool()
    task_id, _stage, _d, st = find_task(spool, args.id)
    return holding(spool, task_id, lambda: show(spool, task_id, st, args))


def show(spool: Spool, task_id: str, st: TaskStatus, args: argparse.Namespace) -> int:
    if args.follow and not st.terminal:
        with following(spool.root, task_id):        # spoold pulls this task's news at once meanwhile
            return _show(spool, task_id, st, args)
    return _show(spool, task_id, st, args)


def _show(spool: Spool, task_id: str, st: TaskStatus, args: argparse.Namespace) -> int:
    source = source_for(spool.outbox(task_id) / "logs", args.stream)
    out = sys.stdout.buffer
    shown = 0
    announced = False
    try:
        while True:
            chunk = source.read_new()
            if chunk:
                out.write(chunk)
                out.flush()
                shown += len(chunk)
            if not args.follow:
                if shown == 0:
                    print(f"no {args.stream} log yet for {task_id} ({st.state})", file=sys.stderr)
                    return EXIT_FAIL if not st.terminal else 0
                return 0
            if st.terminal and not chunk:
                return 0
            if not announced and shown == 0 and not st.terminal:
                print(f"[waiting for output of {task_id}: {st.state}{' / ' + st.reason if st.reason else ''}]",
                      file=sys.stderr)
                announced = True
            time.sleep(args.interval)
            st = spool.read_status(task_id) or st
    except KeyboardInterrupt:
        return 0
