"""What remoted hands a scheduler, and what the job wrapper reads inside the job.

The spec is the wrapper's only input, so the same wrapper runs under the local scheduler
and inside a Slurm allocation.  It is derived by remoted from the task config it read
once at accept time, kept in remoted's private record, and handed to the wrapper out of
the student's reach: on the wrapper's standard input (local) or inside the batch script
that Slurm stores (``slurm``).  Nothing in the student's directory can change it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ailabber.model.remote_layout import LOGS, OUTBOX, RUN, TASKS, USERS, UserArea
from ailabber.storage import fsutil
from ailabber.storage.spool import FILES

if TYPE_CHECKING:
    from ailabber.daemonkit.remoted_settings import RemotedSettings
    from ailabber.model.config import TaskConfig
    from remoted.identity import RunAs

STARTED_FILE = "started.json"
RESULT_FILE = "result.json"


@dataclass
class JobSpec:
    task_id: str
    user: str
    workdir: str            # absolute
    run_dir: str            # absolute: started.json, result.json (written by the job)
    log_dir: str            # absolute: output.log, output.idx, setup.log, wrapper.log
    commands: list[str]
    gpus: int = 0
    cpus: int = 1
    memory_mb: int = 8192
    time_limit_s: int = 3600
    kill_grace: float = 10.0
    env_cache: str | None = None
    pyproject: str | None = None        # absolute paths inside the task's files
    uv_lock: str | None = None
    wheels: list[str] = field(default_factory=list)
    uv: str | None = None               # absolute path of uv, as found by remoted
    python: str | None = None           # interpreter that runs the job wrapper
    signal_before: int = 0              # seconds before the limit the commands get USR1
    path: str | None = None             # PATH for the commands (remoted's, minus its own virtualenv)
    max_log_bytes: int | None = None    # output kept in the task's logs (None: no cap)
    uid: int | None = None              # the account the job runs as (from the user dir's owner)
    gid: int | None = None
    logs: list[str] = field(default_factory=list)      # run.logs, patterns relative to workdir
    results: list[str] = field(default_factory=list)   # run.results (listed when the task ends)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))      # for JSON: no deep copy (dataclasses.asdict copies every list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobSpec:
        return cls(**{k: v for k, v in d.items() if k in _SPEC_FIELDS})

    def to_json(self) -> bytes:
        """What the wrapper reads on its standard input."""
        import json

        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    def prepare_dirs(self) -> None:
        """Create the run and log directories, owned by the job's user.

        Inside a user's area this goes through directory handles (``SafeDir``): the
        student may have replaced ``run`` or ``logs`` with a symlink to anywhere."""
        from remoted.identity import give

        if self.env_cache:
            from remoted.envs import private_dir

            private_dir(Path(self.env_cache), self.uid, self.gid)
        run, logs = Path(self.run_dir), Path(self.log_dir)
        in_area = (run.parents[2].name == self.user and run.parents[3].name == USERS
                   and logs.parents[3] == run.parents[3])
        if not in_area:
            for d in (run, logs):
                fsutil.ensure_dirs(d)
                give(d, self.uid, self.gid)
            return
        from ailabber.storage.safedir import SafeDir

        root_uid = 0 if os.geteuid() == 0 else None
        with SafeDir.open(run.parents[3]) as users, users.sub(self.user) as area:
            with area.sub(TASKS) as tasks, tasks.sub(self.task_id) as tdir, \
                    tdir.sub(RUN, create=True, replace_bad=True) as rdir:
                if root_uid == 0 and self.uid:
                    os.fchown(rdir.fd, self.uid, self.gid if self.gid is not None else -1)
            with area.sub(OUTBOX, create=True, owner=root_uid, replace_bad=True) as outbox, \
                    outbox.sub(self.task_id, create=True, owner=root_uid, replace_bad=True) as odir, \
                    odir.sub(LOGS, create=True, replace_bad=True) as ldir:
                if root_uid == 0 and self.uid:
                    os.fchown(ldir.fd, self.uid, self.gid if self.gid is not None else -1)


#: JobSpec's fields, once: ``from_dict`` runs for every record ``admin`` reads.
_SPEC_FIELDS = frozenset(f.name for f in dataclasses.fields(JobSpec))


class JobDefaults(NamedTuple):
    """What every job spec takes from the admin's settings, made once per (re)load."""

    kill_grace: float
    env_cache: Path                     # the cache root; each user's is <env_cache>/<user>
    python: str                         # the interpreter that runs the wrapper
    uv: str | None                      # uv by absolute path, as found for the jobs
    signal_before: int
    path: str                           # the jobs' PATH

    @classmethod
    def from_settings(cls, settings: RemotedSettings) -> JobDefaults:
        from remoted.identity import find_uv, job_path

        return cls(kill_grace=settings.kill_grace, env_cache=settings.env_cache_dir,
                   python=settings.job_python or sys.executable,
                   uv=settings.uv or find_uv(settings.job_python), signal_before=settings.signal_before_timeout,
                   path=job_path(settings.job_path))


def build_spec(area: UserArea, task_id: str, cfg: TaskConfig, run_as: RunAs, jobs: JobDefaults,
               max_log_bytes: int | None) -> JobSpec:
    """The job spec of an accepted task: its frozen config, its account, the admin's
    settings and the student's log cap now.  Every path is the task's in the user's area
    (the layout's)."""
    task_dir = area.task(task_id)
    files = task_dir / FILES
    env = cfg.environment
    return JobSpec(
        task_id=task_id, user=area.user,
        workdir=str(files / cfg.files.workdir if cfg.files.workdir != "." else files),
        run_dir=str(task_dir / RUN), log_dir=str(area.task_outbox(task_id) / LOGS),
        commands=list(cfg.run.commands), gpus=cfg.resources.gpus, cpus=cfg.resources.cpus,
        memory_mb=cfg.resources.memory_mb, time_limit_s=cfg.resources.time_limit_s,
        kill_grace=jobs.kill_grace, env_cache=str(jobs.env_cache / area.user),
        pyproject=str(files / env.pyproject_toml) if env.pyproject_toml else None,
        uv_lock=str(files / env.uv_lock) if env.uv_lock else None,
        wheels=[str(files / w) for w in env.extra_wheels],
        uid=run_as.uid, gid=run_as.gid, uv=jobs.uv, python=jobs.python,
        signal_before=jobs.signal_before, path=jobs.path, max_log_bytes=max_log_bytes,
        logs=list(cfg.run.logs), results=list(cfg.run.results),
    )
