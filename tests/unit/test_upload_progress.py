"""spoold's upload progress: rsync's running figures into the tasks' statuses, at most
once a second, on a clock the test turns."""

from __future__ import annotations

import json
from pathlib import Path

from ailabber.model.task import TaskStatus, transition
from ailabber.storage import statusfile
from spoold.progress import UploadProgress


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _uploading(tmp_path: Path, task_id: str) -> Path:
    d = tmp_path / task_id
    d.mkdir()
    st, event = transition(TaskStatus(id=task_id), "pending", "uploading")
    statusfile.record(d, st, event)
    return d


def _status(d: Path) -> dict[str, object]:
    return dict(json.loads((d / "status.json").read_text()))


def test_one_tasks_bytes_rate_and_time_left_at_most_once_a_second(tmp_path: Path) -> None:
    d = _uploading(tmp_path, "t1")
    clock = Clock()
    p = UploadProgress({"t1": d}, {"t1": 10_000_000}, clock=clock)
    events_before = (d / "events.jsonl").read_text()
    p.feed("\r         32,768   0%    0.00kB/s    0:00:00  ")
    clock.t += 0.5
    p.feed("\r      500,000   5%  1.00MB/s    0:00:09  \r   1,0")      # a line cut in two
    assert "upload_progress_at" not in _status(d)                        # not a second yet
    clock.t += 0.6
    p.feed("00,000  10%  1.00MB/s    0:00:09  ")
    st = _status(d)
    assert st["upload_bytes_sent"] == 1_000_000 and st["upload_progress_at"]
    assert st["upload_rate"] is None and st["upload_eta_s"] is None    # too early to tell a rate
    clock.t += 2.0
    p.feed("\r    3,100,000  31%  1.00MB/s    0:00:07  ")
    st = _status(d)
    assert st["upload_bytes_sent"] == 3_100_000
    assert st["upload_rate"] == 1_000_000 and st["upload_eta_s"] == 7     # 3.1 MB in 3.1 s; 6.9 MB left
    assert (d / "events.jsonl").read_text() == events_before             # progress is no event
    assert p.finished() == {"upload_eta_s": 0}


def test_a_batch_counts_each_tasks_finished_files(tmp_path: Path) -> None:
    a, b = _uploading(tmp_path, "ta"), _uploading(tmp_path, "tb")
    clock = Clock()
    p = UploadProgress({"ta": a, "tb": b}, {"ta": 300, "tb": 700}, clock=clock)
    p.feed("ta/|0|4096\nta/files/x|350|300\n\r     300  30%    0.00kB/s    0:00:00 (xfr#1, to-chk=1/2)")
    clock.t += 1.0
    p.feed("\ntb/files/y|200|700\n")
    assert _status(a)["upload_bytes_sent"] == 300 and _status(b)["upload_bytes_sent"] == 200


def test_nothing_is_written_to_a_task_no_longer_uploading(tmp_path: Path) -> None:
    d = _uploading(tmp_path, "t1")
    st = statusfile.read_status(d)
    assert st is not None
    st, event = transition(st, "canceled", "canceled_by_user")
    statusfile.record(d, st, event)
    clock = Clock()
    p = UploadProgress({"t1": d}, {"t1": 100}, clock=clock)
    clock.t += 2
    p.feed("\r      50  50%  1.00kB/s    0:00:01  ")
    assert "upload_progress_at" not in _status(d) and p.finished() == {}
