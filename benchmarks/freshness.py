"""Figure 7: how long after Slurm changes a job's state ``ailabber status`` shows it.

Each task runs ``sleep 2`` under the real Slurm.  Two watchers run side by side: one polls
``squeue`` every 50 ms and notes when the job is first seen running and first seen
completed; the other reads the task's status exactly as ``ailabber status`` does
(``Spool.read_status`` on the spool spoold serves) every 10 ms and notes when it first
says ``running`` and ``completed``.  Each task gives two samples (start and end).  At the
end ``ailabber status --json`` itself is run to confirm it shows the same.  Local
transport: remoted and spoold as root on one root.  ssh: a student whose spoold reaches
the root through a loopback sshd, key pinned with rrsync.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import BenchPipeline, Ctx, Row, attempt, median, p95, ratio, timed, write_config
from benchmarks.common import run as run_cmd
from benchmarks.infra import make_site
from benchmarks.watch import SqueueWatch, StatusWatch
from testbed.slurm_cluster import SlurmCluster
from testbed.sshd import Sshd
from testbed.unix_users import chown_tree

LOCAL = ("status freshness, Slurm change -> `ailabber status` (local)", "s", "<= 1.5 s")
SSH = ("status freshness, Slurm change -> `ailabber status` (ssh)", "s", "<= 3 s")
FIGURES = (LOCAL, SSH)
DONE = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")


def _samples(p: BenchPipeline, project: Path, cluster: SlurmCluster, n: int) -> tuple[list[float], str]:
    out: list[float] = []
    spool = p.home / "spool"
    last = ""
    with SqueueWatch(cluster) as sq:
        for _ in range(n):
            task_id = p.submit(project)
            with StatusWatch(spool, task_id) as sw:
                name = f"ailabber-{task_id}"
                run_sq = sq.wait(90, name=name, states=("RUNNING",))
                run_st = sw.wait("running", 60)
                end_sq = sq.wait(90, name=name, states=DONE)
                end_st = sw.wait("completed", 60)
            out += [run_st - run_sq, end_st - end_sq]
            last = task_id
    shown = p.status(last)
    if shown.get("state") != "completed":
        raise RuntimeError(f"`ailabber status` shows {shown.get('state')} for a completed job")
    return out, last


def _floor(p: BenchPipeline, task_id: str, cluster: SlurmCluster, reps: int,
           ssh: tuple[Sshd, Path] | None = None) -> float:
    """The least any pull-based status path costs: one ``squeue`` for the job and one rsync
    of the task's published ``status.json`` over the same transport (over ssh as the
    student, through one multiplexed connection, as spoold does)."""
    import os
    import pwd
    import subprocess
    import tempfile

    user = p.client_user or "root"
    rel = f"outbox/{task_id}/status.json"
    dest = Path(tempfile.mkdtemp(prefix="ailabber-bench-fresh-"))
    kw: dict[str, Any] = {}
    if ssh is None:
        cmd = ["rsync", "-t", str(p.root / "users" / user / rel), str(dest / "status.json")]
    else:
        sshd, key = ssh
        pw = pwd.getpwnam(user)
        os.chown(dest, pw.pw_uid, pw.pw_gid)
        rsh = " ".join(["ssh", "-i", str(key), "-p", str(sshd.port), "-o", "BatchMode=yes",
                        *[f"-o {o}" for o in sshd.client_options()], "-o ControlMaster=auto",
                        f"-o ControlPath={dest}/cm-%C", "-o ControlPersist=30"])
        cmd = ["rsync", "-t", "-e", rsh, f"{user}@{sshd.listen}:/{rel}", str(dest / "status.json")]
        kw = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [],
              "env": {"PATH": os.environ["PATH"], "HOME": pw.pw_dir}}
    job = cluster.run("squeue", "-h", "-t", "all", f"--name=ailabber-{task_id}", "-o", "%i").stdout.split()[0]

    def once() -> None:
        cluster.run("squeue", "-h", "-t", "all", "-j", job, "-o", "%T")
        run_cmd(cmd, **kw)

    try:
        once()                                            # opens the multiplexed connection
        return median([timed(once) for _ in range(reps)])
    finally:
        if ssh is not None:
            subprocess.run(["ssh", "-o", f"ControlPath={dest}/cm-%C", "-p", str(ssh[0].port), "-O", "exit",
                            f"{user}@{ssh[0].listen}"], capture_output=True, check=False, **kw)
        subprocess.run(["rm", "-rf", str(dest)], check=False)


def _project(base: Path, owner: str | None) -> Path:
    project = base / "project"
    project.mkdir(parents=True)
    (project / "train.py").write_text("print('hello')\n")
    write_config(project, ["sleep 2"])
    if owner:
        chown_tree(project, owner)
    return project


def _row(spec: tuple[str, str, str], xs: list[float], floor: float, limit: float, how: str) -> Row:
    v = median(xs)
    return Row(*spec, value=v, floor=floor, ratio=ratio(v, floor), met=v <= limit,
               floor_what="one `squeue` plus one rsync of the published status.json over the same transport",
               notes=(f"median of {len(xs)} changes (job started, job ended), measured from the moment squeue "
                      f"shows the change; p95 {p95(xs):.2f} s, max {max(xs):.2f} s; {how}; poll_interval 0.2 s "
                      "on both daemons; an `ailabber status` call adds its own run time on top"))


def _local(ctx: Ctx) -> list[Row]:
    cluster = ctx.infra.slurm()
    base = ctx.scratch / "freshness-local"
    p = BenchPipeline(base, scheduler="slurm", gpus=0, remoted_env={"SLURM_CONF": str(cluster.conf)},
                      remoted_extra={"signal_before_timeout": 0})
    p.start_all()
    try:
        xs, last = _samples(p, _project(base, None), cluster, ctx.n(10, 3))
        floor = _floor(p, last, cluster, 5)
    finally:
        p.stop_all()
    return [_row(LOCAL, xs, floor, 1.5, "spoold reaches the root as a local path")]


def _ssh(ctx: Ctx) -> list[Row]:
    cluster = ctx.infra.slurm()
    user = ctx.infra.users(1)[0]
    site = make_site(ctx.infra, "fresh-ssh", [user], transport="ssh", scheduler="slurm")
    try:
        site.start()
        xs, last = _samples(site.pipes[user], _project(site.base / "work", user), cluster, ctx.n(10, 3))
        assert site.sshd is not None
        floor = _floor(site.pipes[user], last, cluster, 5, (site.sshd, site.keys[user]))
    finally:
        site.cleanup()
    return [_row(SSH, xs, floor, 3.0, "spoold reaches the root through sshd on loopback (rrsync-pinned key)")]


def run(ctx: Ctx) -> list[Row]:
    return attempt([LOCAL], lambda: _local(ctx)) + attempt([SSH], lambda: _ssh(ctx))
