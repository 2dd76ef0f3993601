"""``uv run python -m benchmarks [--quick] [--json FILE] [--only GROUP,...]``."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from benchmarks.common import Ctx, Row, failed_rows
from benchmarks.infra import Infra, Unavailable
from benchmarks.report import machine_info, render_table, write_docs

# Cheapest and quietest first: the idle figures must not inherit another group's load.
GROUPS = ("submit", "envs", "spool_scale", "idle", "dispatch", "freshness", "burst", "resubmit", "dashboard",
          "scale")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller sizes and counts (under 5 minutes on 2 cores)")
    ap.add_argument("--json", type=Path, help="also write the rows as a JSON list to this file")
    ap.add_argument("--only", help=f"comma-separated groups to run ({', '.join(GROUPS)}); "
                                   "docs/benchmarks.md is rewritten only by a full run")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args(argv)
    groups = GROUPS if not args.only else tuple(g.strip() for g in args.only.split(",") if g.strip())
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        ap.error(f"unknown group(s): {', '.join(unknown)}")
    scratch = Path(tempfile.mkdtemp(prefix="ailabber-bench-"))
    os.chmod(scratch, 0o755)
    bytecode_cache(scratch)
    infra = Infra()
    ctx = Ctx(quick=args.quick, scratch=scratch, infra=infra)
    rows: list[Row] = []
    started, load0 = time.monotonic(), os.getloadavg()[0]
    try:
        for name in groups:
            mod = importlib.import_module(f"benchmarks.{name}")
            t0 = time.monotonic()
            _say(f"{name} ...")
            try:
                got = list(mod.run(ctx))
            except Unavailable as exc:
                got = failed_rows(mod.FIGURES, str(exc))
            except Exception as exc:  # noqa: BLE001 - one broken group must not hide the others' figures
                traceback.print_exc()
                first = str(exc).splitlines()[0][:300] if str(exc) else ""
                got = failed_rows(mod.FIGURES, f"{type(exc).__name__}: {first}")
            finally:
                infra.cancel_all_jobs()
            names = {r.figure for r in got}
            got += failed_rows([f for f in mod.FIGURES if f[0] not in names], "the group ended before it")
            rows += got
            _say(f"{name} done in {time.monotonic() - t0:.1f} s")
        info = machine_info(infra)
        info["load average (1 min), start / end of the run"] = f"{load0:.2f} / {os.getloadavg()[0]:.2f}"
    finally:
        infra.stop()
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    total = time.monotonic() - started
    print(render_table(rows))
    print(f"\n{sum(r.met for r in rows)} of {len(rows)} targets met; {total:.0f} s"
          f"{' (--quick)' if args.quick else ''}")
    if args.json:
        args.json.write_text(json.dumps([r.to_json() for r in rows], indent=2) + "\n")
    if not args.only and not args.quick:   # the committed page always shows the full sizes
        write_docs(rows, info, quick=False, seconds=total)
    return 0


def bytecode_cache(scratch: Path) -> None:
    """Measure Python programs as an installed package runs them: with compiled bytecode.

    A checkout made with ``uv sync`` has no ``.pyc`` files, and an environment with
    ``PYTHONDONTWRITEBYTECODE=1`` never writes any, so every start would compile ailabber
    and PyYAML from source.  Every process of the run (the CLI, the daemons, the floors)
    therefore shares a bytecode cache in the scratch directory, filled once here."""
    cache = scratch / "pycache"
    cache.mkdir()
    os.chmod(cache, 0o1777)
    os.environ["PYTHONPYCACHEPREFIX"] = str(cache)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-c", WARM], check=False)


WARM = """\
import importlib
for name in ("ailabber.cli.main", "ailabber.workstation.submit", "spoold.main", "spoold.daemon", "remoted.main",
             "remoted.daemon", "remoted.jobwrap", "remoted.envs", "remoted.schedulers.slurm",
             "remoted.schedulers.local"):
    try:
        importlib.import_module(name)
    except Exception:
        pass
"""


def _say(msg: str) -> None:
    print(f"[benchmarks {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
