"""``ailabber-remoted --check``: the cluster side as an admin sees it.  Used by
``ailabber doctor --remoted-config``."""

from __future__ import annotations

import os

from ailabber.daemonkit.checks import Check
from ailabber.daemonkit.lock import holder_pid
from ailabber.daemonkit.remoted_settings import RemotedSettings
from ailabber.model.remote_layout import DAEMON_LOCK, USERS
from ailabber.storage import fsutil
from ailabber.storage.remoted_beat import RemotedBeat
from remoted.holds import HoldState, read_holds
from remoted.identity import find_uv
from remoted.schedulers import load_scheduler
from remoted.schedulers.base import SchedulerUnavailable, SubmitError
from remoted.schedulers.slurm import SlurmScheduler
from remoted.schedulers.slurm_config import containment_problem, parse_show_config


def run_checks(settings: RemotedSettings) -> list[Check]:
    root = settings.root
    checks = [Check("configuration valid", True, str(settings.source))]
    users = root / USERS
    ok_root = root.is_dir() and users.is_dir() and os.access(root, os.W_OK)
    checks.append(Check("remote root", ok_root, str(root) if ok_root else f"{users} is missing or not writable"))
    pid = holder_pid(root / DAEMON_LOCK)
    checks.append(Check("remoted running", pid is not None, f"pid {pid}" if pid else "no remoted holds the root's lock"))
    beat = fsutil.read_json_or_none(root / "heartbeat.json")
    checks.append(_heartbeat(RemotedBeat.from_dict(beat)))
    checks.append(_containment(beat))
    checks.append(_holds(read_holds(root)))
    try:
        scheduler = load_scheduler(settings)
    except ValueError as exc:        # e.g. containment: cgroup where there is none
        checks.append(Check("scheduler reachable", False, str(exc)))
        return checks
    problem = scheduler.health()
    checks.append(Check("scheduler reachable", problem is None, problem or f"{settings.scheduler} answers"))
    if isinstance(scheduler, SlurmScheduler):
        checks.append(slurm_containment(scheduler))
    uv = settings.uv or find_uv(settings.job_python)
    checks.append(Check("uv present", bool(uv), uv or "no uv on PATH: tasks with uv.lock will fail"))
    return checks


def slurm_containment(scheduler: SlurmScheduler) -> Check:
    """Whether Slurm ends a job's detached processes with the job.  A warning, not a
    failure: jobs run either way, but strays of a finished job would keep running."""
    name = "slurm job containment"
    try:
        config = parse_show_config(scheduler.show_config())
    except (SchedulerUnavailable, SubmitError) as exc:
        return Check(name, False, f"cannot tell: {exc}", warning=True)
    problem = containment_problem(config)
    if problem is not None:
        return Check(name, False, problem, warning=True)
    return Check(name, True, f"ProctrackType={config['ProctrackType']}, TaskPlugin={config['TaskPlugin']}")


def _heartbeat(beat: RemotedBeat | None) -> Check:
    """Fresh, or stopped after a few missed beats of remoted's own interval (the rule the
    students' side applies to ``remoted.json``)."""
    if beat is None:
        return Check("remoted heartbeat", False, "no heartbeat.json")
    if beat.stopped():
        return Check("remoted heartbeat", False, f"last beat {beat.age():.0f}s ago (it beats every {beat.every:g}s): "
                     "remoted is not running; start it (systemctl start ailabber-remoted)")
    return Check("remoted heartbeat", True, f"{beat.age():.0f}s ago (every {beat.every:g}s)")


def _holds(holds: HoldState) -> Check:
    """Staff holds in force: a warning, so that a drain left on is not forgotten."""
    if not holds.any:
        return Check("staff holds", True, "none")
    return Check("staff holds", False, "; ".join(holds.lines()) + " (ailabber admin release)", warning=True)


def _containment(beat: object) -> Check:
    """What remoted itself said keeps a job's processes from outliving it."""
    mode = beat.get("containment") if isinstance(beat, dict) else None
    if not isinstance(mode, str):
        return Check("job containment", False, "unknown until remoted writes its heartbeat", warning=True)
    weak = mode.startswith("processes only")
    return Check("job containment", not weak, mode, warning=weak)
