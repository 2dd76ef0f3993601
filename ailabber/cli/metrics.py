"""``ailabber metrics ID``: the numbers a job appended to ``$AILABBER_METRICS``.

The file is pulled back with the task's logs (``spool/outbox/<id>/logs/metrics.jsonl``),
so this reads the local spool only and works while the daemons or the network are down;
it shows what spoold pulled last.  The file's bytes are read once, parsed by the pure
``ailabber.model.metrics`` and drawn by ``ailabber.model.chart``.
"""

from __future__ import annotations

import argparse
import sys

from ailabber.cli.common import EXIT_FAIL, EXIT_USAGE, CliError, find_task, get_spool, print_json
from ailabber.cli.helptext import describe
from ailabber.model.metrics import Metrics, parse
from ailabber.model.remote_layout import LOGS, METRICS

DEFAULT_HEIGHT = 8


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, """\
Show the metrics a task's job wrote: the last value of each series and a chart of it.

The job appends one JSON object per line to the file named by $AILABBER_METRICS, e.g.
{"step": 10, "loss": 0.3, "acc": 0.91}: each key but "step" is a series, drawn against
"step" (or the line number where a line has none).  The file travels back with the
logs while the task runs; lines that cannot be read (a partial last line, not JSON, a
value that is not a finite number) are skipped and counted.""", """\
  ailabber metrics b7tstc                       every series, charted to the terminal's width
  ailabber metrics b7tstc --series loss         only the loss
  ailabber metrics b7tstc --json                the points as JSON, for a script
  watch -n 5 ailabber metrics b7tstc --series loss acc""")
    p.add_argument("id", help="task id, or a unique prefix or suffix of one")
    p.add_argument("--series", nargs="+", action="extend", metavar="NAME", help="only these series (repeatable)")
    p.add_argument("--json", action="store_true", help="print the series and their points as JSON")
    p.add_argument("--height", type=int, default=DEFAULT_HEIGHT, help=f"rows per chart (default {DEFAULT_HEIGHT})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.height < 2:
        raise CliError(f"--height: must be a whole number >= 2, got {args.height}", EXIT_USAGE)
    spool = get_spool()
    task_id, _stage, _d, st = find_task(spool, args.id)
    path = spool.outbox(task_id) / LOGS / METRICS
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    m = parse(data)
    if args.series:
        missing = [name for name in args.series if name not in m.series]
        if missing and m.series:
            from ailabber.model.suggest import closest

            near = closest(missing[0], list(m.series))
            hint = f"; did you mean '{near}'?" if near else ""
            raise CliError(f"--series: {task_id} has no series {missing[0]!r}{hint} "
                           f"(it has: {', '.join(m.series)})", EXIT_USAGE)
        m = m.only(args.series)
    if args.json:
        print_json({"id": task_id, "state": st.state, **m.to_dict()})
        return 0
    if m.skipped:
        print(m.skipped_text(), file=sys.stderr)
    if not m.series:
        where = "yet " if not st.terminal else ""
        print(f"no metrics {where}for {task_id} ({st.state}); a job writes them as JSON lines to $AILABBER_METRICS",
              file=sys.stderr)
        return EXIT_FAIL
    _print_charts(m, args.height)
    return 0


def _print_charts(m: Metrics, height: int) -> None:
    import shutil

    from ailabber.model.chart import chart, number

    width = shutil.get_terminal_size().columns
    ascii = not _can_show("\u28ff\u2502\u2514")
    for i, s in enumerate(m.series.values()):
        x, y = s.last
        ys = [v for _x, v in s.points]
        if i:
            print()
        print(f"{s.name} = {number(y)} at {s.x_name()} {number(x)}"
              f"   ({len(ys)} points, min {number(min(ys))}, max {number(max(ys))})")
        for line in chart(s.points, width, height, x_name=s.x_name(), ascii=ascii):
            print(line)


def _can_show(text: str) -> bool:
    """Whether standard output's encoding has these characters (a Latin-1 terminal has no braille)."""
    try:
        text.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True
