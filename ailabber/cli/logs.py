"""``ailabber logs ID [-f]``: the task's output as pulled back by spoold.

``output.log`` interleaves stdout, stderr and ailabber's own notes as a terminal would have
shown them; ``--stream`` picks one stream.  ``-f`` follows while the task runs.
"""

from __future__ import annotations

import argparse
import sys
import time

from ailabber.cli.common import EXIT_FAIL, find_task, get_spool

STREAMS = ("output", "stdout", "stderr", "setup")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("id")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("--stream", choices=STREAMS, default="output")
    p.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spool = get_spool()
    task_id, _stage, _d, st = find_task(spool, args.id)
    path = spool.outbox(task_id) / "logs" / f"{args.stream}.log"
    out = sys.stdout.buffer
    pos = 0
    announced = False
    try:
        while True:
            try:
                with open(path, "rb") as fh:
                    fh.seek(pos)
                    chunk = fh.read()
            except FileNotFoundError:
                chunk = b""
            if chunk:
                out.write(chunk)
                out.flush()
                pos += len(chunk)
            if not args.follow:
                if pos == 0:
                    print(f"no {args.stream} log yet for {task_id} ({st.state})", file=sys.stderr)
                    return EXIT_FAIL if not st.terminal else 0
                return 0
            if st.terminal and not chunk:
                return 0
            if not announced and pos == 0 and not st.terminal:
                print(f"[waiting for output of {task_id}: {st.state}{' / ' + st.reason if st.reason else ''}]",
                      file=sys.stderr)
                announced = True
            time.sleep(args.interval)
            st = spool.read_status(task_id) or st
    except KeyboardInterrupt:
        return 0
