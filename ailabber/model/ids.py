"""Task ids: unique across hosts and processes, sorting by submission time.

Format ``YYMMDD-HHMMSSmmm-xxxxxx``: UTC time to the millisecond, then 30 random bits in
lowercase Crockford base32.  Readable in ``ls``, sortable as plain strings, and a clash
needs two submissions in the same millisecond drawing the same 30 bits.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
#: Matched with ``fullmatch``: ``$`` would also accept a trailing newline.
ID_RE = re.compile(r"\d{6}-\d{9}-[0-9a-hjkmnp-tv-z]{6}")
#: Wherever an id is taken, this word names the most recently submitted task.
LAST = "last"


def new_task_id(now: float | None = None) -> str:
    total_ms = round((time.time() if now is None else now) * 1000)
    secs, ms = divmod(total_ms, 1000)
    tm = time.gmtime(secs)
    # 30 random bits as six base-32 digits (os.urandom: no hashlib import at start-up)
    rand_bits = int.from_bytes(os.urandom(4), "big")
    rand = "".join(_ALPHABET[(rand_bits >> (5 * i)) & 31] for i in range(6))
    return time.strftime("%y%m%d-%H%M%S", tm) + f"{ms:03d}-{rand}"


def is_task_id(name: str) -> bool:
    return ID_RE.fullmatch(name) is not None


def submitted_at(task_id: str) -> float | None:
    """The submission time an id carries (epoch seconds), None for anything else."""
    from ailabber.model.task import parse_iso

    if not is_task_id(task_id):
        return None
    t = task_id
    return parse_iso(f"20{t[0:2]}-{t[2:4]}-{t[4:6]}T{t[7:9]}:{t[9:11]}:{t[11:13]}.{t[13:16]}Z")


class TaskLookupError(LookupError):
    """The user named no task or more than one; the message says which."""


def resolve(query: str, candidates: Iterable[str],
            named: Callable[[str], Iterable[str]] | None = None) -> str:
    """Find the one task id that ``query`` names, trying in this order: an exact id,
    ``last`` (the newest id: ids sort by submission time), a task name (``named`` gives
    the ids that carry it), a unique prefix, a unique suffix (the random part is the
    easiest thing to type).  A name wins over a prefix or suffix: it was chosen, they
    are abbreviations that may match by chance."""
    query = query.strip()
    if not query:
        raise TaskLookupError("empty task id")
    ids = sorted(set(candidates))
    if query in ids:
        return query
    if query == LAST:
        if not ids:
            raise TaskLookupError(f"'{LAST}' names your most recently submitted task, and there are none")
        return ids[-1]
    if named is not None:
        have = sorted(set(named(query)).intersection(ids))
        if len(have) == 1:
            return have[0]
        if have:
            raise TaskLookupError(f"'{query}' is ambiguous: {len(have)} tasks have that name "
                                  f"({_shown(have, 10)}); give one of the ids instead")
    for how, matches in (
        ("prefix", [i for i in ids if i.startswith(query)]),
        ("suffix", [i for i in ids if i.endswith(query)]),
    ):
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise TaskLookupError(f"'{query}' is ambiguous: {len(matches)} tasks match as a {how} "
                                  f"({_shown(matches)})")
    raise TaskLookupError(f"no task matches '{query}'")


def _shown(matches: list[str], limit: int = 5) -> str:
    return ", ".join(matches[:limit]) + (" ..." if len(matches) > limit else "")
