"""The gate's watch without inotify (an instance or a watch the kernel refused: the
service account's ``fs.inotify.max_user_instances`` used up) still tells what changed:
its sweep compares the watched files every two seconds."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from remoted.areawatch import AreaWatch

TASK = "261130-015449853-13qgg6"


def _publish(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.rename(tmp, path)


def test_without_inotify_the_sweep_still_tells(tmp_path: Path) -> None:
    area = tmp_path / "alice"
    task = area / "outbox" / TASK
    (task / "logs").mkdir(parents=True)
    _publish(task / "status.json", '{"state": "running"}')
    watch = AreaWatch(area, out_fd=(out := os.pipe())[1])
    assert watch.ino is not None
    watch.ino.close()
    watch.ino = None                       # as when inotify_init1 was refused
    cmd_r, cmd_w = os.pipe()
    t = threading.Thread(target=watch.run, args=(cmd_r,), daemon=True)
    t.start()
    lines: list[str] = []

    def read_until(word: str, start: int = 0) -> int:
        """The index of the first line from ``start`` on that holds ``word``."""
        deadline = time.monotonic() + 30
        buf = b""
        while not any(word in line for line in lines[start:]):
            assert time.monotonic() < deadline, lines
            buf += os.read(out[0], 4096)
            *done, buf = buf.split(b"\n")
            lines.extend(x.decode() for x in done)
        return next(i for i in range(start, len(lines)) if word in lines[i])

    try:
        read_until("ready")
        os.write(cmd_w, f"{TASK}\n".encode())
        read_until(f"changed {TASK}", read_until("watching 1"))     # a new task is always told once
        start = len(lines)
        _publish(task / "status.json", '{"state": "completed", "exit_code": 0}')
        told = read_until(f"changed {TASK}", start)
        assert lines[told] == f"changed {TASK}", lines
        (task / "logs" / "output.log").write_text("hello\n")
        assert lines[read_until(f"{TASK}/logs", told + 1)] == f"changed {TASK}/logs", lines
    finally:
        os.close(cmd_w)                    # the session ends: the watch stops
        t.join(10)
    assert not t.is_alive()
