"""Figure 9: what the two daemons cost while nothing happens.

Both run with the settings ``ailabber up`` writes (``poll_interval: 0.5``, the default
``rescan_interval`` of 5 s, the local scheduler) on an empty spool and root.  After their
first pass and a second of settling, their CPU time (own and children's) is measured over
the window with psutil, and the peak RSS is the kernel's high-water mark (``VmHWM``) at
the end, which covers start-up as well.  The CPU floor is a bare interpreter that wakes
as often as an idle daemon must (every ``rescan_interval``, 5 s) and lists three
directories, measured the same way: on a virtual machine an idle process's wake-up can
cost far more than its few instructions, and this shows what one costs here.  The RSS
floor is the same bare interpreter.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from functools import partial
from pathlib import Path

import psutil
import yaml

from benchmarks.common import PY, Ctx, Row, ratio, wait_until

CPU_S = ("idle spoold: CPU", "%", "<= 0.5 %")
CPU_R = ("idle remoted: CPU", "%", "<= 0.5 %")
RSS_S = ("idle spoold: peak RSS", "MB", "<= 60 MB")
RSS_R = ("idle remoted: peak RSS", "MB", "<= 60 MB")
FIGURES = (CPU_S, CPU_R, RSS_S, RSS_R)


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def _hwm_mb(pid: int) -> float:
    m = re.search(r"^VmHWM:\s*(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    if not m:
        raise RuntimeError(f"no VmHWM for pid {pid}")
    return int(m.group(1)) / 1024


RESCAN = 5.0      # the default rescan_interval: an idle daemon's cadence
FLOOR = """\
import os, sys, threading, time
home, every, end = sys.argv[1], float(sys.argv[2]), time.monotonic() + float(sys.argv[3])
wake = threading.Event()
while time.monotonic() < end:
    wake.wait(every)
    for d in ("new", "synced", "requests"):
        os.listdir(os.path.join(home, "spool", d))
"""


def _says(log: Path, text: str) -> bool:
    return text in log.read_text(errors="replace")


def run(ctx: Ctx) -> list[Row]:
    window = ctx.n(60, 20)
    base = ctx.scratch / "idle"
    home, root = base / "home", base / "remote"
    home.mkdir(parents=True)
    (home / "spoold.yaml").write_text(yaml.safe_dump({"spool": str(home / "spool"), "remote": str(root),
                                                      "poll_interval": 0.5}))
    (base / "remoted.yaml").write_text(yaml.safe_dump({"root": str(root), "scheduler": "local", "gpus": 0,
                                                       "poll_interval": 0.5}))
    env = dict(os.environ, AILABBER_HOME=str(home))
    env.pop("AILABBER_FSYNC", None)
    logs = {n: base / f"{n}.log" for n in ("spoold", "remoted")}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, cfg in (("remoted", base / "remoted.yaml"), ("spoold", home / "spoold.yaml")):
            with open(logs[name], "wb") as fh:
                procs[name] = subprocess.Popen([PY, "-m", name, "--config", str(cfg), "--verbose"], env=env,
                                               stdin=subprocess.DEVNULL, stdout=fh, stderr=fh)
        procs["floor"] = subprocess.Popen([PY, "-c", FLOOR, str(home), str(RESCAN), str(window + 30)])
        for name in ("spoold", "remoted"):
            wait_until(partial(_says, logs[name], "pass took"), 30, f"{name}'s first pass")
        time.sleep(1.0)
        ps = {n: psutil.Process(p.pid) for n, p in procs.items()}
        c0 = {n: _cpu(p) for n, p in ps.items()}
        t0 = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - t0
        cpu = {n: 100.0 * (_cpu(p) - c0[n]) / elapsed for n, p in ps.items()}
        hwm = {n: _hwm_mb(p.pid) for n, p in procs.items()}
        for name in ("spoold", "remoted"):
            if procs[name].poll() is not None:
                raise RuntimeError(f"{name} exited during the window: {logs[name].read_text()[-500:]}")
        passes = {n: logs[n].read_text(errors="replace").count("pass took") for n in ("spoold", "remoted")}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(30)
    tick = 100.0 / os.sysconf("SC_CLK_TCK") / elapsed          # the kernel counts CPU time in ticks
    rows = []
    for spec, name in ((CPU_S, "spoold"), (CPU_R, "remoted")):
        rows.append(Row(*spec, value=cpu[name], floor=cpu["floor"], ratio=ratio(cpu[name], cpu["floor"]),
                        met=cpu[name] <= 0.5,
                        floor_what=f"a bare Python waking every {RESCAN:g} s to list three directories",
                        notes=f"{window} s window after the first pass; {passes[name]} passes logged in all; "
                              "poll_interval 0.5, rescan_interval 5 (as `ailabber up` writes them); "
                              f"resolution {tick:.3f} % (one clock tick over the window)"))
    for spec, name in ((RSS_S, "spoold"), (RSS_R, "remoted")):
        rows.append(Row(*spec, value=hwm[name], floor=hwm["floor"], ratio=ratio(hwm[name], hwm["floor"]),
                        met=hwm[name] <= 60.0, floor_what="VmHWM of a bare Python interpreter",
                        notes="VmHWM (peak resident set) at the end of the window, start-up included"))
    return rows
