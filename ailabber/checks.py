"""The shape of a setup check, shared by ``ailabber doctor`` and the daemons' ``--check``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def dump(checks: list[Check]) -> str:
    return json.dumps([c.to_dict() for c in checks])


def load(text: str) -> list[Check]:
    out = []
    for d in json.loads(text):
        out.append(Check(str(d["name"]), bool(d["ok"]), str(d.get("detail", ""))))
    return out


def render(checks: list[Check]) -> str:
    width = max((len(c.name) for c in checks), default=0)
    return "\n".join(f"{'ok  ' if c.ok else 'FAIL'}  {c.name.ljust(width)}  {c.detail}".rstrip() for c in checks)
