"""``ailabber whoami``: who the daemons will say you are, and where your spool is."""

from __future__ import annotations

import argparse
import os

from ailabber.cli.common import EXIT_USAGE, print_json, spoold_pid
from ailabber.cli.helptext import describe
from ailabber.daemonkit.spoold_settings import load_spoold_settings
from ailabber.daemonkit.yamlfile import SettingsError
from ailabber.model.joblimits import JobLimits, clock, memory
from ailabber.model.render import duration, size
from ailabber.storage.home import ailabber_home, os_user, spool_path
from ailabber.storage.remoted_beat import pulled, stopped_copy
from ailabber.storage.spool import Spool
from ailabber.storage.upload_limits import LIMITS_FILE, UploadLimits, published_limits


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, """\
Show who the daemons will say you are (your Unix account), your ailabber home and
spool, the remote spoold sends to, whether spoold and remoted run, and the cluster's
limits as spoold last pulled them.  Exits 2 if spoold.yaml is invalid.""", """\
  ailabber whoami
  ailabber whoami --json | jq .limits""")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_spoold_settings(None)
        spool, remote, problem = Spool(settings.spool), str(settings.remote), None
        rescan: float | None = settings.rescan_interval
    except SettingsError as exc:
        # Shown, not hidden behind the defaults, and the exit code says the setup is broken.
        spool, remote, problem, rescan = Spool(spool_path()), None, str(exc), None
    pid = spoold_pid(spool)
    info = {
        "user": os_user(),
        "uid": os.getuid(),
        "home": str(ailabber_home()),
        "spool": str(spool.root),
        "remote": remote,
        "spoold_pid": pid,
        "spoold_running": pid is not None,
        "tasks": len(spool.all_ids()),
    }
    remoted_running, remoted = remoted_info(spool, rescan, pid is not None)
    if problem:
        info["config_error"] = problem
    limits, published_jobs = published_limits(spool.root)
    jobs = published_jobs or JobLimits()
    if args.json:
        print_json({**info, "limits": {**limits.to_dict(), **jobs.to_dict()},
                    "remoted_running": remoted_running, "remoted": remoted})
        return EXIT_USAGE if problem else 0
    info["remoted"] = remoted
    if (spool.root / LIMITS_FILE).exists():
        info.update(limit_lines(limits))
        info.update(job_lines(jobs))
    else:
        info["limits"] = "not known yet (spoold pulls them from the cluster about once a minute)"
    width = max(len(k) for k in info)
    for k, v in info.items():
        print(f"{k.ljust(width)}  {v if v is not None else '-'}")
    return EXIT_USAGE if problem else 0


def remoted_info(spool: Spool, rescan_interval: float | None, spoold_running: bool) -> tuple[bool | None, str]:
    """Whether remoted runs (None: not known), from the heartbeat spoold last pulled: only
    spoold's pulls keep that copy fresh, so without spoold nothing is claimed."""
    beat = pulled(spool.root)
    if not spoold_running or rescan_interval is None:
        return None, "not known while spoold is not running"
    if beat is None:
        return None, "not known yet (spoold pulls its heartbeat from the cluster)"
    if stopped_copy(spool.root, rescan_interval) is not None:
        return False, beat.stopped_text()
    return True, f"running (last heartbeat {duration(beat.age())} ago, pid {beat.pid}, {beat.scheduler})"


def limit_lines(limits: UploadLimits) -> dict[str, str]:
    """The cluster's limits (and the quota used) as spoold last pulled them."""
    def cap(v: int | None, unit: str = "") -> str:
        return "no limit" if v is None else size(v) + unit

    quota = cap(limits.max_disk_bytes)
    if limits.max_disk_bytes is not None and limits.disk_used_bytes is not None:
        quota = (f"{size(limits.disk_used_bytes)} used of {size(limits.max_disk_bytes)} "
                 f"({size(limits.remaining() or 0)} left)")
    return {
        "upload_limit": f"{cap(limits.max_bytes)}, "
                        + ("no file limit" if limits.max_files is None else f"{limits.max_files} files"),
        "disk_quota": quota + " (tasks and logs on the cluster)",
        "log_limit": cap(limits.max_log_bytes, " per task"),
        "uploads_in_flight": "no limit" if limits.max_incoming is None else f"at most {limits.max_incoming}",
    }


def job_lines(jobs: JobLimits) -> dict[str, str]:
    """What one task may ask for, the per-user caps, and what the user has on the cluster
    now, as spoold last pulled them (nothing from a cluster that does not publish them)."""
    if not jobs.known:
        return {}

    def cap(v: int | None, shown: str) -> str | None:
        return None if v is None else shown

    per_task = [cap(jobs.max_gpus_per_task, f"{jobs.max_gpus_per_task} GPU(s)"),
                cap(jobs.max_time_limit_s, f"time limit {clock(jobs.max_time_limit_s or 0)}"),
                cap(jobs.max_memory_mb, f"{memory(jobs.max_memory_mb or 0)} of memory")]
    per_user = [cap(jobs.max_running, f"{jobs.max_running} task(s) handed to the scheduler"),
                cap(jobs.max_gpus, f"{jobs.max_gpus} GPU(s) in use"),
                cap(jobs.max_queued, f"{jobs.max_queued} task(s) waiting in the queue")]
    use = (f"{jobs.running or 0} running, {jobs.pending or 0} waiting, {jobs.gpus_in_use or 0} GPU(s) in use "
           f"({jobs.launched or 0} task(s) handed to the scheduler, {jobs.queued or 0} in remoted's queue)")
    task_caps, user_caps = [c for c in per_task if c], [c for c in per_user if c]
    return {
        "task_limits": "at most " + ", ".join(task_caps) if task_caps else "no limit",
        "user_limits": "at most " + ", ".join(user_caps) + " at once" if user_caps else "no limit",
        "in_use": use + " (as spoold last pulled it)",
    }
