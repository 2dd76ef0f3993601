"""Figure 4: a burst of tasks from five students, until every task has a Slurm job id.

Five real accounts (``ailabber-bench1..5``), each with its own spool and spoold (running
as that student), one remoted as root on one root, the real Slurm.  Each student's tasks
are first committed with ``ailabber.workstation.submit.submit`` (the code behind ``ailabber submit``,
run as the student) into a staging spool; at t0 they are renamed
into the students' ``spool/new/`` all at once, round-robin, which is exactly the commit
``submit`` does.  The clock stops when ``squeue`` lists a job named ``ailabber-<id>``
for every task.  Then Slurm is asked once more: a task without a job is lost, a task with
two is duplicated.  The floor is a plain loop of ``sbatch`` of the same count, as the same
students in turn, with the same resources.  On both sides the jobs are submitted held
(``--hold``, for remoted through ``slurm.extra_args``), so that two cores measure
dispatch rather than also running hundreds of jobs; they are cancelled afterwards.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from collections import Counter
from functools import partial
from pathlib import Path

from ailabber.model.task import parse_iso
from ailabber.storage.fsutil import read_json_lines
from benchmarks.common import Ctx, Row, attempt, upload_span, wait_until, write_config
from benchmarks.infra import Site, make_site
from testbed.slurm_cluster import SlurmCluster
from testbed.unix_users import chown_tree, world_dir

FIGURES = (
    ("burst, tasks/s until all have a job id (local transport)", "tasks/s", ">= 0.5x sbatch loop"),
    ("burst, tasks lost + duplicated (local transport)", "tasks", "= 0"),
    ("burst, tasks/s until all have a job id (ssh)", "tasks/s", ">= 0.25x sbatch loop"),
    ("burst, tasks lost + duplicated (ssh)", "tasks", "= 0"),
)
N_USERS = 5


STAGE = """\
import sys
from pathlib import Path
from ailabber.storage.spool import Spool
from ailabber.workstation.submit import submit
staging = Spool(Path(sys.argv[2]))
for _ in range(int(sys.argv[3])):
    submit(Path(sys.argv[1]), staging)
"""


def _prepare(site: Site, py: Path, users: list[str], n: int) -> dict[str, list[str]]:
    """Commit each student's share of the ``n`` tasks, as that student and with the code
    behind ``ailabber submit``, into ``<home>/staging`` (all students at once)."""
    procs = []
    for k, user in enumerate(users):
        p = site.pipes[user]
        project = site.base / f"project-{user}"
        project.mkdir()
        (project / "train.py").write_text("print('hello')\n")
        write_config(project, ["true"])
        chown_tree(project, user)
        count = n // len(users) + (k < n % len(users))
        pw = pwd.getpwnam(user)
        procs.append(subprocess.Popen(
            [str(py), "-c", STAGE, str(project / "task_config.toml"), str(p.home / "staging"), str(count)],
            env=p.env(), user=pw.pw_uid, group=pw.pw_gid, extra_groups=[], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"staging the burst's tasks failed: {err.strip()[-500:]}")
    return {u: sorted(os.listdir(site.pipes[u].home / "staging" / "new")) for u in users}


def _first_pass_done(logdir: Path) -> bool:
    return any("pass took" in f.read_text(errors="replace") for f in logdir.glob("spoold-*.log"))


def _job_names(cluster: SlurmCluster) -> Counter[str]:
    r = cluster.run("squeue", "-h", "-t", "all", "-o", "%j", check=False)
    return Counter(r.stdout.split())


def _burst(ctx: Ctx, transport: str, users: list[str], n: int) -> tuple[float, int, int, str]:
    cluster = ctx.infra.slurm()
    site = make_site(ctx.infra, f"burst-{transport}", users, transport=transport, scheduler="slurm",
                     remoted_extra={"slurm": {"extra_args": ["--hold"]}})
    try:
        staged = _prepare(site, ctx.infra.student_python(), users, n)
        site.start()
        for u in users:
            new = site.pipes[u].home / "spool" / "new"
            wait_until(new.is_dir, 30, f"{u}'s spool")
            wait_until(partial(_first_pass_done, site.pipes[u].logdir), 30, f"{u}'s spoold")
        wanted = {f"ailabber-{t}" for ids in staged.values() for t in ids}
        order = [(u, t) for i in range(max(map(len, staged.values()))) for u in users
                 if i < len(staged[u]) for t in [staged[u][i]]]
        t0, wall0 = time.monotonic(), time.time()
        for u, t in order:
            home = site.pipes[u].home
            os.rename(home / "staging" / "new" / t, home / "spool" / "new" / t)
        deadline = t0 + 120 + n
        seen: Counter[str] = Counter()
        while time.monotonic() < deadline:
            seen = _job_names(cluster)
            if wanted <= set(seen):
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        time.sleep(2.0)                                   # let a duplicate, if any, show up too
        seen = _job_names(cluster)
        lost = sum(1 for w in wanted if w not in seen)
        dup = sum(seen[w] - 1 for w in wanted if seen[w] > 1)
        note = "" if not lost else f"; {lost} tasks still had no job after {elapsed:.0f} s ({_why(site, staged, seen)})"
        note += _stages(site, staged, wall0) + _passes(site)
        return (n - lost) / elapsed, lost, dup, note
    finally:
        cluster.run("scancel", "--state=PENDING", check=False)
        site.cleanup()


def _why(site: Site, staged: dict[str, list[str]], seen: Counter[str]) -> str:
    """What the tasks without a job say about themselves (their status in the spool)."""
    from ailabber.storage.spool import Spool

    states: Counter[str] = Counter()
    example = ""
    for u, ids in staged.items():
        spool = Spool(site.pipes[u].home / "spool")
        for t in ids:
            if f"ailabber-{t}" in seen:
                continue
            st = spool.read_status(t)
            key = f"{st.state}/{st.reason}" if st else "unreadable"
            states[key] += 1
            if st is not None and st.message and not example:
                example = st.message[:200]
    return ", ".join(f"{k}: {v}" for k, v in states.most_common(3)) + (f"; e.g. {example!r}" if example else "")


def _stages(site: Site, staged: dict[str, list[str]], wall0: float) -> str:
    """When the last upload finished and the last job id was published, from the tasks'
    own event histories (local upload events, remote launch events merged by spoold)."""
    uploaded, launched = [], []
    for u, ids in staged.items():
        spool = site.pipes[u].home / "spool"
        for t in ids:
            for stage in ("synced", "new", "done"):
                f = spool / stage / t / "events.jsonl"
                if f.exists():
                    events = [e for e in read_json_lines(f) if isinstance(e, dict)]
                    up = upload_span(events)
                    if up is not None:
                        uploaded.append(up[1] - wall0)
                    for e in events:
                        at = parse_iso(e.get("at"))
                        if at is not None and e.get("reason") == "launching" and e.get("source") == "remote":
                            launched.append(at - wall0)
                    break
    if not uploaded or not launched:
        return ""
    return (f"; from t0, the last upload finished after {max(uploaded):.1f} s (median {sorted(uploaded)[len(uploaded) // 2]:.1f} s)"
            f" and remoted published the last job id after {max(launched):.1f} s")


def _passes(site: Site) -> str:
    """remoted's longest passes, from its --verbose log ("pass took N s")."""
    import re

    took = [float(m) for f in site.first.logdir.glob("remoted-*.log")
            for m in re.findall(r"pass took ([\d.]+)s", f.read_text(errors="replace"))]
    busy = sorted((t for t in took if t >= 0.05), reverse=True)
    if not busy:
        return ""
    return f"; remoted's passes of 50 ms or more: {len(busy)}, longest {', '.join(f'{t:.1f}' for t in busy[:4])} s"


def _sbatch_loop(ctx: Ctx, users: list[str], n: int) -> float:
    cluster = ctx.infra.slurm()
    d = world_dir("ailabber-bench-floor-")
    script = d / "job.sbatch"
    script.write_text("#!/bin/bash\ntrue\n")
    os.chmod(script, 0o755)
    env = cluster.env(PATH=os.environ.get("PATH", "/usr/bin:/bin"), LANG="C.UTF-8")
    args = ["sbatch", "--parsable", "--hold", "--job-name=bench-burst-floor", "--chdir=/tmp", "--output=/dev/null",
            "--export=NONE,LANG=C.UTF-8", "--cpus-per-task=1", "--mem=100M", "--time=0-00:01:00", str(script)]
    pws = [pwd.getpwnam(u) for u in users]
    try:
        t0 = time.monotonic()
        for i in range(n):
            pw = pws[i % len(pws)]
            r = subprocess.run(args, env={**env, "HOME": pw.pw_dir, "USER": pw.pw_name}, capture_output=True,
                               text=True, user=pw.pw_uid, group=pw.pw_gid, extra_groups=[], check=False)
            if r.returncode != 0:
                raise RuntimeError(f"sbatch: {r.stderr.strip()}")
        return n / (time.monotonic() - t0)
    finally:
        cluster.run("scancel", "--name=bench-burst-floor", check=False)
        subprocess.run(["rm", "-rf", str(d)], check=False)


def _measure(ctx: Ctx, transport: str, specs: tuple[tuple[str, str, str], ...], need: float) -> list[Row]:
    n = ctx.n(500, 100)
    reps = 1 if ctx.quick else 3          # a burst's rate moves by ±10 % from run to run here
    users = ctx.infra.users(N_USERS)
    runs = []
    for _ in range(reps):
        floor = _sbatch_loop(ctx, users, n)
        rate, lost, dup, note = _burst(ctx, transport, users, n)
        runs.append((rate / floor, rate, floor, lost, dup, note))
    r, rate, floor, _lost, _dup, note = sorted(runs)[len(runs) // 2]       # the run with the median ratio
    lost, dup = sum(x[3] for x in runs), sum(x[4] for x in runs)
    common = f"{n} tasks from {N_USERS} students; jobs held on both sides, cancelled afterwards"
    if reps > 1:
        common += (f"; median of {reps} bursts, each against its own sbatch loop (ratios "
                   + ", ".join(f"{x[0]:.3f}" for x in runs) + "); the median burst's details follow")
    return [
        Row(*specs[0], value=rate, floor=floor, ratio=r, met=r >= need and lost == 0 and dup == 0,
            floor_what=f"a plain loop of {n} `sbatch` as the same students",
            notes=f"{common}; {lost} lost, {dup} duplicated in all{note}"),
        Row(*specs[1], value=float(lost + dup), floor=0.0, met=lost == 0 and dup == 0,
            floor_what="the sbatch loop loses and duplicates nothing by construction",
            notes=f"{lost} lost, {dup} duplicated over {reps} burst(s) of {n}; checked with squeue 2 s after the "
                  "last job id"),
    ]


def run(ctx: Ctx) -> list[Row]:
    rows = []
    for transport, specs, need in (("local", FIGURES[0:2], 0.5), ("ssh", FIGURES[2:4], 0.25)):
        rows += attempt(specs, partial(_measure, ctx, transport, specs, need))
    return rows
