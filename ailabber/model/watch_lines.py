"""The lines of the ``watch`` channel between spoold and the cluster's gate, as values.

spoold opens one long-lived ssh session running ``watch`` (``remoted/gate.py``, which the
admin pins a student's key to instead of rrsync) and keeps it open.  Both ends speak
lines, parsed here once:

spoold -> gate, one line whenever its set of unfinished tasks changes, and at least once a
minute (the gate ends after ten minutes without one: a peer that vanished without closing
the connection leaves nothing behind)::

    <id> <id> ...            the tasks to watch (the whole set; an empty line for none)

gate -> spoold::

    ready                    the watches are in place: pull everything once now
    watching <n>             a set line was taken (the answer spoold expects to stay sure
                             the channel is alive)
    changed <token> ...      what changed since the last line: ``all`` (pull everything),
                             ``limits``, ``queue``, ``<id>`` (the task's status or events),
                             ``<id>/logs``
    beat <json>              remoted's heartbeat file (``remoted.json``) as it now reads:
                             it is rewritten every half minute whatever happens, so it
                             travels in the channel instead of costing a pull each time

Only task ids spoold named and the fixed words above ever appear in what the gate prints:
nothing a student could name in their directory reaches the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, NamedTuple

from ailabber.model.ids import is_task_id

VERB = "watch"
ALL, LIMITS, QUEUE = "all", "limits", "queue"
LOGS_SUFFIX = "/logs"
#: A set line longer than this ends the channel (thousands of ids fit).
MAX_LINE = 1 << 20
#: Tasks one channel watches at most: each costs the login node two inotify watches.
MAX_IDS = 5000
#: How often spoold says its set (also its sign of life), and how long the gate waits for one.
PING_EVERY = 60.0
SILENCE_LIMIT = 600.0
BEAT_MAX_BYTES = 16384


class Ready(NamedTuple):
    pass


class Ack(NamedTuple):
    watched: int


class Changed(NamedTuple):
    everything: bool
    limits: bool
    queue: bool
    tasks: frozenset[str]      # status or events of these changed
    logs: frozenset[str]       # the logs of these changed


class Beat(NamedTuple):
    data: dict[str, Any]


Line = Ready | Ack | Changed | Beat


def ids_line(task_ids: Iterable[str]) -> bytes:
    return (" ".join(sorted(task_ids)) + "\n").encode()


def parse_ids(line: bytes) -> frozenset[str]:
    """A set line (without its newline); ValueError naming the first word that is not a task id."""
    try:
        words = line.decode("ascii").split()
    except UnicodeDecodeError:
        raise ValueError("not a list of task ids (non-ASCII bytes)") from None
    for w in words:
        if not is_task_id(w):
            raise ValueError(f"not a task id: {w[:40]!r}")
    if len(words) > MAX_IDS:
        raise ValueError(f"more than {MAX_IDS} tasks to watch")
    return frozenset(words)


def changed_line(tokens: Iterable[str]) -> bytes:
    toks = set(tokens)
    return b"changed all\n" if ALL in toks else ("changed " + " ".join(sorted(toks)) + "\n").encode()


def beat_line(data: dict[str, Any]) -> bytes:
    return b"beat " + json.dumps(data, separators=(",", ":"), sort_keys=True).encode() + b"\n"


def parse_line(line: bytes) -> Line | None:
    """One line from the gate (without its newline); None for anything not understood
    (a newer gate may say more)."""
    verb, _, rest = line.partition(b" ")
    if verb == b"ready":
        return Ready()
    if verb == b"watching" and rest.isdigit():
        return Ack(int(rest))
    if verb == b"beat":
        try:
            data = json.loads(rest)
        except ValueError:
            return None
        return Beat(data) if isinstance(data, dict) else None
    if verb != b"changed":
        return None
    try:
        words = rest.decode("ascii").split()
    except UnicodeDecodeError:
        return None
    tasks, logs = set(), set()
    for w in words:
        if w.endswith(LOGS_SUFFIX) and is_task_id(w[:-len(LOGS_SUFFIX)]):
            logs.add(w[:-len(LOGS_SUFFIX)])
        elif is_task_id(w):
            tasks.add(w)
    return Changed(ALL in words, LIMITS in words, QUEUE in words, frozenset(tasks), frozenset(logs))
