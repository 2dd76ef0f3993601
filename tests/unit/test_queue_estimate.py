"""The pure pieces behind queue positions, start estimates, job limits and the progress
shown to the student: values in, values out."""

from __future__ import annotations

import calendar
import time
from pathlib import Path

import pytest

from ailabber.daemonkit.remoted_settings import load_remoted_settings
from ailabber.daemonkit.yamlfile import SettingsError
from ailabber.model import progress
from ailabber.model.joblimits import JobLimits
from ailabber.model.queueinfo import SCHEDULER, UPPER_BOUND, QueueEntry, parse_queue_document, queue_document
from ailabber.model.task import TaskStatus, now_iso
from remoted.estimate import Holding, Waiting, start_bounds
from remoted.schedulers.base import JobHandle
from remoted.schedulers.slurm import SlurmScheduler
from remoted.schedulers.slurm_states import slurm_time

NOW = 1_800_000_000.0


# --- the start bound of remoted's own queue ---------------------------------------------------
def test_one_gpu_tasks_start_one_after_another_at_the_latest() -> None:
    waiting = [Waiting(k, "ann", 1, 50) for k in ("a", "b", "c")]
    bounds = start_bounds(waiting, [Holding("ben", 1, NOW + 100)], total_gpus=1, now=NOW)
    assert bounds == {"a": NOW + 100, "b": NOW + 150, "c": NOW + 200}


def test_a_task_that_fits_starts_before_a_bigger_one_ahead_as_remoted_launches() -> None:
    """Two GPUs, one held until +100: the 2-GPU task ahead waits for both, the 1-GPU task
    behind it takes the free one now (remoted starts whatever fits, in order)."""
    waiting = [Waiting("big", "ann", 2, 10), Waiting("small", "ben", 1, 30)]
    bounds = start_bounds(waiting, [Holding("cid", 1, NOW + 100)], total_gpus=2, now=NOW)
    assert bounds == {"big": NOW + 100, "small": NOW}


def test_per_user_limits_hold_a_task_until_the_users_own_job_ends() -> None:
    holding = [Holding("ann", 0, NOW + 60)]
    waiting = [Waiting("ann2", "ann", 0, 10), Waiting("ben1", "ben", 0, 10)]
    assert start_bounds(waiting, holding, 1, NOW, max_running=1) == {"ann2": NOW + 60, "ben1": NOW}
    gpus = start_bounds([Waiting("ann2", "ann", 1, 10)], [Holding("ann", 1, NOW + 60)], 4, NOW, max_gpus=1)
    assert gpus == {"ann2": NOW + 60}


def test_a_task_that_can_never_start_has_no_bound_and_holds_up_nobody() -> None:
    waiting = [Waiting("huge", "ann", 3, 10), Waiting("over", "ann", 2, 10), Waiting("ok", "ben", 1, 10)]
    assert start_bounds(waiting, [], total_gpus=2, now=NOW, max_gpus=1) == {"ok": NOW}


def test_a_job_past_its_limit_counts_as_ending_now() -> None:
    assert start_bounds([Waiting("a", "ann", 1, 10)], [Holding("ben", 1, NOW - 30)], 1, NOW) == {"a": NOW}


# --- queue.json ---------------------------------------------------------------------------------
def test_queue_entries_round_trip_and_malformed_ones_are_dropped() -> None:
    entries = {"t1": QueueEntry(2, 1, 3, NOW + 60, UPPER_BOUND), "t2": QueueEntry(start_by=NOW, start_kind=SCHEDULER)}
    doc = queue_document(entries)
    assert doc["tasks"]["t1"] == {"queue_position": 2, "queue_ahead": 1, "queue_length": 3,
                                  "start_estimate": now_iso(NOW + 60), "start_estimate_kind": "upper_bound"}
    assert parse_queue_document(doc) == entries
    bad = {"tasks": {"x": {"queue_position": "2"}, "y": [], "z": {"start_estimate": "soon"}, "w": {}}}
    assert parse_queue_document(bad) == {} and parse_queue_document(None) == {} and parse_queue_document([]) == {}


# --- job limits -------------------------------------------------------------------------------
def test_job_limits_name_each_resource_over_its_limit() -> None:
    limits = JobLimits(max_gpus_per_task=2, max_time_limit_s=3600, max_memory_mb=4096)
    assert limits.problems(2, 3600, 4096) == []
    assert limits.problems(3, 7200, 8192) == [
        ("resources.gpus", "asks for 3 GPU(s); the cluster allows at most 2 per task"),
        ("resources.time_limit", "asks for 2:00:00; the cluster allows at most 1:00:00 per task"),
        ("resources.memory", "asks for 8G; the cluster allows at most 4G per task")]
    assert JobLimits().problems(64, 365 * 86400, 1 << 30) == []


def test_job_limits_from_limits_json_ignore_what_is_malformed() -> None:
    got = JobLimits.from_dict({"max_gpus_per_task": 2, "max_time_limit_s": "1h", "max_memory_mb": True,
                               "running": 1, "queued": -1})
    assert got == JobLimits(max_gpus_per_task=2, running=1) and got.known
    assert not JobLimits.from_dict("nonsense").known
    assert JobLimits.from_dict(got.to_dict()) == got


def test_remoted_yaml_takes_the_new_limits_as_task_config_writes_them(tmp_path: Path) -> None:
    cfg = tmp_path / "remoted.yaml"
    cfg.write_text('root: /x\nlimits:\n  max_time_limit: "1-00:00:00"\n  max_memory: 32G\n')
    limits = load_remoted_settings(cfg).limits
    assert (limits.max_time_limit, limits.max_memory) == (86400, 32 * 1024)
    cfg.write_text("root: /x\nlimits:\n  max_time_limit: 90\n  max_memory: 512\n")
    limits = load_remoted_settings(cfg).limits
    assert (limits.max_time_limit, limits.max_memory) == (5400, 512)
    for bad in ('max_time_limit: "a day"', "max_memory: 0", "max_memory: 12Q"):
        cfg.write_text(f"root: /x\nlimits:\n  {bad}\n")
        with pytest.raises(SettingsError, match=f"limits.{bad.split(':')[0]}: must be") as exc:
            load_remoted_settings(cfg)
        assert "\n" not in str(exc.value)


# --- what the student reads -------------------------------------------------------------------
def _status(state: str, reason: str | None, **extra: object) -> TaskStatus:
    return TaskStatus(id="t", state=state, reason=reason, extra=dict(extra))


def test_upload_progress_in_words() -> None:
    st = _status("pending", "uploading", upload_bytes_total=50_000_000, upload_bytes_sent=12_500_000,
                 upload_rate=1_200_000, upload_eta_s=31, upload_progress_at=now_iso(NOW))
    assert progress.upload(st) == "12.5 MB of 50.0 MB (25%), 1.2 MB/s, at most 31s left"
    assert progress.upload(st, short=True) == "25%, 1.2 MB/s, 31s left"
    assert progress.line(st, None, None, NOW) == f"pending (uploading): {progress.upload(st)}"
    # Before spoold published any progress, or after the upload: nothing to say.
    assert progress.upload(_status("pending", "uploading", upload_bytes_total=5, upload_bytes_sent=0)) is None
    st.reason = "uploaded"
    assert progress.upload(st) is None


def test_queue_place_and_start_in_words() -> None:
    entry = QueueEntry(2, 1, 5, NOW + 720, UPPER_BOUND)
    st = _status("pending", "waiting_for_gpu")
    line = progress.line(st, entry, None, NOW)
    assert line.startswith("pending (waiting_for_gpu): waiting for a free GPU; 2nd of 5 in the course queue (1 ahead); "
                           "starts by ")
    assert "(in 12m00s) at the latest, if every task ahead runs to its time limit" in line
    slurm = progress.line(_status("pending", "Resources"), QueueEntry(start_by=NOW + 180, start_kind=SCHEDULER), None,
                          NOW)
    assert "waiting for a free GPU/CPU on the cluster; the scheduler expects it to start at " in slurm
    assert slurm.endswith("(in 3m00s)")
    # An entry means nothing once the task runs, or before the cluster has it.
    assert progress.waiting(_status("running", None), entry) is None
    assert progress.waiting(_status("pending", "uploaded"), entry) is None
    assert [progress.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 112)] == \
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "112th"]


def test_running_time_against_the_limit() -> None:
    st = TaskStatus(id="t", state="running", started_at=now_iso(NOW - 65))
    assert progress.line(st, None, 600, NOW) == "running: 1m05s of its 10m00s time limit"
    st.reason = "setting_up"
    assert progress.line(st, None, 600, NOW) == \
        "running (setting_up): preparing the Python environment; 1m05s of its 10m00s time limit"


# --- Slurm's own estimate ---------------------------------------------------------------------
def test_a_pending_slurm_job_carries_slurms_expected_start() -> None:
    expected = calendar.timegm(time.strptime("2026-11-29T22:37:19", "%Y-%m-%dT%H:%M:%S"))
    assert slurm_time("2026-11-29T22:37:19") == expected
    assert slurm_time("N/A") is None and slurm_time("Unknown") is None
    sched = SlurmScheduler()
    row = ["7", "PENDING", "Resources", "", "2026-11-29T22:37:19", "ailabber-x"]
    js = sched._state(JobHandle("7", {}), row)
    assert js is not None and (js.state, js.reason, js.expected_start) == ("pending", "Resources", expected)
    js = sched._state(JobHandle("7", {}), [*row[:4], "N/A", row[5]])
    assert js is not None and js.expected_start is None
