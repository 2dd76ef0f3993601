"""The watch channel's lines (ailabber/model/watch_lines.py): what the gate may print and
what spoold may send, parsed once into values; nothing a student names gets through."""

from __future__ import annotations

import pytest

from ailabber.model.watch_lines import (
    MAX_IDS,
    Ack,
    Beat,
    Changed,
    Ready,
    beat_line,
    changed_line,
    ids_line,
    parse_ids,
    parse_line,
)

A, B = "261130-015449853-13qgg6", "261130-015554286-rn1yjn"


def test_a_set_line_round_trips_and_refuses_anything_but_task_ids() -> None:
    assert parse_ids(ids_line([B, A]).rstrip(b"\n")) == {A, B}
    assert parse_ids(b"") == frozenset()
    for bad in (b"../bob", b"/srv/ailabber/users/bob", A.encode() + b" ..", b"outbox", A.encode() + b"/logs",
                "261130-015449853-13qgg\u00e9".encode()):
        with pytest.raises(ValueError):
            parse_ids(bad)
    with pytest.raises(ValueError, match="more than"):
        parse_ids(" ".join([A] * (MAX_IDS + 1)).encode())


def test_the_gates_lines_become_values() -> None:
    assert parse_line(b"ready") == Ready()
    assert parse_line(b"watching 3") == Ack(3)
    assert parse_line(changed_line([A, f"{B}/logs", "limits"]).rstrip(b"\n")) == \
        Changed(False, True, False, frozenset({A}), frozenset({B}))
    assert parse_line(changed_line(["queue", A, "all"]).rstrip(b"\n")) == \
        Changed(True, False, False, frozenset(), frozenset())
    assert parse_line(beat_line({"at": 1.5, "every": 30}).rstrip(b"\n")) == Beat({"at": 1.5, "every": 30})


def test_what_is_not_understood_is_dropped_not_trusted() -> None:
    assert parse_line(b"hello") is None
    assert parse_line(b"watching x") is None
    assert parse_line(b"beat [1, 2]") is None
    assert parse_line(b"beat {not json") is None
    # A word that is not a task id (or one of the fixed words) never becomes a task.
    got = parse_line(b"changed ../bob /etc/passwd bob/logs " + A.encode())
    assert got == Changed(False, False, False, frozenset({A}), frozenset())
