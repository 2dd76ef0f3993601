"""``ailabber wait ID``: block until the task ends; exit 0 only if it completed.

On a terminal it keeps one line up to date (the upload's bytes, rate and time left, then
the place in the queue and the start, then the running time against the limit); when its
output goes elsewhere (a file, a pipe, a CI log) it prints a plain line at each change of
state or reason instead.  At the end it says where the results are."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from ailabber.cli.common import EXIT_FAIL, find_task, get_spool, spoold_pid
from ailabber.cli.helptext import describe
from ailabber.model import render
from ailabber.model.task import COMPLETED, RUNNING
from ailabber.storage.following import following
from ailabber.storage.spool import DONE, RESULTS, Spool

#: How long, after the end, ``wait`` lets spoold bring the results back before it points at ``fetch``.
RESULTS_GRACE = 30.0


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, """\
Wait until a task ends and print how.  Exits 0 only if it completed, 1 for any other
end or when the timeout passes.""", """\
  ailabber wait 63d && ailabber fetch 63d
  ailabber wait 63d --timeout 600""")
    p.add_argument("id", help="task id, or a unique prefix or suffix of one")
    p.add_argument("--timeout", type=float, default=0, help="give up after this many seconds (0: never)")
    p.add_argument("--interval", type=float, default=0.25, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spool = get_spool()
    task_id, _stage, _d, _st = find_task(spool, args.id)
    return follow(spool, task_id, args.timeout, args.interval)


def follow(spool: Spool, task_id: str, timeout: float = 0, interval: float = 0.25,
           out: TextIO | None = None) -> int:
    """Show the task until it ends (or ``timeout`` seconds pass), then its end and where
    its results are; the exit code of ``wait``.  Meanwhile spoold pulls this task's news
    at once (``storage/following.py``), not on a quiet task's back-off."""
    with following(spool.root, task_id):
        return _follow(spool, task_id, timeout, interval, out)


def _follow(spool: Spool, task_id: str, timeout: float, interval: float, out: TextIO | None) -> int:
    from ailabber.model.progress import line
    from ailabber.workstation import taskview

    out = out or sys.stdout
    tty = out.isatty()
    deadline = time.monotonic() + timeout if timeout > 0 else None
    shown: tuple[str, str | None] | None = None
    limit: int | None = None
    width = _columns(out) if tty else 0
    while True:
        loc = spool.locate(task_id)
        st = spool.read_status(task_id)
        if loc is None or st is None:       # moving between stages right now: look again
            time.sleep(interval)
            continue
        if st.terminal:
            break
        if st.state == RUNNING and limit is None:
            limit = taskview.time_limit(loc[1], st)
        text = line(st, taskview.queue_entries(spool).get(task_id), limit, time.time(), terse=tty)
        if tty:
            out.write("\r" + text[: width - 1] + "\x1b[K")
            out.flush()
        elif (st.state, st.reason) != shown:
            out.write(f"{time.strftime('%H:%M:%S')} {text}\n")
            out.flush()
        shown = (st.state, st.reason)
        if deadline is not None and time.monotonic() > deadline:
            _end_line(out, tty)
            out.write(f"{task_id} is still {st.state} after {timeout:g}s\n")
            return EXIT_FAIL
        time.sleep(interval)
    _end_line(out, tty)
    detail = f" ({st.reason})" if st.reason else ""
    out.write(f"{task_id} {render.state_text(st)}{detail}" + (f": {st.message}" if st.message else "") + "\n")
    out.write(results_hint(spool, task_id, deadline) + "\n")
    return 0 if st.state == COMPLETED else EXIT_FAIL


def results_hint(spool: Spool, task_id: str, deadline: float | None) -> str:
    """Where the results are: once spoold has brought them back (it moves the task to
    ``done/``), that directory; otherwise the ``fetch`` that gets them."""
    grace = time.monotonic() + RESULTS_GRACE
    if deadline is not None:
        grace = min(grace, deadline)
    loc = spool.locate(task_id)
    while (loc is None or loc[0] != DONE) and time.monotonic() < grace and spoold_pid(spool) is not None:
        time.sleep(0.2)
        loc = spool.locate(task_id)
    short = task_id[-6:]
    if loc is None or loc[0] != DONE:
        return f"results: not brought back yet; ailabber fetch {short} gets them"
    if (loc[1] / RESULTS).is_dir():
        return f"results: {loc[1] / RESULTS}    (ailabber fetch {short} copies them with the logs)"
    return f"results: none came back; ailabber fetch {short} copies the logs"


def _end_line(out: TextIO, tty: bool) -> None:
    if tty:
        out.write("\r\x1b[K")


def _columns(out: TextIO) -> int:
    import os

    try:
        columns = os.get_terminal_size(out.fileno()).columns
    except (OSError, ValueError):
        columns = 0
    return columns if columns > 0 else 80      # a terminal that does not say its size
