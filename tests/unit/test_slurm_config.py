"""``scontrol show config`` parsing and the containment verdict, as pure functions."""

from __future__ import annotations

import pytest

from remoted.schedulers.slurm_config import containment_problem, parse_show_config

# Trimmed from Slurm 22.05.8's own output (the test cluster's), layout untouched.
SHOW_CONFIG = """\
Configuration data as of 2026-11-29T16:10:19
AccountingStorageBackupHost = (null)
AccountingStorageType   = accounting_storage/none
ProctrackType           = {proctrack}
SchedulerParameters     = batch_sched_delay=0,sched_min_interval=0
TaskPlugin              = {task}
TaskPluginParam         = (null type)
WaitTime                = 0 sec

Cgroup Support Configuration:
CgroupAutomount         = no
CgroupPlugin            = cgroup/v1
ConstrainCores          = no

MPI Plugins Configuration:
PMIxCliTmpDirBase       = (null)
TaskPlugin              = from/a-later-section

Slurmctld(primary) at vm is UP
"""


def _config(proctrack: str = "proctrack/cgroup", task: str = "task/cgroup") -> dict[str, str]:
    return parse_show_config(SHOW_CONFIG.format(proctrack=proctrack, task=task))


def test_parses_keys_values_with_equals_and_sections() -> None:
    config = _config()
    assert config["ProctrackType"] == "proctrack/cgroup"
    assert config["SchedulerParameters"] == "batch_sched_delay=0,sched_min_interval=0"
    assert config["WaitTime"] == "0 sec"
    assert config["CgroupPlugin"] == "cgroup/v1"
    assert config["TaskPlugin"] == "task/cgroup"          # the main section wins
    assert not any(k.startswith(("Configuration", "Cgroup Support", "Slurmctld")) for k in config)


@pytest.mark.parametrize("task", ["task/cgroup", "task/affinity,task/cgroup", "task/cgroup, task/affinity"])
def test_cgroup_tracking_is_no_problem(task: str) -> None:
    assert containment_problem(_config(task=task)) is None


@pytest.mark.parametrize("proctrack,task,to_set", [
    ("proctrack/linuxproc", "task/none", "ProctrackType=proctrack/cgroup and TaskPlugin=task/cgroup"),
    ("proctrack/pgid", "task/cgroup", "ProctrackType=proctrack/cgroup in"),
    ("proctrack/cgroup", "task/affinity", "TaskPlugin=task/cgroup in"),
])
def test_other_tracking_says_what_strays_do_and_what_to_set(proctrack: str, task: str, to_set: str) -> None:
    problem = containment_problem(_config(proctrack, task))
    assert problem is not None
    assert "\n" not in problem
    assert f"ProctrackType={proctrack}, TaskPlugin={task}" in problem
    assert "keep running after the job ends" in problem
    assert f"set {to_set}" in problem


def test_missing_keys_are_a_problem() -> None:
    problem = containment_problem(parse_show_config(""))
    assert problem is not None and "ProctrackType=?" in problem
