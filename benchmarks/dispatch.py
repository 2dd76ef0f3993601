"""Figure 3: from ``ailabber submit`` to the job running in Slurm, local transport.

The clock starts before ``ailabber submit`` is executed and stops when ``squeue`` first
shows the task's job (``ailabber-<id>``) running.  The floor is the same job handed to
Slurm directly: the clock starts before ``sbatch`` (same resources, a two-line script) and
stops when ``squeue`` shows it running.  One watcher polls ``squeue`` for both, and the two
kinds of submission alternate.  Slurm starts jobs on a one-second tick, so each
submission waits a random fraction of a second first: otherwise the alternation locks
onto the tick and both sides measure the same whole second.  The daemons use the test bed's intervals
(``poll_interval: 0.2``, ``rescan_interval: 1.0``) with fsync on.
"""

from __future__ import annotations

import json
import random
import subprocess
import time

from benchmarks.common import AILABBER, BenchPipeline, Ctx, Row, median, p95, ratio, write_config
from benchmarks.watch import STARTED, SqueueWatch

FIGURE = ("dispatch latency, submit -> running (local transport, Slurm)", "s", "<= +0.5 s over sbatch")
FIGURES = (FIGURE,)
SLEEP = 3


def run(ctx: Ctx) -> list[Row]:
    cluster = ctx.infra.slurm()
    base = ctx.scratch / "dispatch"
    p = BenchPipeline(base, scheduler="slurm", gpus=0, remoted_env={"SLURM_CONF": str(cluster.conf)},
                      remoted_extra={"signal_before_timeout": 0})
    project = base / "project"
    project.mkdir(parents=True)
    (project / "train.py").write_text("print('hello')\n")
    write_config(project, [f"sleep {SLEEP}"])
    script = base / "floor.sbatch"
    script.write_text(f"#!/bin/bash\nexec sleep {SLEEP}\n")
    script.chmod(0o755)
    floor_args = ["sbatch", "--parsable", "--job-name=bench-floor", f"--chdir={base}", "--output=/dev/null",
                  "--export=NONE,LANG=C.UTF-8", "--cpus-per-task=1", "--mem=100M", "--time=0-00:01:00",
                  str(script)]
    n = ctx.n(20, 8)
    ours, floor, cli, queued = [], [], [], []
    rng = random.Random(1)
    p.start_all()
    try:
        with SqueueWatch(cluster) as sq:
            for i in range(n + 1):                       # the first pair warms caches and is not counted
                time.sleep(rng.random())
                t0 = time.monotonic()
                r = subprocess.run([*AILABBER, "submit", "--json"], cwd=project, env=p.env(),
                                   capture_output=True, text=True, check=False)
                t_cli = time.monotonic()
                if r.returncode != 0:
                    raise RuntimeError(f"ailabber submit: {r.stderr.strip()[-400:]}")
                task_id = json.loads(r.stdout)["id"]
                p.submitted.append(task_id)
                t1 = sq.wait(60, name=f"ailabber-{task_id}")
                tq = sq.seen(name=f"ailabber-{task_id}", states=("PENDING", *STARTED))
                time.sleep(rng.random())
                t2 = time.monotonic()
                job = str(cluster.sbatch(*floor_args[1:]))
                t3 = sq.wait(60, job=job)
                if i:
                    ours.append(t1 - t0)
                    cli.append(t_cli - t0)
                    queued.append((tq or t1) - t0)
                    floor.append(t3 - t2)
    finally:
        p.stop_all()
        cluster.run("scancel", "--name=bench-floor", check=False)
        if p.submitted:
            cluster.run("scancel", "--name=" + ",".join(f"ailabber-{t}" for t in p.submitted), check=False)
    v, f = median(ours), median(floor)
    return [Row(*FIGURE, value=v, floor=f, ratio=ratio(v, f), met=v - f <= 0.5,
                floor_what="plain `sbatch` of the same job -> running",
                notes=(f"median of {n}; median overhead {1000 * (v - f):.0f} ms, mean overhead "
                       f"{1000 * (sum(ours) - sum(floor)) / n:.0f} ms; p95 {p95(ours):.2f} s (sbatch p95 "
                       f"{p95(floor):.2f} s); submit -> job in squeue {1000 * median(queued):.0f} ms, "
                       f"of which `ailabber submit` itself {1000 * median(cli):.0f} ms; Slurm starts jobs on a 1 s tick, "
                       "so each submission waits a random fraction of a second first; "
                       "squeue polled every 50 ms; fsync on"))]
