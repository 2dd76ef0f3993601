"""remoted's settings file (``remoted.yaml``): the remote spool, the scheduler and the
admin's options for it, and the per-user limits.  Read only on the cluster side (and by
``ailabber up``/``doctor``, which set up or check a one-machine remoted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from ailabber.daemonkit.yamlfile import (
    SettingsError,
    beside,
    check_keys,
    hint,
    load_yaml,
    number,
    path_setting,
    path_string,
)
from ailabber.storage.upload_limits import (
    DEFAULT_MAX_DISK_BYTES,
    DEFAULT_MAX_INCOMING,
    DEFAULT_MAX_LOG_BYTES,
    UploadLimits,
)


class SlurmOptions(NamedTuple):
    """The admin's choices for every sbatch call; never influenced by a task."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    extra_args: tuple[str, ...] = ()
    gpu_option: str = "gres"          # "gres": --gres=gpu:N; "gpus": --gpus=N
    bin_dir: str | None = None        # where sbatch/squeue/scontrol/scancel live (default: PATH)
    lost_after: float = 300.0         # seconds a job may be missing from Slurm before "lost"
    jobcomp_log: str | None = None    # JobCompLoc of jobcomp/filetxt, read when sacct has nothing


class UserLimits(NamedTuple):
    max_running: int | None = None    # tasks handed to the scheduler at once, per user
    max_gpus: int | None = None       # GPUs of those tasks together, per user
    max_queued: int | None = None     # tasks waiting in remoted's queue, per user
    max_upload_bytes: int | None = None   # per task; published to clients, checked on accept
    max_upload_files: int | None = None
    # Caps on by default (None: the admin wrote null, no cap); published in limits.json.
    max_disk_bytes: int | None = DEFAULT_MAX_DISK_BYTES   # kept on the cluster (tasks + outbox)
    max_log_bytes: int | None = DEFAULT_MAX_LOG_BYTES     # per task, enforced by the job wrapper
    max_incoming_uploads: int | None = DEFAULT_MAX_INCOMING  # sent and not yet accepted
    max_time_limit: int | None = None     # per task, seconds; published in limits.json, checked at submit
    max_memory: int | None = None         # per task, MiB; the same

    def published(self) -> UploadLimits:
        """What remoted enforces on uploads and publishes to the user as limits.json."""
        return UploadLimits(self.max_upload_bytes, self.max_upload_files, self.max_disk_bytes,
                            self.max_log_bytes, self.max_incoming_uploads)


class ClusterRetention(NamedTuple):
    """remoted.yaml's ``retention``: finished tasks' files on the cluster side are removed
    this long after the task ended, once the student's spoold pulled the results (the
    records, and so the usage, stay)."""
    max_age: float = 90 * 86400.0


RETENTION_KEYS = ("max_age",)

#: The PATH jobs get unless the admin sets ``job_path``: the system's directories only.
DEFAULT_JOB_PATH = "/usr/local/bin:/usr/bin:/bin"


class RemotedSettings(NamedTuple):
    root: Path
    scheduler: str = "local"
    gpus: int | None = None          # None: count with nvidia-smi -L
    poll_interval: float = 1.0
    rescan_interval: float = 5.0
    kill_grace: float = 10.0         # seconds between TERM and KILL when ending a task
    env_cache: Path | None = None    # default <root>/envs
    job_python: str | None = None    # interpreter that runs the job wrapper (default: remoted's own)
    uv: str | None = None            # uv used to build environments (default: found on PATH)
    job_path: str = DEFAULT_JOB_PATH  # PATH of the job wrapper and the task's commands
    containment: str = "auto"        # local jobs: auto | cgroup (required) | processes
    signal_before_timeout: int = 60  # USR1 to the commands this long before the time limit
    transport_account: str | None = None  # service account that owns users/<name> when keys are pinned there
    admin_group: str | None = None   # Unix group whose members may run `ailabber admin` (root always may)
    retention: ClusterRetention | None = ClusterRetention()   # None: off
    slurm: SlurmOptions = SlurmOptions()
    limits: UserLimits = UserLimits()
    source: Path | None = None

    @property
    def env_cache_dir(self) -> Path:
        return self.env_cache or (self.root / "envs")



SCHEDULERS = ("local", "slurm")
CONTAINMENTS = ("auto", "cgroup", "processes")



REMOTED_KEYS = ("root", "scheduler", "gpus", "poll_interval", "rescan_interval", "kill_grace", "env_cache",
                "job_python", "uv", "job_path", "signal_before_timeout", "transport_account", "admin_group", "slurm",
                "limits", "containment", "retention")
SLURM_KEYS = ("partition", "account", "qos", "extra_args", "gpu_option", "bin_dir", "jobcomp_log",
              "lost_after")
LIMIT_KEYS = ("max_running", "max_gpus", "max_queued", "max_upload_bytes", "max_upload_files",
              "max_disk_bytes", "max_log_bytes", "max_incoming_uploads", "max_time_limit", "max_memory")
BYTE_LIMITS = ("max_upload_bytes", "max_disk_bytes", "max_log_bytes")


def _section(path: Path, data: dict[str, Any], key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    sec = data.get(key) or {}
    if not isinstance(sec, dict):
        raise SettingsError(f"{path}: {key}: must be a mapping")
    for k in sec:
        if k not in allowed:
            raise SettingsError(f"{path}: {key}.{k}: unknown key{hint(str(k), allowed)}")
    return sec


def _opt_str(path: Path, sec: dict[str, Any], key: str, where: str) -> str | None:
    v = sec.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or not v or any(ch in v for ch in "\0\n\r"):
        raise SettingsError(f"{path}: {where}.{key}: must be a single-line string")
    return v


def _signal_before(path: Path, data: dict[str, Any]) -> int:
    sig = data.get("signal_before_timeout", 60)
    if isinstance(sig, bool) or not isinstance(sig, int) or not 0 <= sig <= 65535:
        raise SettingsError(f"{path}: signal_before_timeout: must be whole seconds from 0 to 65535")
    return sig


def _slurm(path: Path, data: dict[str, Any]) -> SlurmOptions:
    sec = _section(path, data, "slurm", SLURM_KEYS)
    extra = sec.get("extra_args", [])
    if not isinstance(extra, list) or not all(isinstance(a, str) and a.startswith("-") and "\n" not in a for a in extra):
        raise SettingsError(f"{path}: slurm.extra_args: must be a list of sbatch options (each starting with '-')")
    gpu_option = sec.get("gpu_option", "gres")
    if gpu_option not in ("gres", "gpus"):
        raise SettingsError(f"{path}: slurm.gpu_option: must be 'gres' or 'gpus', got {gpu_option!r}")
    return SlurmOptions(
        partition=_opt_str(path, sec, "partition", "slurm"), account=_opt_str(path, sec, "account", "slurm"),
        qos=_opt_str(path, sec, "qos", "slurm"), extra_args=tuple(extra), gpu_option=gpu_option,
        bin_dir=_opt_str(path, sec, "bin_dir", "slurm"),
        lost_after=number(path, sec, "lost_after", 300.0, 0, 86400 * 7),
        jobcomp_log=_opt_str(path, sec, "jobcomp_log", "slurm"),
    )


def _limits(path: Path, data: dict[str, Any]) -> UserLimits:
    """A key left out keeps its default (no limit, or the course default for the caps);
    ``null`` means no limit."""
    sec = _section(path, data, "limits", LIMIT_KEYS)
    defaults = UserLimits()
    return UserLimits(**{k: _limit(path, k, sec[k]) if k in sec else getattr(defaults, k) for k in LIMIT_KEYS})


def _limit(path: Path, key: str, v: Any) -> int | None:
    try:
        return limit_value(key, v)
    except ValueError as exc:
        raise SettingsError(f"{path}: limits.{key}: {exc}") from None


def limit_value(key: str, v: Any) -> int | None:
    """One limit as remoted.yaml writes it: a whole number, for bytes also a size such as
    ``20G`` (binary units), for the time and memory caps what task_config.toml takes;
    ``None`` means no limit.  ValueError says what is expected.  The same rule for the
    staff's per-student overrides on the command line (``ailabber admin limits``)."""
    if v is None:
        return None
    if key in ("max_time_limit", "max_memory"):        # as task_config.toml writes them
        from ailabber.model.joblimits import resource_limit

        return resource_limit(key, v)
    if key in BYTE_LIMITS and isinstance(v, str):
        from ailabber.model.quantities import parse_size

        try:
            v = parse_size(v)
        except ValueError:
            raise ValueError(f"must be a size such as 20G or 500M, or a whole number "
                             f"of bytes (or null for no limit), got {v!r}") from None
    return checked_limit(key, v)


def checked_limit(key: str, v: Any) -> int | None:
    """A limit as ``UserLimits`` holds it (seconds, MiB, bytes or a count; None: no limit),
    checked: what a staff request and remoted's record of the overrides carry, already
    read once from what a person wrote, so never read in units again."""
    lowest = 0 if key == "max_gpus" else 1
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < lowest):
        unit = " bytes (or a size such as 20G)" if key in BYTE_LIMITS else ""
        raise ValueError(f"must be a whole number >= {lowest}{unit} (or null for no limit)")
    return v


def load_remoted_settings(path: Path) -> RemotedSettings:
    data = load_yaml(path)
    check_keys(path, data, REMOTED_KEYS)
    root = path_setting(path, data, "root")
    if root is None:
        raise SettingsError(f"{path}: root: required (the remote spool directory)")
    sched = data.get("scheduler", "local")
    if sched not in SCHEDULERS:
        raise SettingsError(f"{path}: scheduler: must be one of {', '.join(SCHEDULERS)}, got {sched!r}")
    containment = data.get("containment", "auto")
    if containment not in CONTAINMENTS:
        raise SettingsError(f"{path}: containment: must be one of {', '.join(CONTAINMENTS)}, got {containment!r}")
    gpus = data.get("gpus", "auto")
    if gpus == "auto" or gpus is None:
        gpus_v: int | None = None
    elif isinstance(gpus, int) and not isinstance(gpus, bool) and 0 <= gpus <= 1024:
        gpus_v = gpus
    else:
        raise SettingsError(f"{path}: gpus: must be 'auto' or an integer >= 0, got {gpus!r}")
    return RemotedSettings(
        root=root,
        scheduler=sched,
        gpus=gpus_v,
        poll_interval=number(path, data, "poll_interval", 1.0, 0.05, 3600),
        rescan_interval=number(path, data, "rescan_interval", 5.0, 0.1, 3600),
        kill_grace=number(path, data, "kill_grace", 10.0, 0.0, 3600),
        env_cache=path_setting(path, data, "env_cache"),
        job_python=_program(path, data, "job_python"),
        uv=_program(path, data, "uv"),
        job_path=_job_path(path, data.get("job_path", DEFAULT_JOB_PATH)),
        containment=containment,
        signal_before_timeout=_signal_before(path, data),
        transport_account=_account(path, data.get("transport_account")),
        admin_group=_group(path, data.get("admin_group")),
        retention=_retention(path, data),
        slurm=_slurm(path, data),
        limits=_limits(path, data),
        source=path,
    )


def _job_path(path: Path, v: Any) -> str:
    """A PATH of absolute directories: an empty or relative entry would make the shell look
    for programs in whatever directory a command runs in."""
    if (not isinstance(v, str) or any(ch in v for ch in "\0\n\r")
            or not all(d.startswith("/") for d in v.split(":"))):
        raise SettingsError(f"{path}: job_path: must be absolute directories separated by ':' "
                            f"(like {DEFAULT_JOB_PATH}), got {v!r}")
    return v


def _account(path: Path, v: Any) -> str | None:
    if v is None:
        return None
    import pwd

    if not isinstance(v, str) or not v:
        raise SettingsError(f"{path}: transport_account: must be a user name")
    try:
        pwd.getpwnam(v)
    except KeyError:
        raise SettingsError(f"{path}: transport_account: no account named {v!r}") from None
    return v


def _retention(path: Path, data: dict[str, Any]) -> ClusterRetention | None:
    """``retention``: ``off`` (YAML false) or null turns it off, ``on`` is the default, a
    mapping sets ``max_age`` (an age such as ``90d``)."""
    v = data.get("retention", True)
    if v is None or v is False:
        return None
    if v is True:
        return ClusterRetention()
    sec = _section(path, data, "retention", RETENTION_KEYS)
    if "max_age" not in sec:
        return ClusterRetention()
    from ailabber.model.quantities import parse_age

    try:
        return ClusterRetention(parse_age(str(sec["max_age"])))
    except ValueError as exc:
        raise SettingsError(f"{path}: retention.max_age: {exc}") from None


def _group(path: Path, v: Any) -> str | None:
    """A Unix group that exists now: a typo would otherwise lock every member of staff out."""
    if v is None:
        return None
    import grp

    if not isinstance(v, str) or not v:
        raise SettingsError(f"{path}: admin_group: must be a Unix group name")
    try:
        grp.getgrnam(v)
    except KeyError:
        raise SettingsError(f"{path}: admin_group: no group named {v!r}") from None
    return v


def _program(path: Path, data: dict[str, Any], key: str) -> str | None:
    """A program: a bare name is looked up on PATH, anything with a slash is a path."""
    v = path_string(path, data, key, "a program name or path")
    if v is None:
        return None
    if "/" not in v:
        import shutil

        found = shutil.which(v)
        if not found:
            raise SettingsError(f"{path}: {key}: '{v}' is not on PATH")
        return found
    return str(beside(path, v))


