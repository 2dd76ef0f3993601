"""Spelling hints for unknown keys in the files students and admins write."""

from __future__ import annotations

from collections.abc import Sequence


def closest(key: str, known: Sequence[str], cutoff: float = 0.6) -> str | None:
    """The known key ``key`` was most likely meant to be, if any.  difflib is imported
    here, on an error only, so that no command pays for it at start-up."""
    import difflib

    close = difflib.get_close_matches(key, known, n=1, cutoff=cutoff)
    return close[0] if close else None
