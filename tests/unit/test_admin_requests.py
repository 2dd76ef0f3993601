"""A staff request's bytes become one typed request, every field checked, or one line
naming the field that is wrong; the command's encoding parses back to the same value."""

from __future__ import annotations

import json

import pytest

from remoted.admin.requests import (
    MAX_REQUEST_BYTES,
    Cancel,
    Hold,
    Purge,
    Release,
    Reply,
    RequestError,
    SetLimits,
    TaskRef,
    encode_request,
    parse_request,
)

TASK = "261128-110155611-b7tstc"


@pytest.mark.parametrize("request_", [
    Cancel((TaskRef("alice", TASK), TaskRef("bob", TASK)), "grid search on 4 GPUs"),
    Cancel((TaskRef("alice", TASK),)),
    Hold(("alice", "bob"), message="the node is being repaired"),
    Hold(everyone=True),
    Release(("alice",)),
    Release(everyone=True),
    SetLimits("alice", (("max_disk_bytes", None), ("max_running", 4)), ("max_gpus",)),
    Purge(30 * 86400.0, unpulled=True),
])
def test_what_the_command_writes_parses_back_to_the_same_request(request_: object) -> None:
    assert parse_request(encode_request(request_)) == request_  # type: ignore[arg-type]


def _doc(act: str, **args: object) -> bytes:
    return json.dumps({"version": 1, "act": act, "args": args}).encode()


@pytest.mark.parametrize("data, field", [
    (b"\xff", "not JSON"),
    (b"[]", "not a JSON object"),
    (json.dumps({"version": 2, "act": "cancel", "args": {}}).encode(), "version"),
    (_doc("format-disk"), "act"),
    (json.dumps({"version": 1, "act": "cancel", "args": []}).encode(), "args"),
    (_doc("cancel", tasks=[]), "args.tasks"),
    (_doc("cancel", tasks=[["alice", "../../etc"]]), "args.tasks[0]"),
    (_doc("cancel", tasks=[["../root", TASK]]), "args.tasks[0]"),
    (_doc("cancel", tasks=[["alice", TASK]], reason="two\nlines"), "args.reason"),
    (_doc("cancel", tasks=[["alice", TASK]], reason="x" * 501), "args.reason"),
    (_doc("hold", users=["alice"], all=True), "args.users, args.all"),
    (_doc("hold", users=[], all=False), "args.users, args.all"),
    (_doc("hold", users=["Alice Smith"], all=False), "args.users"),
    (_doc("release", users=["alice"], all="yes"), "args.all"),
    (_doc("limits", user="alice", set={"max_cpus": 4}, default=[]), "args.set"),
    (_doc("limits", user="alice", set={"max_running": 0}, default=[]), "max_running"),
    (_doc("limits", user="alice", set={"max_running": True}, default=[]), "max_running"),
    (_doc("limits", user="alice", set={"max_disk_bytes": "5G"}, default=[]), "max_disk_bytes"),
    (_doc("limits", user="alice", set={"max_running": 2}, default=["max_running"]), "args.default"),
    (_doc("limits", user="alice", set={}, default=[]), "args.set, args.default"),
    (_doc("limits", user="", set={"max_running": 2}, default=[]), "args.user"),
    (_doc("purge", older_than_s=-1), "args.older_than_s"),
    (_doc("purge", older_than_s="30d"), "args.older_than_s"),
])
def test_a_bad_request_is_refused_naming_the_field(data: bytes, field: str) -> None:
    with pytest.raises(RequestError) as exc:
        parse_request(data)
    assert str(exc.value).startswith(field), str(exc.value)


def test_limit_values_are_carried_as_remoted_holds_them_never_in_units_again() -> None:
    got = parse_request(_doc("limits", user="alice", default=[],
                             set={"max_disk_bytes": 5 * 1024**3, "max_time_limit": 7200, "max_gpus": 0,
                                  "max_memory": None}))
    assert isinstance(got, SetLimits)
    assert dict(got.values) == {"max_disk_bytes": 5 * 1024**3, "max_time_limit": 7200, "max_gpus": 0,
                                "max_memory": None}
    with pytest.raises(RequestError, match="max_time_limit"):
        parse_request(_doc("limits", user="alice", default=[], set={"max_time_limit": "2:00:00"}))


def test_a_request_too_large_is_refused_unparsed() -> None:
    with pytest.raises(RequestError, match="larger than"):
        parse_request(b" " * (MAX_REQUEST_BYTES + 1))


def test_a_reply_parses_back_and_anything_else_is_no_reply() -> None:
    reply = Reply("r1", "cancel", "failed", "cancelled 1 of 2 task(s)", ("alice/x: no such task",))
    assert Reply.parse(reply.encode()) == reply and reply.exit_code == 1
    assert Reply("r", None, "refused", "no").exit_code == 77
    for junk in (b"", b"{", b"[]", json.dumps({"id": "r", "outcome": "maybe", "message": "", "lines": []}).encode()):
        assert Reply.parse(junk) is None
