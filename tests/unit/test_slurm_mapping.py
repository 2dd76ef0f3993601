"""Slurm's states and the sbatch command line, as pure functions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ailabber.daemonkit.remoted_settings import SlurmOptions
from remoted.jobspec import JobSpec
from remoted.schedulers.slurm import SlurmScheduler, transient
from remoted.schedulers.slurm_states import map_state, parse_exit_code, time_limit


@pytest.mark.parametrize("state,reason,nodes,exit_code,result,was_running,expect", [
    ("PENDING", "Resources", "", None, None, False, ("pending", "Resources", None)),
    ("PENDING", "None", "", None, None, False, ("pending", "queued", None)),
    ("PENDING", "BeginTime", "", None, None, True, ("pending", "requeued", None)),
    ("RUNNING", "None", "n1", None, None, False, ("running", None, None)),
    ("COMPLETING", "None", "n1", None, None, True, ("running", None, None)),
    ("COMPLETED", "None", "n1", "0:0", None, True, ("completed", None, 0)),
    ("FAILED", "NonZeroExitCode", "n1", "3:0", None, True, ("failed", "nonzero_exit", 3)),
    ("FAILED", "JobLaunchFailure", "n1", "0:9", None, True, ("failed", "killed", 137)),
    ("FAILED", "BadConstraints", "", "0:1", None, False, ("failed", "unsatisfiable", None)),
    # What a real Slurm shows for a job it ended at the limit: TERM (0:15), or KILL after
    # KillWait (0:9) for a job that ignores TERM; as a shell reports them.
    ("TIMEOUT", "TimeLimit", "n1", "0:15", None, True, ("failed", "timeout", 143)),
    ("TIMEOUT", "TimeLimit", "n1", "0:9", None, True, ("failed", "timeout", 137)),
    ("OUT_OF_MEMORY", "OutOfMemory", "n1", "0:125", None, True, ("failed", "oom", 0)),
    ("NODE_FAIL", "NodeDown", "n1", None, None, True, ("failed", "node_fail", None)),
    ("PREEMPTED", "None", "n1", None, None, True, ("failed", "preempted", None)),
    ("CANCELLED", "Resources", "", "0:0", None, False, ("canceled", "canceled_by_user", None)),
    ("CANCELLED", "None", "n1", "0:15", None, True, ("terminated", "canceled_by_user", None)),
    ("CANCELLED+", "None", "n1", "0:15", None, False, ("terminated", "canceled_by_user", None)),
    # The wrapper's record refines how the commands ended.
    ("COMPLETED", "None", "n1", "0:0", {"state": "failed", "reason": "setup_failed", "exit_code": None},
     True, ("failed", "setup_failed", None)),
    ("COMPLETED", "None", "n1", "0:0", {"state": "failed", "reason": "nonzero_exit", "exit_code": 4},
     True, ("failed", "nonzero_exit", 4)),
    ("CANCELLED", "None", "n1", "0:15", {"state": "completed", "reason": None, "exit_code": 0},
     True, ("completed", None, 0)),
    ("WEIRD", "None", "n1", None, None, True, ("failed", "lost", None)),
])
def test_map_state(state, reason, nodes, exit_code, result, was_running, expect) -> None:  # type: ignore[no-untyped-def]
    js = map_state(state, reason, nodes, exit_code, result, was_running)
    assert (js.state, js.reason, js.exit_code) == expect


def test_exit_code_and_time_limit_formats() -> None:
    assert parse_exit_code("3:0") == (3, 0) and parse_exit_code(None) == (None, None)
    assert parse_exit_code("x:y") == (None, None)
    assert time_limit(3600) == "0-01:00:00"
    assert time_limit(90061) == "1-01:01:01"
    assert time_limit(5) == "0-00:01:00"


def _spec(tmp_path: Path, **kw: object) -> JobSpec:
    base = dict(task_id="261128-103406123-k3f9qz", user="alice", workdir=str(tmp_path / "w"),
                run_dir=str(tmp_path / "run"), log_dir=str(tmp_path / "logs"),
                commands=["python train.py; rm -rf / #SBATCH --uid=0"], gpus=2, cpus=4,
                memory_mb=32768, time_limit_s=4 * 3600, signal_before=120)
    base.update(kw)
    return JobSpec(**base)  # type: ignore[arg-type]


def test_sbatch_arguments_carry_only_validated_values(tmp_path: Path) -> None:
    opts = SlurmOptions(partition="gpu", account="cs101", qos="students", extra_args=("--exclusive",))
    sched = SlurmScheduler(opts)
    spec = _spec(tmp_path)
    spec.prepare_dirs()
    args = sched.sbatch_args(spec)
    assert args[1] == "--parsable"
    assert f"--job-name=ailabber-{spec.task_id}" in args and f"--comment=ailabber-{spec.task_id}" in args
    for a in ("--gres=gpu:2", "--cpus-per-task=4", "--mem=32768M", "--time=0-04:00:00",
              "--signal=B:USR1@120", "--partition=gpu", "--account=cs101", "--qos=students", "--exclusive"):
        assert a in args
    export = next(a for a in args if a.startswith("--export="))
    assert export.startswith("--export=NONE,")
    assert all(a.startswith("--") for a in args[1:])                 # the script comes on stdin
    text = sched.batch_script(spec)
    assert "#SBATCH" not in text and text.count("#") == 1            # only the shebang
    lines = text.splitlines()
    assert len(lines) == 4 and lines[3] == "AILABBER_JOB_SPEC_END"
    assert lines[1].endswith("-m remoted.jobwrap - <<'AILABBER_JOB_SPEC_END'")
    assert JobSpec.from_dict(json.loads(lines[2])) == spec             # the spec, frozen in the script
    assert not (Path(spec.run_dir) / "job.sbatch").exists()          # nothing the student could edit first
    assert "--gpus=2" in SlurmScheduler(SlurmOptions(gpu_option="gpus")).sbatch_args(spec)
    assert not any(a.startswith("--gres") for a in sched.sbatch_args(_spec(tmp_path, gpus=0)))


@pytest.mark.parametrize("stderr, expect", [
    # What sbatch and squeue print while munged is down (seen on Slurm 22.05 here).
    ("sbatch: error: If munged is up, restart with --num-threads=10\n"
     "sbatch: error: Munge encode failed: Failed to access \"/run/munge/munge.socket.2\": No such file or directory\n"
     "sbatch: error: auth_g_create: REQUEST_SUBMIT_BATCH_JOB failure\n"
     "sbatch: error: Batch job submission failed: Protocol authentication error", True),
    ("sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)", True),
    ("sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified",
     False),
    ("sbatch: error: Batch job submission failed: Requested node configuration is not available", False),
])
def test_which_submission_failures_are_worth_asking_again(stderr: str, expect: bool) -> None:
    """A scheduler that cannot be reached (munge included) keeps the task waiting as
    scheduler_unreachable; a request Slurm refused fails it."""
    assert transient(stderr) is expect
