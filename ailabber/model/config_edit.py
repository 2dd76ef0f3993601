"""``--edit TABLE.KEY=VALUE``: change a value of a submitted task's config.

An edit is applied to the parsed TOML document and the result is written back out as
TOML, so that the edited config is validated by the very parse a config file gets
(``config.parse_task_config``) and the bytes validated are the bytes stored.  VALUE is read
as a TOML value where it is one (``2``, ``"2:00"``, ``["python a.py"]``) and as a string
otherwise (``2:00``, ``16G``), which is how a student would write it on a command line.

Pure: no file is read or written here.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Sequence
from typing import Any

from ailabber.model.config import SCHEMA, ConfigError
from ailabber.model.config_fields import quote

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

#: What the reused snapshot fixes: changing it would describe files the task does not have.
FIXED_KEYS = {"files.upload": "the files of the earlier task are reused as they are",
              "files.ignore": "the files of the earlier task are reused as they are"}

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class EditError(ConfigError):
    """One line naming the edit that cannot be applied."""

    def __init__(self, problem: str) -> None:
        super().__init__([problem])


def parse_edit(text: str) -> tuple[str, str, Any]:
    """``TABLE.KEY=VALUE`` -> (table, key, value).  Whether the key exists and the value
    fits it is the config parse's business, so its message is the config file's own."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise EditError(f"--edit: {quote(text)}: must be TABLE.KEY=VALUE, e.g. resources.time_limit=2:00")
    table, dot, key = name.partition(".")
    if not dot or not _BARE_KEY.fullmatch(table) or not _BARE_KEY.fullmatch(key):
        raise EditError(f"--edit: {quote(name)}: must be TABLE.KEY (one of the tables "
                        f"{', '.join(SCHEMA)}), e.g. resources.gpus=2")
    if name in FIXED_KEYS:
        raise EditError(f"--edit: {name}: cannot be changed when resubmitting ({FIXED_KEYS[name]}); "
                        "submit the project again instead")
    return table, key, toml_value(raw)


def toml_value(raw: str) -> Any:
    """A TOML value written on a command line; anything that is not one is a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        return raw


def apply_edits(doc: dict[str, Any], edits: Sequence[tuple[str, str, Any]]) -> dict[str, Any]:
    """A copy of ``doc`` with each (table, key, value) set; a later edit of a key wins."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in doc.items()}
    for table, key, value in edits:
        current = out.get(table)
        if not isinstance(current, dict):
            current = out[table] = {}
        current[key] = value
    return out


# --------------------------------------------------------------------------- writing TOML


def dump_toml(doc: dict[str, Any]) -> str:
    """A document of tables of plain values (what a task config holds) as TOML text."""
    lines: list[str] = []
    for name, value in doc.items():
        if not isinstance(value, dict):
            lines.append(f"{_key(name)} = {_value(value)}")
    for name, value in doc.items():
        if isinstance(value, dict):
            lines.append(f"\n[{_key(name)}]")
            lines.extend(f"{_key(k)} = {_value(v)}" for k, v in value.items())
    return "\n".join(lines).lstrip("\n") + "\n"


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _string(s: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, except that TOML also wants DEL
    escaped and knows no surrogate pairs (so non-ASCII stays as it is)."""
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    return str(v.isoformat())   # TOML dates and times


def edited_config(text: str, edits: Sequence[tuple[str, str, Any]]) -> str:
    """``text`` (a config that parses) with ``edits`` applied, as TOML text."""
    return dump_toml(apply_edits(tomllib.loads(text), edits))
