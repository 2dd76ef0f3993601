"""What one task may ask for on the cluster, and what a student has running there now.

remoted enforces these limits (``limits`` in remoted.yaml) and publishes them with the
student's current use in ``limits.json``; ``submit`` checks a task against the copy spoold
pulled, so that a task that could never run is refused on the student's machine, in one
line naming the field and the limit, instead of failing on the cluster later.  The same
``problems`` is the rule in both places.

Pure: values in, values out.
"""

from __future__ import annotations

from typing import Any, NamedTuple

#: limits.json keys of the per-task caps, the per-user caps and the current use.
TASK_KEYS = ("max_gpus_per_task", "max_time_limit_s", "max_memory_mb")
USER_KEYS = ("max_running", "max_gpus", "max_queued")
USE_KEYS = ("running", "pending", "launched", "queued", "gpus_in_use")


class JobLimits(NamedTuple):
    max_gpus_per_task: int | None = None   # the per-user GPU cap, or the machine's GPUs if fewer
    max_time_limit_s: int | None = None    # resources.time_limit
    max_memory_mb: int | None = None       # resources.memory
    max_running: int | None = None         # tasks handed to the scheduler at once, per user
    max_gpus: int | None = None            # GPUs of those tasks together, per user
    max_queued: int | None = None          # tasks waiting in remoted's queue, per user
    # Not limits: the student's tasks on the cluster as remoted last counted them.
    running: int | None = None             # running now
    pending: int | None = None             # accepted, not running yet (remoted's queue or the scheduler's)
    launched: int | None = None            # handed to the scheduler: what max_running counts
    queued: int | None = None              # in remoted's queue: what max_queued counts
    gpus_in_use: int | None = None         # GPUs of the launched tasks: what max_gpus counts

    def to_dict(self) -> dict[str, Any]:
        return dict(zip(TASK_KEYS + USER_KEYS + USE_KEYS, self))

    @classmethod
    def from_dict(cls, d: Any) -> JobLimits:
        """Anything malformed counts as "not known": remoted checks again anyway."""
        if not isinstance(d, dict):
            return cls()

        def num(v: Any) -> int | None:
            return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None

        return cls(*(num(d.get(k)) for k in TASK_KEYS + USER_KEYS + USE_KEYS))

    @property
    def known(self) -> bool:
        """Whether the cluster published any of these (an older remoted publishes none)."""
        return any(v is not None for v in self)

    def problems(self, gpus: int, time_limit_s: int, memory_mb: int) -> list[tuple[str, str]]:
        """``(field, what is wrong)`` for each resource a task asks for beyond what any
        of its tasks may ever get; [] when it can run."""
        out = []
        if self.max_gpus_per_task is not None and gpus > self.max_gpus_per_task:
            out.append(("resources.gpus", f"asks for {gpus} GPU(s); the cluster allows at most "
                                          f"{self.max_gpus_per_task} per task"))
        if self.max_time_limit_s is not None and time_limit_s > self.max_time_limit_s:
            out.append(("resources.time_limit", f"asks for {clock(time_limit_s)}; the cluster allows at most "
                                                f"{clock(self.max_time_limit_s)} per task"))
        if self.max_memory_mb is not None and memory_mb > self.max_memory_mb:
            out.append(("resources.memory", f"asks for {memory(memory_mb)}; the cluster allows at most "
                                            f"{memory(self.max_memory_mb)} per task"))
        return out


def clock(seconds: int) -> str:
    """Seconds as a time limit is written in task_config.toml (``D-HH:MM:SS`` or ``H:MM:SS``)."""
    days, rest = divmod(max(0, int(seconds)), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{days}-{h:02d}:{m:02d}:{s:02d}" if days else f"{h}:{m:02d}:{s:02d}"


def memory(mb: int) -> str:
    """MiB as resources.memory is written (``512M``, ``32G``, ``1T``)."""
    for unit, size in (("T", 1024 * 1024), ("G", 1024)):
        if mb >= size and mb % size == 0:
            return f"{mb // size}{unit}"
    return f"{mb}M"


#: The remoted.yaml ``limits`` keys written as task_config.toml writes the resource.
RESOURCE_LIMITS = ("max_time_limit", "max_memory")


def resource_limit(key: str, value: Any) -> int:
    """``limits.max_time_limit`` (to seconds) or ``limits.max_memory`` (to MiB), written as
    a task's ``resources.time_limit`` or ``resources.memory`` is; ValueError says what is
    expected."""
    from pathlib import Path

    from ailabber.model.config_fields import Problems, memory_field, time_limit_field

    p = Problems(Path("remoted.yaml"))
    if key == "max_time_limit":
        got = time_limit_field(p, {"time_limit": value}, 0)
        expected = 'a time limit like "24:00:00" or "2-00:00:00" (a bare number means minutes)'
    else:
        got = memory_field(p, {"memory": value}, 0)
        expected = 'a size like "32G" or "512M" (a bare number means MiB)'
    if p.lines or got <= 0:
        raise ValueError(f"must be {expected}, as in task_config.toml, or null for no limit; got {value!r}")
    return got
