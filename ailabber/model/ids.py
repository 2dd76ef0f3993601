"""Task ids: unique across hosts and processes, sorting by submission time.

Format ``YYMMDD-HHMMSSmmm-xxxxxx``: UTC time to the millisecond, then 30 random bits in
lowercase Crockford base32.  Readable in ``ls``, sortable as plain strings, and a clash
needs two submissions in the same millisecond drawing the same 30 bits.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
#: Matched with ``fullmatch``: ``$`` would also accept a trailing newline.
ID_RE = re.compile(r"\d{6}-\d{9}-[0-9a-hjkmnp-tv-z]{6}")


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


def resolve(query: str, candidates: Iterable[str]) -> str:
    """Find the one task id that ``query`` names: an exact id, a unique prefix, or a
    unique suffix (the random part is the easiest thing to type)."""
    query = query.strip()
    if not query:
        raise TaskLookupError("empty task id")
    ids = sorted(set(candidates))
    if query in ids:
        return query
    for how, matches in (
        ("prefix", [i for i in ids if i.startswith(query)]),
        ("suffix", [i for i in ids if i.endswith(query)]),
    ):
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            shown = ", ".join(matches[:5]) + (" ..." if len(matches) > 5 else "")
            raise TaskLookupError(f"'{query}' is ambiguous: {len(matches)} tasks match as a {how} ({shown})")
    raise TaskLookupError(f"no task matches '{query}'")
