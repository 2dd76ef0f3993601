"""Figures 1 and 2: ``ailabber submit`` of a small and of a large project.

Small: the wall time of the whole command (interpreter start, imports, validation,
snapshot, fsync, commit) against the cheapest possible command on the same interpreter,
``python -c pass``.  Large: against ``cp -a`` of the same tree, which is the least any
snapshot must cost; ``cp -a`` does not fsync, so the row with ``AILABBER_FSYNC=0`` is
shown as well, and ``cp -a`` followed by ``sync`` is in the notes.  Both submit into a
spool without an earlier task of the project, so every file is copied.

Again: the large project submitted a second time with one file changed, against its first
submission; unchanged files are hard links to the first task's copies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import partial
from pathlib import Path

from benchmarks.common import (
    AILABBER,
    PY,
    Ctx,
    Row,
    drop_dirty_pages,
    make_tree,
    median,
    ratio,
    timed,
    tree_bytes,
    write_config,
)

SMALL = ("submit, small project (50 files, 1 MB)", "s", "<= 3x")
LARGE = ("submit, large project, fsync on (default)", "s", "<= 1.2x")
LARGE_NOSYNC = ("submit, large project, AILABBER_FSYNC=0 (context)", "s", "<= 1.2x")
AGAIN = ("submit again, large project, one file changed", "s", "<= 0.2x")
FIGURES = (SMALL, LARGE, LARGE_NOSYNC, AGAIN)


def _env(home: Path, fsync: str | None = None) -> dict[str, str]:
    env = dict(os.environ, AILABBER_HOME=str(home))
    env.pop("AILABBER_FSYNC", None)
    if fsync is not None:
        env["AILABBER_FSYNC"] = fsync
    return env


#: What `ailabber submit` imports on its way (for the import-time note).
SUBMIT_IMPORTS = "import ailabber.cli.main, ailabber.cli.submit, ailabber.workstation.submit, ailabber.model.config"
#: The standard library any Python command that parses arguments and reads TOML imports.
STDLIB_FLOOR = "import argparse, json, pathlib, tomllib"


def _submit(project: Path, home: Path, fsync: str | None = None, no_bytecode: Path | None = None) -> None:
    env = _env(home, fsync)
    if no_bytecode is not None:          # an empty cache that is never written: compile every time
        env.update(PYTHONPYCACHEPREFIX=str(no_bytecode), PYTHONDONTWRITEBYTECODE="1")
    r = subprocess.run([*AILABBER, "submit", "--json"], cwd=project, env=env,
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"ailabber submit exited {r.returncode}: {r.stderr.strip()[-500:]}")


def _clear_spool(home: Path) -> None:
    for stage in ("new", "tmp", "latest"):
        d = home / "spool" / stage
        if d.is_dir():
            for entry in d.iterdir():
                shutil.rmtree(entry, ignore_errors=True)


def _cp(src: Path, dst: Path, sync: bool = False) -> None:
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    if sync:
        os.sync()


def small(ctx: Ctx) -> Row:
    base = ctx.scratch / "submit-small"
    project, home = base / "project", base / "home"
    make_tree(project, files=50, total_bytes=1_000_000, dirs=5)
    write_config(project, ["python train.py"])
    n = ctx.n(10, 10)
    _submit(project, home)                                       # warm the page cache and pyc files
    subprocess.run([PY, "-c", "pass"], check=True)
    cli, floor = [], []
    for _ in range(n):                                           # interleaved: same conditions for both
        _clear_spool(home)                                       # a first submission: every file copied
        floor.append(timed(lambda: subprocess.run([PY, "-c", "pass"], env=_env(home), check=True)))
        cli.append(timed(lambda: _submit(project, home)))
    imports = median([timed(lambda: subprocess.run([PY, "-c", SUBMIT_IMPORTS], check=True)) for _ in range(n)])
    stdlib = median([timed(lambda: subprocess.run([PY, "-c", STDLIB_FLOOR], check=True)) for _ in range(n)])
    nosync = median([timed(lambda: _submit(project, home, "0")) for _ in range(n)])
    cold = median([timed(lambda: _submit(project, home, None, no_bytecode=base / "no-pyc")) for _ in range(n)])
    f = median(floor)
    return _row(SMALL, median(cli), f, 3.0, "`python -c pass`, same interpreter",
                (f"median of {n}; the installed `ailabber` entry script; AILABBER_FSYNC default (on); "
                 f"min {min(cli):.3f} s, max {max(cli):.3f} s; importing what submit imports "
                 f"(`{SUBMIT_IMPORTS}`) takes {imports * 1000:.0f} ms ({_heaviest_imports()}); "
                 f"`python -c '{STDLIB_FLOOR}'`, the standard library any Python command that parses "
                 f"arguments and reads TOML needs, takes {stdlib * 1000:.0f} ms "
                 f"({stdlib / f:.1f}x the floor on its own); "
                 f"with AILABBER_FSYNC=0 the submit takes {nosync * 1000:.0f} ms; without a "
                 f"bytecode cache (PYTHONDONTWRITEBYTECODE=1 and no .pyc, as a bare `uv sync` checkout runs) "
                 f"{cold * 1000:.0f} ms"))


def _heaviest_imports(top: int = 3) -> str:
    """The top-level packages whose import costs the CLI most (``python -X importtime``)."""
    r = subprocess.run([PY, "-X", "importtime", "-c", SUBMIT_IMPORTS], capture_output=True, text=True, check=False)
    cost: dict[str, int] = {}
    for line in r.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].strip()
        if "." not in name and name != "ailabber":
            cost[name] = max(cost.get(name, 0), int(parts[1]))
    heavy = sorted(cost.items(), key=lambda kv: -kv[1])[:top]
    return "heaviest imports, cumulative: " + ", ".join(f"{k} {v / 1000:.0f} ms" for k, v in heavy)


def large(ctx: Ctx) -> list[Row]:
    base = ctx.scratch / "submit-large"
    project, home = base / "project", base / "home"
    total = 200_000_000 if ctx.quick else 500_000_000
    make_tree(project / "data", files=2000, total_bytes=total, dirs=20)
    write_config(project, ["python train.py"])
    size = tree_bytes(project)
    reps = 3
    fsync_t, nosync_t, cp_t, cp_sync_t = [], [], [], []
    _submit(project, home, "0")                                 # read the tree once: a warm cache for all
    _clear_spool(home)
    for i in range(reps):
        drop_dirty_pages()
        fsync_t.append(timed(lambda: _submit(project, home)))
        _clear_spool(home)
        drop_dirty_pages()
        nosync_t.append(timed(lambda: _submit(project, home, "0")))
        _clear_spool(home)
        drop_dirty_pages()
        dst = base / f"cp-{i}"
        cp_t.append(timed(partial(_cp, project, dst)))
        shutil.rmtree(dst)
        drop_dirty_pages()
        dst = base / f"cp-sync-{i}"
        cp_sync_t.append(timed(partial(_cp, project, dst, sync=True)))
        shutil.rmtree(dst)
    again = _again(project, home, reps)
    shutil.rmtree(base, ignore_errors=True)
    f = median(cp_t)
    what = f"`cp -a` of the same tree ({size / 1e6:.0f} MB, 2,000 files; no fsync)"
    common = f"median of {reps}; page cache warm for every variant; `cp -a` + `sync`: {median(cp_sync_t):.2f} s"
    rows = []
    for spec, times, extra in ((LARGE, fsync_t, "durable commit, as submit makes it by default"),
                               (LARGE_NOSYNC, nosync_t, "atomic commit kept, nothing flushed")):
        v = median(times)
        r = ratio(v, f)
        rows.append(Row(*spec, value=v, floor=f, ratio=r, met=r is not None and r <= 1.2, floor_what=what,
                        notes=f"{extra}; {common}"))
    return [*rows, again]


def _again(project: Path, home: Path, reps: int) -> Row:
    """Submit, change one file, submit again: the second copies one file and links the
    rest.  The files have long settled (made before the rows above), as in a project
    worked on for a while."""
    victim = project / "data" / "part07" / "chunk00007.bin"
    first_t, again_t, first_b, again_b = [], [], [], []
    for _ in range(reps):
        _clear_spool(home)
        drop_dirty_pages()
        before = _spool_bytes(home)
        first_t.append(timed(lambda: _submit(project, home)))
        first_b.append(_spool_bytes(home) - before)
        victim.write_bytes(os.urandom(victim.stat().st_size))
        drop_dirty_pages()
        before = _spool_bytes(home)
        again_t.append(timed(lambda: _submit(project, home)))
        again_b.append(_spool_bytes(home) - before)
    _clear_spool(home)
    return _row(AGAIN, median(again_t), median(first_t), 0.2,
                "the first submission of the same project (every file copied), fsync on",
                (f"median of {reps}; the spool grew by {median(again_b) / 1e6:.2f} MB for the second "
                 f"task against {median(first_b) / 1e6:.0f} MB for the first (blocks on disk, each "
                 "file counted once however many tasks link it)"))


def _row(spec: tuple[str, str, str], v: float, f: float, limit: float, floor_what: str, notes: str) -> Row:
    r = ratio(v, f)
    return Row(*spec, value=v, floor=f, ratio=r, met=r is not None and r <= limit, floor_what=floor_what, notes=notes)


def _spool_bytes(home: Path) -> int:
    """Blocks the spool uses, a file with several names counted once (as ``du`` does)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, names in os.walk(home / "spool"):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def run(ctx: Ctx) -> list[Row]:
    return [small(ctx), *large(ctx)]
