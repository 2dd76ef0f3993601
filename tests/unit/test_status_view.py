"""``ailabber status``'s human view: every line once, the extra lines after the message."""

from __future__ import annotations

from ailabber.model import render
from ailabber.model.task import TaskStatus, transition


def test_each_line_of_a_status_is_shown_once() -> None:
    st = TaskStatus(id="261129-100000000-abcdef", submitted_at="2026-11-29T10:00:00.000Z")
    st, _ = transition(st, "pending", "queued", message="accepted")
    text = render.describe(st, "synced", more=[("name", "baseline"), ("queue", "2nd of 3")])
    labels = [line.split()[0] for line in text.splitlines()]
    assert len(labels) == len(set(labels)), text
    assert labels.index("message") < labels.index("name") < labels.index("queue") < labels.index("submitted")
