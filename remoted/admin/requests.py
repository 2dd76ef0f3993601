"""What course staff ask remoted to do, as the files that carry it: one request per act,
written by ``ailabber admin`` into ``<root>/admin/requests/<id>.json``, and remoted's
reply in ``<root>/admin/replies/<id>.json``.

Both sides use this module: the command builds a typed request and encodes it; remoted
parses the bytes it read once (``parse_request``) into the same typed value, checking
every field again, since a request file proves nothing but its owner (which remoted takes
from the kernel, never from the content).  Nothing in a request names who asks.

Pure: bytes in, values out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple

from ailabber.daemonkit.remoted_settings import LIMIT_KEYS, checked_limit
from ailabber.model.ids import is_task_id
from ailabber.model.remote_layout import valid_user

VERSION = 1
#: A request file larger than this is refused unread: every real one is far smaller.
MAX_REQUEST_BYTES = 64 * 1024
#: A staff message or reason shown to students: one line of at most this many characters.
MAX_TEXT = 500
#: Tasks one cancel request may name.
MAX_TASKS = 1000

#: Outcomes of a reply, and the exit code ``ailabber admin`` leaves with for each.
DONE, FAILED, INVALID, REFUSED = "done", "failed", "invalid", "refused"
EXIT_CODES = {DONE: 0, FAILED: 1, INVALID: 2, REFUSED: 77}
#: Exit code of a request remoted has not carried out yet (it stays and will be).
EXIT_NOT_YET = 3


class RequestError(ValueError):
    """One line naming the field that is wrong."""


class TaskRef(NamedTuple):
    user: str
    id: str

    def __str__(self) -> str:
        return f"{self.user}/{self.id}"


class Cancel(NamedTuple):
    """End these tasks (queued: ``canceled``; running: ``terminated``), reason
    ``canceled_by_staff`` with ``reason`` as the message the student sees."""
    tasks: tuple[TaskRef, ...]
    reason: str | None = None

    def args(self) -> dict[str, Any]:
        return {"tasks": [[t.user, t.id] for t in self.tasks], "reason": self.reason}

    @classmethod
    def from_args(cls, a: dict[str, Any]) -> Cancel:
        raw = a.get("tasks")
        if not isinstance(raw, list) or not raw or len(raw) > MAX_TASKS:
            raise RequestError(f"args.tasks: must be a list of 1 to {MAX_TASKS} [user, id] pairs")
        tasks = []
        for i, t in enumerate(raw):
            if (not isinstance(t, list) or len(t) != 2 or not isinstance(t[0], str) or not valid_user(t[0])
                    or not isinstance(t[1], str) or not is_task_id(t[1])):
                raise RequestError(f"args.tasks[{i}]: must be [user, task id]")
            tasks.append(TaskRef(t[0], t[1]))
        return cls(tuple(tasks), text(a.get("reason"), "args.reason"))


class Hold(NamedTuple):
    """Keep queued tasks of ``users`` (or of everyone) from being launched."""
    users: tuple[str, ...] = ()
    everyone: bool = False
    message: str | None = None

    def args(self) -> dict[str, Any]:
        return {"users": list(self.users), "all": self.everyone, "message": self.message}

    @classmethod
    def from_args(cls, a: dict[str, Any]) -> Hold:
        users, everyone = _whom(a)
        return cls(users, everyone, text(a.get("message"), "args.message"))


class Release(NamedTuple):
    """Lift the holds of ``users`` (or the hold on everyone)."""
    users: tuple[str, ...] = ()
    everyone: bool = False

    def args(self) -> dict[str, Any]:
        return {"users": list(self.users), "all": self.everyone}

    @classmethod
    def from_args(cls, a: dict[str, Any]) -> Release:
        users, everyone = _whom(a)
        return cls(users, everyone)


class SetLimits(NamedTuple):
    """Per-student overrides of remoted.yaml's ``limits``: ``values`` set, as ``UserLimits``
    holds them (seconds, MiB, bytes, counts; None: no limit), ``defaults`` removed (the
    course's value applies again); each sorted by name."""
    user: str
    values: tuple[tuple[str, int | None], ...] = ()
    defaults: tuple[str, ...] = ()

    def args(self) -> dict[str, Any]:
        return {"user": self.user, "set": dict(self.values), "default": list(self.defaults)}

    @classmethod
    def from_args(cls, a: dict[str, Any]) -> SetLimits:
        user = a.get("user")
        if not isinstance(user, str) or not valid_user(user):
            raise RequestError("args.user: must be a user name")
        raw, defaults = a.get("set"), a.get("default")
        if not isinstance(raw, dict) or not isinstance(defaults, list):
            raise RequestError("args.set and args.default: must be a mapping and a list of limit names")
        values = []
        for key, v in raw.items():
            values.append((limit_key(key, "args.set"), _limit(key, v)))
        for key in defaults:
            if limit_key(key, "args.default") in raw:
                raise RequestError(f"args.default: {key} is also set")
        if not values and not defaults:
            raise RequestError("args.set, args.default: nothing to change")
        return cls(user, tuple(sorted(values)), tuple(sorted(defaults)))


class Purge(NamedTuple):
    """Remove the cluster-side files of tasks that finished ``older_than_s`` seconds ago
    or more; ``unpulled``: also those whose results spoold never pulled."""
    older_than_s: float
    unpulled: bool = False

    def args(self) -> dict[str, Any]:
        return {"older_than_s": self.older_than_s, "unpulled": self.unpulled}

    @classmethod
    def from_args(cls, a: dict[str, Any]) -> Purge:
        age = a.get("older_than_s")
        if isinstance(age, bool) or not isinstance(age, (int, float)) or not 0 <= age < 1e10:
            raise RequestError("args.older_than_s: must be a number of seconds >= 0")
        unpulled = a.get("unpulled", False)
        if not isinstance(unpulled, bool):
            raise RequestError("args.unpulled: must be true or false")
        return cls(float(age), unpulled)


Request = Cancel | Hold | Release | SetLimits | Purge

#: act name -> how its arguments are read.  The one list of acts: remoted's table of
#: handlers (``remoted.admin_acts.HANDLERS``) has the same keys.
PARSERS: dict[str, Callable[[dict[str, Any]], Request]] = {"cancel": Cancel.from_args, "hold": Hold.from_args, "release": Release.from_args,
           "limits": SetLimits.from_args, "purge": Purge.from_args}


def act_name(request: Request) -> str:
    if isinstance(request, Cancel):
        return "cancel"
    if isinstance(request, Hold):
        return "hold"
    if isinstance(request, Release):
        return "release"
    if isinstance(request, SetLimits):
        return "limits"
    return "purge"


def encode_request(request: Request) -> bytes:
    return (json.dumps({"version": VERSION, "act": act_name(request), "args": request.args()},
                       sort_keys=True) + "\n").encode()


def parse_request(data: bytes) -> Request:
    """The request these bytes hold, every field checked; ``RequestError`` naming the
    field otherwise."""
    if len(data) > MAX_REQUEST_BYTES:
        raise RequestError(f"larger than {MAX_REQUEST_BYTES} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise RequestError("not JSON") from None
    if not isinstance(doc, dict):
        raise RequestError("not a JSON object")
    if doc.get("version") != VERSION:
        raise RequestError(f"version: must be {VERSION}")
    act = doc.get("act")
    parse = PARSERS.get(act) if isinstance(act, str) else None
    if parse is None:
        raise RequestError(f"act: must be one of {', '.join(PARSERS)}")
    args = doc.get("args")
    if not isinstance(args, dict):
        raise RequestError("args: must be a mapping")
    return parse(args)


def text(v: Any, field: str) -> str | None:
    """A staff message: None, or one line of printable text."""
    if v is None:
        return None
    if not isinstance(v, str) or not v.strip() or len(v) > MAX_TEXT or not v.isprintable():
        raise RequestError(f"{field}: must be one line of text, at most {MAX_TEXT} characters")
    return v.strip()


def limit_key(key: Any, field: str) -> str:
    if key not in LIMIT_KEYS:
        raise RequestError(f"{field}: {key!r} is not a limit (one of {', '.join(LIMIT_KEYS)})")
    return str(key)


def _limit(key: str, v: Any) -> int | None:
    try:
        return checked_limit(key, v)
    except ValueError as exc:
        raise RequestError(f"{key}: {exc}") from None


def _whom(a: dict[str, Any]) -> tuple[tuple[str, ...], bool]:
    users, everyone = a.get("users"), a.get("all")
    if not isinstance(everyone, bool):
        raise RequestError("args.all: must be true or false")
    if not isinstance(users, list) or not all(isinstance(u, str) and valid_user(u) for u in users):
        raise RequestError("args.users: must be a list of user names")
    if everyone == bool(users):
        raise RequestError("args.users, args.all: name students or all, not both or neither")
    return tuple(sorted(set(users))), everyone


class Reply(NamedTuple):
    """What remoted answers: the outcome, one line saying it, and a line per item (a
    task cancelled, a student purged) where there are several."""
    id: str
    act: str | None
    outcome: str
    message: str
    lines: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.outcome, 1)

    def encode(self) -> bytes:
        return (json.dumps({"version": VERSION, "id": self.id, "act": self.act, "outcome": self.outcome,
                            "message": self.message, "lines": list(self.lines)}, sort_keys=True) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes) -> Reply | None:
        """None for anything that is not a whole reply (remoted writes them atomically,
        so that means someone else's file)."""
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            return None
        if not isinstance(doc, dict):
            return None
        rid, act, outcome, message, lines = (doc.get(k) for k in ("id", "act", "outcome", "message", "lines"))
        if (not isinstance(rid, str) or outcome not in EXIT_CODES or not isinstance(message, str)
                or not isinstance(lines, list) or not all(isinstance(x, str) for x in lines)):
            return None
        return cls(rid, act if isinstance(act, str) else None, outcome, message, tuple(lines))
