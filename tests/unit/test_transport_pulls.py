"""spoold's pulls of the small files remoted publishes (limits.json, remoted.json): a rewrite
is seen even when rsync's quick check (size and whole-second mtime) cannot tell it apart."""

from __future__ import annotations

import os
from pathlib import Path

from spoold.transport import RsyncTransport


def test_a_same_size_rewrite_in_the_same_second_is_pulled(tmp_path: Path) -> None:
    area = tmp_path / "area"
    t = RsyncTransport(str(area))
    t.prepare()
    src, copy = area / "remoted.json", tmp_path / "spool" / "remoted.json"
    src.write_text('{"at": 1000.5}')
    os.utime(src, (1_700_000_000, 1_700_000_000))
    assert t.pull_file("remoted.json", copy)
    src.write_text('{"at": 9000.5}')                       # same size, same mtime
    os.utime(src, (1_700_000_000, 1_700_000_000))
    assert t.pull_file("remoted.json", copy)
    assert copy.read_text() == '{"at": 9000.5}'


def test_an_absent_file_is_reported_absent(tmp_path: Path) -> None:
    t = RsyncTransport(str(tmp_path / "area"))
    t.prepare()
    assert not t.pull_file("limits.json", tmp_path / "spool" / "limits.json")
