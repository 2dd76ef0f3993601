"""A retention policy for the local spool, and how spoold.yaml's ``retention`` setting
becomes one (pure).  What a policy removes is ``retention``'s business; this module is
small because every CLI command reads spoold.yaml."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from ailabber.model.quantities import DAY, parse_age, parse_size

CLEAN_AGE = 7 * DAY                 # ``ailabber clean`` without --older-than or ids


class Policy(NamedTuple):
    max_age: float | None = None    # seconds since the task finished
    keep: int = 0                   # the newest finished tasks that always stay
    max_bytes: int | None = None    # the spool's size the oldest tasks are removed to stay under


#: spoold's policy unless spoold.yaml says otherwise: a month of history, and the last 20
#: tasks whatever their age (a student back from a break still finds their last runs).
DEFAULT_POLICY = Policy(max_age=30 * DAY, keep=20)


RETENTION_KEYS = ("max_age", "keep", "max_bytes")


def policy_from_setting(value: Any) -> Policy | None:
    """spoold.yaml's ``retention``: ``off`` (YAML false) or null turns it off, ``on`` is the
    default policy; a mapping changes the keys it names and keeps ``DEFAULT_POLICY``'s others.  ``ValueError``
    messages start with the key they are about (``retention.max_age: ...``)."""
    if value is None or value is False:
        return None
    if value is True:
        return DEFAULT_POLICY
    if not isinstance(value, Mapping):
        raise ValueError(f"retention: must be on, off or a mapping with {', '.join(RETENTION_KEYS)}, got {value!r}")
    for key in value:
        if key not in RETENTION_KEYS:
            raise ValueError(f"retention.{key}: unknown key (known: {', '.join(RETENTION_KEYS)})")
    policy = DEFAULT_POLICY
    try:
        if "max_age" in value:
            v = value["max_age"]
            policy = policy._replace(max_age=None if v is None else parse_age(str(v)))
    except ValueError as exc:
        raise ValueError(f"retention.max_age: {exc} (or null: no age limit)") from None
    if "keep" in value:
        keep = value["keep"]
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            raise ValueError(f"retention.keep: must be a whole number >= 0, got {keep!r}")
        policy = policy._replace(keep=keep)
    try:
        if "max_bytes" in value:
            v = value["max_bytes"]
            policy = policy._replace(max_bytes=None if v is None else parse_size(v))
    except ValueError as exc:
        raise ValueError(f"retention.max_bytes: {exc} (or null: no size limit)") from None
    return policy
