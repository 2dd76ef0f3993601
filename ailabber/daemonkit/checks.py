"""The shape of a setup check, shared by ``ailabber doctor`` and the daemons' ``--check``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""
    #: For a failed check: the setup works, only less safely than it should.  Shown as
    #: WARN; it does not make ``doctor`` or ``--check`` fail.
    warning: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def dump(checks: list[Check]) -> str:
    return json.dumps([c.to_dict() for c in checks])


def load(text: str) -> list[Check]:
    out = []
    for d in json.loads(text):
        out.append(Check(str(d["name"]), bool(d["ok"]), str(d.get("detail", "")), bool(d.get("warning", False))))
    return out


def passed(checks: list[Check]) -> bool:
    """Whether the setup works: every check passed, or failed with a warning only."""
    return all(c.ok or c.warning for c in checks)


def _label(c: Check) -> str:
    return "ok  " if c.ok else "WARN" if c.warning else "FAIL"


def render(checks: list[Check]) -> str:
    width = max((len(c.name) for c in checks), default=0)
    return "\n".join(f"{_label(c)}  {c.name.ljust(width)}  {c.detail}".rstrip() for c in checks)
