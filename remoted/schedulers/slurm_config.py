"""What ``scontrol show config`` says, and whether it keeps a job's processes in the job.

Slurm ends a job by killing the processes it tracks.  With ``proctrack/linuxproc`` (or
``pgid``) it tracks them by process tree, so a process that detaches (``setsid nohup ...
&``, a double fork) and is re-parented to init is no longer the job's: it keeps running
after the job ends, outside the job's time limit, GPUs and accounting.  With
``proctrack/cgroup`` every process stays in the job's cgroup, which it cannot leave, and
``task/cgroup`` confines the tasks to what the job was given.

Pure text in, values out, so the parsing is tested without a cluster; the scheduler runs
the command (``SlurmScheduler.show_config``).
"""

from __future__ import annotations

from collections.abc import Mapping

CGROUP_PROCTRACK = "proctrack/cgroup"
CGROUP_TASK = "task/cgroup"


def parse_show_config(text: str) -> dict[str, str]:
    """``Key = value`` lines -> ``{Key: value}``.

    A value may itself hold ``=`` and spaces (``SchedulerParameters = a=1,b=2``), so each
    line is split at its first `` = ``.  Section titles, the date line and the controller
    status have none and are skipped.  Should a key appear in two sections, the first (the
    main slurm.conf section) counts.
    """
    config: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(" = ")
        key = key.strip()
        if sep and key and " " not in key:
            config.setdefault(key, value.strip())
    return config


def task_plugins(config: Mapping[str, str]) -> list[str]:
    """TaskPlugin is a comma-separated list (``task/cgroup,task/affinity``)."""
    return [p.strip() for p in config.get("TaskPlugin", "").split(",") if p.strip()]


def containment_problem(config: Mapping[str, str]) -> str | None:
    """None when Slurm keeps every process of a job in the job's cgroup; otherwise one line
    saying what a job's stray processes can do and what to set."""
    proctrack = config.get("ProctrackType", "")
    missing = []
    if proctrack != CGROUP_PROCTRACK:
        missing.append(f"ProctrackType={CGROUP_PROCTRACK}")
    if CGROUP_TASK not in task_plugins(config):
        missing.append(f"TaskPlugin={CGROUP_TASK}")
    if not missing:
        return None
    now = f"ProctrackType={proctrack or '?'}, TaskPlugin={config.get('TaskPlugin') or '?'}"
    return (f"{now}: a job's processes that detach (setsid, double fork) keep running after "
            f"the job ends, outside its time limit and GPUs; set {' and '.join(missing)} in "
            f"slurm.conf (with a cgroup.conf)")
