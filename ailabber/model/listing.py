"""What ``list`` and ``status`` show of a task beyond its state: its name, how long it has
run against its time limit, and its first command.

All of it travels in the task's status record from submit on (``labels``), so ``list``
over thousands of tasks reads one file per task, as before.  Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ailabber.model.render import ago, duration, state_text
from ailabber.model.task import RUNNING, TaskStatus, parse_iso

if TYPE_CHECKING:   # the config parser (and tomllib) stays out of `list`
    from ailabber.model.config import TaskConfig

#: Status fields set at submit (``TaskStatus.extra``; older tasks lack them).
NAME, FIRST_COMMAND, TIME_LIMIT = "name", "first_command", "time_limit_s"
#: The first command is kept this long: enough for any terminal line.
MAX_KEPT_COMMAND = 500

_BLANKS = re.compile(r"\s+")


def labels(cfg: TaskConfig, name: str | None) -> dict[str, Any]:
    """The fields of the first status record that describe the task as submitted."""
    out: dict[str, Any] = {TIME_LIMIT: cfg.resources.time_limit_s}
    if cfg.run.commands:
        out[FIRST_COMMAND] = cfg.run.commands[0][:MAX_KEPT_COMMAND]
    if name:
        out[NAME] = name
    return out


def timing(st: TaskStatus, now: float) -> tuple[float | None, float | None]:
    """(seconds run so far or in all, seconds left of the time limit) where known.

    Run time counts from ``started_at`` (the job wrapper's start, as the time limit
    does); what is left is given for a running task only."""
    started = parse_iso(st.started_at)
    if started is None:
        return None, None
    if st.state == RUNNING:
        elapsed = max(0.0, now - started)
        limit = st.extra.get(TIME_LIMIT)
        if not isinstance(limit, (int, float)) or isinstance(limit, bool):
            return elapsed, None
        return elapsed, max(0.0, limit - elapsed)
    finished = parse_iso(st.finished_at) if st.terminal else None
    return (max(0.0, finished - started), None) if finished is not None else (None, None)


def time_text(elapsed: float | None, left: float | None) -> str:
    if elapsed is None:
        return "-"
    return duration(elapsed) if left is None else f"{duration(elapsed)}, {duration(left)} left"


def one_line(text: str) -> str:
    """A student's string fit for one table cell: blanks (newlines too) become one space,
    anything else unprintable a ``?`` (no escape sequence reaches the terminal)."""
    if text.isprintable():
        return text
    text = _BLANKS.sub(" ", text).strip()
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


def name_of(st: TaskStatus) -> str | None:
    name = st.extra.get(NAME)
    return name if isinstance(name, str) else None


def command_of(st: TaskStatus) -> str | None:
    command = st.extra.get(FIRST_COMMAND)
    return command if isinstance(command, str) else None


def json_fields(st: TaskStatus, now: float) -> dict[str, Any]:
    """What ``--json`` adds: the labels (null where unknown) and the timing in seconds."""
    elapsed, left = timing(st, now)
    return {NAME: name_of(st), FIRST_COMMAND: command_of(st), TIME_LIMIT: st.extra.get(TIME_LIMIT),
            "elapsed_s": None if elapsed is None else round(elapsed, 3),
            "remaining_s": None if left is None else round(left, 3)}


def fit(cell: str, width: int) -> str:
    """``cell`` cut to ``width`` characters, marked with ``...`` when cut."""
    if len(cell) <= width:
        return cell
    return cell[:max(0, width - 3)] + "..." if width >= 4 else cell[:max(0, width)]


HEADERS = ("ID", "NAME", "STATE", "REASON", "AGE", "TIME", "COMMAND")
MIN_COMMAND = 12    # a terminal narrower than the other columns still shows this much


def row(st: TaskStatus, now: float) -> list[str]:
    name, command = name_of(st), command_of(st)
    return [st.id, "-" if name is None else one_line(name), state_text(st), st.reason or "",
            ago(st.submitted_at, now), time_text(*timing(st, now)),
            "-" if command is None else one_line(command)]


def table(rows: Sequence[Sequence[str]], width: int | None) -> str:
    """``HEADERS`` and ``rows`` aligned; the last column (the command) cut to what is left
    of a terminal ``width`` wide (not cut when ``width`` is None).  Column by column and
    with one format string: ``list`` formats every task in the spool."""
    widths = [max(map(len, column)) for column in zip(HEADERS[:-1], *(r[:-1] for r in rows))]
    line = "".join(f"{{:<{w}}}  " for w in widths) + "{}"
    if width is None:
        return "\n".join(line.format(*r).rstrip() for r in (HEADERS, *rows))
    room = max(MIN_COMMAND, width - sum(widths) - 2 * len(widths))
    return "\n".join(line.format(*r[:-1], fit(r[-1], room)).rstrip() for r in (HEADERS, *rows))


def describe_rows(st: TaskStatus, now: float) -> list[tuple[str, str]]:
    """The lines ``status`` adds for what the task was submitted as and how long it ran."""
    out = []
    name, command = name_of(st), command_of(st)
    if name is not None:
        out.append(("name", one_line(name)))
    if command is not None:
        out.append(("command", fit(one_line(command), 200)))
    elapsed, left = timing(st, now)
    if elapsed is not None:
        out.append(("run time", time_text(elapsed, left)))
    limit = st.extra.get(TIME_LIMIT)
    if isinstance(limit, int) and not isinstance(limit, bool):
        out.append(("time limit", duration(limit)))
    return out
