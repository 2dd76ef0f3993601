"""``ailabber admin usage``: per student, tasks by final state, GPU-hours, CPU-hours,
wall time and disk over a window, and a total line; from remoted's records alone, so
the same under the local scheduler and Slurm.  The rules are ``accounting``'s.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from datetime import datetime, timedelta

from ailabber.cli.common import EXIT_USAGE, CliError
from ailabber.cli.helptext import describe
from ailabber.model.render import duration, size, table
from remoted.admin.accounting import FINAL_STATES, StudentUsage, Window, total, usage
from remoted.admin.cli import course, staff
from remoted.admin.course import disk_figures

CSV_FIELDS = ("user", *FINAL_STATES, "gpu_hours", "cpu_hours", "wall_hours", "disk_bytes")


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, """\
Per student: tasks that ended in the window by final state, GPU-hours, CPU-hours and
wall time of their jobs inside the window (a run across an edge is cut at it), and the
disk their area uses; then a total line.  DATE is 2026-11-30 (a whole day: --until
includes it) or an ISO time such as 2026-11-30T14:00 or 2026-11-30T14:00:00+01:00; without
an offset it is the cluster's local time.""", """\
  ailabber admin usage
  ailabber admin usage --since 2026-11-23 --until 2026-11-29
  ailabber admin usage --since 2026-11-30T08:00 --csv > today.csv""")
    p.add_argument("--since", metavar="DATE", help="from this day or time (default: the first task)")
    p.add_argument("--until", metavar="DATE", help="up to the end of this day, or to this time (default: now)")
    p.add_argument("--csv", action="store_true", help="comma-separated values, hours as decimals, with a header")
    p.set_defaults(func=run)


def parse_when(text: str, option: str, end_of_day: bool = False) -> float:
    """``text`` as epoch seconds: a date (its start, or with ``end_of_day`` the start of
    the next day) or an ISO time; CliError naming ``option`` otherwise."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(f"{option}: {text!r} is neither a date (2026-11-30) nor an ISO time "
                       f"(2026-11-30T14:00)", EXIT_USAGE) from None
    if end_of_day and not any(c in text.strip() for c in "T :"):     # a date alone: through that day
        when += timedelta(days=1)
    return when.timestamp()       # naive: local time


def window_of(since: str | None, until: str | None) -> Window:
    w = Window(None if since is None else parse_when(since, "--since"),
               None if until is None else parse_when(until, "--until", end_of_day=True))
    if w.since is not None and w.until is not None and w.until <= w.since:
        raise CliError(f"--until: {until} is not after --since {since}", EXIT_USAGE)
    return w


def run(args: argparse.Namespace) -> int:
    window = window_of(args.since, args.until)
    who = staff(args)
    lines = usage(course(who), window, time.time(), disk_figures(who.root))
    all_of = total(lines)
    if args.csv:
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(CSV_FIELDS)
        out.writerows(_csv_row(x) for x in [*lines, all_of])
        return 0
    print(_heading(window))
    print(table(("USER", *(s.upper() for s in FINAL_STATES), "GPU-H", "CPU-H", "WALL", "DISK"),
                [_row(x) for x in [*lines, all_of]]))
    if any(x.disk is None for x in lines):
        print("DISK: '-' where remoted has not measured the area yet, or never does (limits.max_disk_bytes: null)")
    return 0


def _heading(w: Window) -> str:
    def when(t: float | None, default: str) -> str:
        return default if t is None else time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(t))
    return f"usage from {when(w.since, 'the first task')} until {when(w.until, 'now')}"


def _row(x: StudentUsage) -> tuple[str, ...]:
    disk = "-" if x.disk is None else size(x.disk.bytes) + ("" if x.disk.complete else "+")
    return (x.user, *(str(x.ended[s]) for s in FINAL_STATES), f"{x.gpu_hours:.2f}", f"{x.cpu_hours:.2f}",
            duration(x.wall_s), disk)


def _csv_row(x: StudentUsage) -> tuple[object, ...]:
    return (x.user, *(x.ended[s] for s in FINAL_STATES), f"{x.gpu_hours:.4f}", f"{x.cpu_hours:.4f}",
            f"{x.wall_s / 3600:.4f}", "" if x.disk is None else x.disk.bytes)
