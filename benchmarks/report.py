"""The printed table, the machine description and ``docs/benchmarks.md``."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.causes import (
    BEFORE_AFTER,
    CAUSES,
    RESHAPE_AB,
    SCALE_BEFORE,
    SCALE_INTRO,
    SECURITY_COSTS,
    STAFF_AND_SCALE,
    STUDENT_FEATURES,
)
from benchmarks.common import PY, REPO, Row

if TYPE_CHECKING:
    from benchmarks.infra import Infra

DOC = REPO / "docs" / "benchmarks.md"


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "s":
        return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"
    if unit == "fraction":
        return f"{v * 100:.2f} %"
    if unit == "%":
        return f"{v:.3f} %"
    if unit == "MB":
        return f"{v:.1f} MB"
    if unit == "tasks":
        return f"{v:.0f}"
    if unit == "bytes":
        return f"{v / 1e6:.2f} MB" if v >= 1e6 else f"{v / 1e3:.1f} kB"
    return f"{v:.1f} {unit}"


def _cells(r: Row) -> list[str]:
    return [r.figure, fmt(r.value, r.unit), fmt(r.floor, r.unit),
            "-" if r.ratio is None else f"{r.ratio:.3g}x", r.target, "yes" if r.met else "NO"]


HEAD = ["figure", "ailabber", "floor", "ratio", "target", "met"]


def render_table(rows: Sequence[Row]) -> str:
    cells = [HEAD, *(_cells(r) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEAD))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(HEAD))).rstrip() for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: Sequence[Row]) -> str:
    out = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    for r in rows:
        cells = [c.replace("|", "\\|") for c in _cells(r)]
        cells[-1] = "yes" if r.met else "**no**"
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def _first_line(argv: list[str]) -> str:
    exe = shutil.which(argv[0])
    if not exe:
        return "not installed"
    r = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, check=False)
    text = (r.stdout or r.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def machine_info(infra: Infra) -> dict[str, str]:
    cpu = "unknown"
    try:
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        cpu = m.group(1).strip() if m else platform.processor() or "unknown"
    except OSError:
        pass
    mem = "unknown"
    try:
        m = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
        mem = f"{int(m.group(1)) / 1024 / 1024:.1f} GiB" if m else mem
    except OSError:
        pass
    fs = subprocess.run(["df", "--output=fstype", "/tmp"], capture_output=True, text=True, check=False)
    py = subprocess.run([PY, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True,
                        check=False).stdout.strip()
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "kernel": f"{platform.system()} {platform.release()}",
        "Python": f"{py} ({PY})",
        "rsync": _first_line(["rsync", "--version"]),
        "Slurm": infra.slurm_version(),
        "OpenSSH": _first_line(["ssh", "-V"]),
        "uv": _first_line(["uv", "--version"]),
        "filesystem of /tmp": (fs.stdout.split() or ["?", "unknown"])[-1],
    }


def write_docs(rows: Sequence[Row], info: dict[str, str], *, quick: bool, seconds: float) -> None:
    mode = "`--quick`" if quick else "full"
    parts = [
        "# Benchmarks",
        "",
        "Every figure below is a real measurement, made in the same run as its floor: the",
        "cheapest way to do the same thing without ailabber on the same machine. Nothing is",
        "estimated or carried over from an earlier run. This file is rewritten by",
        "`uv run python -m benchmarks`.",
        "",
        (f"Last run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {mode} mode, {seconds:.0f} s; "
         f"{sum(r.met for r in rows)} of {len(rows)} targets met."),
        "",
        markdown_table(rows),
        "",
        "## How each figure was measured",
        "",
        SETUP,
        "",
    ]
    for r in rows:
        notes = r.to_json()["notes"]
        parts.append(f"- **{r.figure}**: {notes or '-'}")
    missed = [r for r in rows if not r.met]
    parts += ["", "## Targets missed, by how much, and the likely cause", ""]
    if not missed:
        parts.append("None in this run.")
    for r in missed:
        parts.append(f"### {r.figure}")
        parts.append("")
        parts.append(_shortfall(r))
        cause = CAUSES.get(r.figure)
        if cause and r.value is not None:
            parts += ["", cause]
        parts.append("")
    parts += ["## Changes made after profiling: before and after", "",
              "Before: the run of 2026-11-28 13:06 UTC (full mode, same machine). After: this run.", "",
              "| figure | before | after | what changed |", "|---|---|---|---|"]
    by_figure = {r.figure: r for r in rows}
    for figure, before, change in BEFORE_AFTER:
        r = by_figure.get(figure)
        after = "not measured" if r is None or r.value is None else fmt(r.value, r.unit) + (
            f" ({r.ratio:.3g}x)" if r.ratio is not None and "x)" in before else "")
        parts.append(f"| {figure} | {before} | {after} | {change} |")
    parts += ["", SCALE_INTRO, "", "| figure | before (rrsync, polling) | after (ailabber-gate, this run) |",
              "|---|---|---|"]
    for figure, before in SCALE_BEFORE:
        now = by_figure.get(figure)
        after = "not measured" if now is None or now.value is None else fmt(now.value, now.unit)
        parts.append(f"| {figure} | {before} | {after} |")
    parts += ["", SECURITY_COSTS.rstrip(), "", RESHAPE_AB.rstrip(), "", STUDENT_FEATURES.rstrip(), "",
              STAFF_AND_SCALE.rstrip()]
    parts += ["", "## The machine", "", "| | |", "|---|---|"]
    parts += [f"| {k} | {v} |" for k, v in info.items()]
    parts += ["", REPRODUCE]
    DOC.write_text("\n".join(parts).rstrip() + "\n")


def _shortfall(r: Row) -> str:
    if r.value is None:
        return f"Not measured in this run: {r.notes}"
    t = r.target
    m = re.match(r"(<=|>=|=)\s*(\+?)([\d.]+)\s*(x|%|s|MB)?", t)
    if not m:
        return f"Measured {fmt(r.value, r.unit)} against a target of {t}."
    op, plus, limit, unit = m.group(1), m.group(2), float(m.group(3)), m.group(4)
    if unit == "x" and r.ratio is not None:
        if op == ">=":
            return f"Ratio {r.ratio:.3g}x against a target of {t}: {r.ratio / limit * 100:.0f} % of the required ratio."
        return f"Ratio {r.ratio:.3g}x against a target of {t}: {r.ratio / limit:.1f} times the allowed ratio."
    if plus and r.floor is not None:
        over = r.value - r.floor
        return f"{fmt(over, r.unit)} over the floor against at most {fmt(limit, r.unit)}."
    if op == "=":
        return f"Measured {fmt(r.value, r.unit)} where the target is {t}."
    scale = limit if unit in ("s", "MB", "%") else None
    if scale:
        over = (r.value / scale - 1) * 100
        return f"Measured {fmt(r.value, r.unit)} against a target of {t}: {over:.1f} % over the limit."
    return f"Measured {fmt(r.value, r.unit)} against a target of {t}."


SETUP = """\
Unless a figure says otherwise: durability is on (`AILABBER_FSYNC` unset) for the CLI and
both daemons; the daemons run with the integration tests' intervals (`poll_interval: 0.2`,
`rescan_interval: 1.0`); remoted runs as root; "local" means spoold reaches the remote
root as a path, "ssh" means through a loopback sshd with the student's key pinned by
rrsync to their directory; the page cache is warm; every Python process (CLI, daemons,
floors) runs with compiled bytecode, as an installed package does (a shared
`PYTHONPYCACHEPREFIX` in the scratch directory, filled once at the start: a bare `uv sync`
checkout has no `.pyc` files, and with `PYTHONDONTWRITEBYTECODE=1` none are ever
written). "floor" is what the same work costs without ailabber, measured in the same run;
"ratio" is ailabber's figure divided by the floor. Other processes may share the machine:
the load average at the start and end of the run is given with the machine. Per figure:"""


REPRODUCE = """\
## How to reproduce

As root on a Debian machine with `slurm-wlm`, `munge`, `openssh-server`, `rsync` and
`uv` installed (what `.ci/run` installs), from a checkout:

```sh
uv sync
uv run python -m benchmarks --quick --json bench.json   # smaller sizes, under 5 minutes on 2 cores
uv run python -m benchmarks                              # the full sizes and counts: rewrites this file
uv run python -m benchmarks --only submit,burst         # some groups
```

The run starts everything it needs itself, in temporary directories: the daemons (with
the test bed's `Pipeline`), a single-node Slurm declaring 16 CPUs and two fake
GPUs (`testbed/slurm_cluster.py`), an sshd on loopback whose keys are pinned with rrsync
(`testbed/sshd.py`), and five Unix accounts `ailabber-bench1` to `ailabber-bench5` with a
shared interpreter (`testbed/unix_users.py`). remoted runs as root, so every task runs as
its student. The environment figure downloads numpy from PyPI into an empty uv cache.
A figure that cannot be measured on a machine says so in its notes and counts as not met.
`--quick` bursts 100 tasks instead of 500 and uses a 200 MB project instead of 500 MB:
costs that do not grow with the size (a pass, an ssh session, the file list) weigh more
there, so its burst and resubmission ratios come out worse than the full run's, which is
the one this page shows.
"""
