"""What every benchmark group shares: the result row, statistics, projects, pipelines."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.pipeline import Pipeline

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
#: The ``ailabber`` command as students run it: the entry script installed beside the
#: interpreter (``python -m ailabber`` would add runpy's imports to every figure).
AILABBER = ([str(Path(PY).parent / "ailabber")] if (Path(PY).parent / "ailabber").exists()
            else [PY, "-m", "ailabber"])


@dataclass
class Row:
    """One line of the table.  ``value`` and ``floor`` are measured in the same run."""

    figure: str
    unit: str
    target: str
    value: float | None = None
    floor: float | None = None
    ratio: float | None = None
    met: bool = False
    notes: str = ""
    floor_what: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"figure": self.figure, "value": self.value, "floor": self.floor, "ratio": self.ratio,
                "target": self.target, "met": self.met, "unit": self.unit,
                "notes": "; ".join(x for x in (f"floor: {self.floor_what}" if self.floor_what else "",
                                                self.notes) if x)}


def failed_rows(specs: Sequence[tuple[str, str, str]], why: str) -> list[Row]:
    """Rows for figures that could not be measured: say why, never pretend."""
    return [Row(figure, unit, target, notes=f"not measured: {why}") for figure, unit, target in specs]


def attempt(specs: Sequence[tuple[str, str, str]], fn: Callable[[], list[Row]]) -> list[Row]:
    """Run one part of a group; if it cannot run, its figures say why and the group's other
    parts still count."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - reported in the row, with the reason
        import traceback

        traceback.print_exc()
        return failed_rows(specs, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")


def ratio(value: float | None, floor: float | None) -> float | None:
    if value is None or floor is None or floor <= 0:
        return None
    return value / floor


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def p95(xs: Sequence[float]) -> float:
    s = sorted(xs)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, round(0.95 * (len(s) - 1))))
    return float(s[k])


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    """A subprocess that must succeed; its output is in the exception if it does not."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    r = subprocess.run(list(argv), check=False, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} exited {r.returncode}: {r.stderr.strip()[-800:]}")
    return r


def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class BenchPipeline(Pipeline):
    """The test bed's pipeline, but durable as deployed: ``AILABBER_FSYNC`` keeps its
    default (on) for the CLI and both daemons unless a benchmark says otherwise."""

    fsync = "1"

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(**{"AILABBER_FSYNC": self.fsync, **extra})


def write_config(project: Path, commands: Sequence[str], *, gpus: int = 0, memory: str = "100M",
                 time_limit: str = "1:00", cpus: int = 1) -> None:
    cmds = ", ".join(json.dumps(c) for c in commands)
    (project / "task_config.toml").write_text(textwrap.dedent(f"""\
        [resources]
        gpus = {gpus}
        cpus = {cpus}
        memory = "{memory}"
        time_limit = "{time_limit}"

        [run]
        commands = [{cmds}]
        """))


def make_tree(root: Path, files: int, total_bytes: int, dirs: int = 10) -> None:
    """``files`` files of random bytes (incompressible, like checkpoints or data) in
    ``dirs`` sub-directories, ``total_bytes`` in all."""
    root.mkdir(parents=True, exist_ok=True)
    each = total_bytes // files
    for i in range(files):
        d = root / f"part{i % dirs:02d}"
        d.mkdir(exist_ok=True)
        (d / f"chunk{i:05d}.bin").write_bytes(os.urandom(each))


def tree_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def upload_span(events: Sequence[dict[str, Any]]) -> tuple[float, float] | None:
    """(start, end) wall-clock times of a task's last upload, from its local history: the
    ``uploading`` event spoold records before rsync, and the next local event (recorded
    once the upload and its commit marker are sent)."""
    from ailabber.model.task import parse_iso

    start = None
    for e in events:
        if "source" in e:                      # merged from the remote side
            continue
        at = parse_iso(e.get("at"))
        if e.get("reason") == "uploading":
            start = at
        elif start is not None and at is not None:
            return start, at
    return None


def drop_dirty_pages() -> None:
    """Flush what earlier steps wrote so that one measurement does not pay for another's
    writes (``sync``; the page cache itself stays warm for every variant alike)."""
    os.sync()


@dataclass
class Ctx:
    """What a group gets: the run's options, its scratch directory and the infrastructure."""

    quick: bool
    scratch: Path
    infra: Any
    extra: dict[str, Any] = field(default_factory=dict)

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full
