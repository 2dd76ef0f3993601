"""Task names: a label the student chooses (``name`` in task_config.toml, or ``submit
--name``) and may type wherever a task id is taken.

A name is checked once, at submit, and kept with the task; it also becomes a directory
name in the spool's name index (``storage/names.py``), so the rules keep it a plain,
printable, single-line file name: ASCII letters, digits, spaces and ``- _ .``, starting
with a letter or a digit (never ``.``, ``..`` or something that reads as an option).
``last`` is taken: it means the most recently submitted task.  Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ailabber.model.ids import LAST, is_task_id

if TYPE_CHECKING:
    from ailabber.model.config_fields import Problems

#: The top-level key of task_config.toml (every other key lives in a table).
NAME_KEY = "name"
MAX_NAME = 64
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]*")


def name_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a task name (one clause, the value quoted), or None."""
    if not isinstance(value, str):
        from ailabber.model.config_fields import describe

        return f"must be a string, got {describe(value)}"
    if not value:
        return "must not be empty"
    if len(value) > MAX_NAME:
        return f"must be at most {MAX_NAME} characters, got {len(value)}"
    if _NAME_RE.fullmatch(value) is None:
        if not value[0].isascii() or not value[0].isalnum():
            return f"must start with a letter or a digit, got {_quote(value)}"
        return f"may contain only letters, digits, spaces and - _ . (got {_quote(value)})"
    if value.endswith(" "):
        return f"must not end with a space, got {_quote(value)}"
    if value == LAST:
        return f"'{LAST}' is reserved: it means your most recently submitted task"
    if is_task_id(value):
        return f"must not look like a task id, got {_quote(value)}"
    return None


def _quote(value: str) -> str:
    # Imported for a message only: resolving a name on every command stays import-free.
    from ailabber.model.config_fields import quote

    return quote(value)


def is_name(value: str) -> bool:
    return name_problem(value) is None


def name_field(p: Problems, doc: dict[str, Any]) -> str | None:
    """The top-level ``name`` of a task_config.toml document, or None (absent or invalid:
    the problem is recorded)."""
    if NAME_KEY not in doc:
        return None
    value = doc[NAME_KEY]
    problem = name_problem(value)
    if problem is not None:
        p.add(NAME_KEY, problem)
        return None
    return str(value)
