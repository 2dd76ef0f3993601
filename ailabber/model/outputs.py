"""What the entries of ``run.logs`` and ``run.results`` matched on the cluster.

When a task ends, remoted lists, for every entry, the paths it matches in the task's
workdir and publishes that as ``outputs.json`` (``Outputs.to_dict``); spoold brings back
exactly those paths and tells the student which entries matched nothing.  The names come
from files the job (the student's code) created, so they can be anything a file name can
be: whoever reads the listing takes it through ``parse_outputs``, which keeps a path only
if it stays inside the workdir and is one its own entry matches.

Pure: values and their checks only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from ailabber.model.config_fields import quote
from ailabber.model.globs import compile_glob, path_matches

OUTPUTS_FILE = "outputs.json"
VERSION = 1
#: The fields whose entries are listed, in the order they are reported.
FIELDS = ("logs", "results")
#: The most paths one listing holds, and the most bytes of names: past either the
#: listing is incomplete (and spoold brings the entries back by their patterns).
MAX_PATHS = 10_000
MAX_NAME_BYTES = 1 << 20
#: The longest path kept (Linux's PATH_MAX: a longer one cannot be opened anyway).
MAX_PATH = 4096


class Entry(NamedTuple):
    field: str                  # "logs" or "results"
    position: int               # its index in that list of task_config.toml
    pattern: str                # as normalised at submit
    matches: tuple[str, ...]    # paths relative to the workdir, in the order listed

    @property
    def name(self) -> str:
        return f"run.{self.field}[{self.position}]"


class Outputs(NamedTuple):
    entries: tuple[Entry, ...]
    complete: bool = True       # every match was listed
    note: str | None = None     # why not, in words

    def unmatched(self) -> list[Entry]:
        """The entries that matched nothing (none is known to, in an incomplete listing)."""
        return [e for e in self.entries if not e.matches] if self.complete else []

    def paths(self) -> list[str]:
        """Every matched path once, in the order listed."""
        return list(dict.fromkeys(p for e in self.entries for p in e.matches))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": VERSION, "complete": self.complete, "note": self.note}
        for f in FIELDS:
            out[f] = [{"pattern": e.pattern, "matches": list(e.matches)} for e in self.entries if e.field == f]
        return out


def entries(logs: Sequence[str], results: Sequence[str]) -> list[tuple[str, int, str]]:
    """(field, index, pattern) of every entry, logs first."""
    return [("logs", i, p) for i, p in enumerate(logs)] + [("results", i, p) for i, p in enumerate(results)]


def listing(logs: Sequence[str], results: Sequence[str], matches: Sequence[Sequence[str]],
            complete: bool = True, note: str | None = None) -> Outputs:
    """The listing of the entries (``entries`` order) from the paths each one matched."""
    return Outputs(tuple(Entry(f, i, p, tuple(m)) for (f, i, p), m in zip(entries(logs, results), matches)),
                   complete, note)


def safe_path(path: object) -> bool:
    """A path relative to the workdir that stays inside it: no absolute path, no ``..``,
    no empty or ``.`` component (``.`` alone is the workdir itself), no NUL."""
    if not isinstance(path, str) or not 0 < len(path) <= MAX_PATH or "\0" in path:
        return False
    return path == "." or all(c not in ("", ".", "..") for c in path.split("/"))


def parse_outputs(data: object, logs: Sequence[str], results: Sequence[str]) -> Outputs | None:
    """The listing in ``data`` (``outputs.json`` as read) for a task whose entries are
    ``logs`` and ``results``, or None when it is not one: another version, other entries,
    or a path that is not safe or not one its entry matches."""
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return None
    note = data.get("note")
    found: list[list[str]] = []
    for f in FIELDS:
        want = logs if f == "logs" else results
        got = data.get(f)
        if not isinstance(got, list) or len(got) != len(want):
            return None
        for item, pattern in zip(got, want):
            if not isinstance(item, dict) or item.get("pattern") != pattern or not isinstance(item.get("matches"), list):
                return None
            try:
                glob = compile_glob(pattern)
            except ValueError:
                return None
            paths = item["matches"]
            if len(paths) > MAX_PATHS or not all(safe_path(p) and path_matches(glob, p) for p in paths):
                return None
            found.append(paths)
    return listing(logs, results, found, data.get("complete") is True, note if isinstance(note, str) else None)


# --------------------------------------------------------------------------- in the status


def unmatched_field(out: Outputs) -> list[dict[str, str]]:
    """The ``unmatched`` field of a task's status: each entry that matched nothing."""
    return [{"entry": e.name, "pattern": e.pattern} for e in out.unmatched()]


def unmatched_lines(value: object) -> list[str]:
    """One line per entry of a status's ``unmatched`` field (what ``status`` and ``fetch``
    print); anything that is not such a list says nothing."""
    if not isinstance(value, list):
        return []
    return [f"{item['entry']} {quote(item['pattern'])} matched nothing" for item in value
            if isinstance(item, dict) and isinstance(item.get("entry"), str) and isinstance(item.get("pattern"), str)]
