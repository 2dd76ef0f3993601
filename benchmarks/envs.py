"""Figure 6: a task whose ``uv.lock`` was seen before gets its environment from the cache.

``remoted.envs.ensure_env`` is called exactly as the job wrapper calls it, on the bundled
example (``examples/train``: numpy from PyPI).  The floor is what a student would do by
hand: ``uv sync --frozen`` in a fresh directory with an empty uv cache.  The first
``ensure_env`` (also cold) is reported in the notes; the figure is the second one.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

from benchmarks.common import REPO, Ctx, Row, ratio, timed
from benchmarks.common import run as must_run
from remoted.envs import EnvSpec, ensure_env

FIGURE = ("environment, same uv.lock again (warm cache)", "s", "<= 0.1x")
FIGURES = (FIGURE,)
EXAMPLE = REPO / "examples" / "train"


def _copy_project(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copyfile(EXAMPLE / name, dest / name)
    return dest


def _uv() -> str:
    uv = shutil.which("uv")
    if not uv:
        raise RuntimeError("uv is not on PATH")
    return uv


def run(ctx: Ctx) -> list[Row]:
    base = ctx.scratch / "envs"
    uv = _uv()
    saved = {k: os.environ.get(k) for k in ("UV_CACHE_DIR", "VIRTUAL_ENV")}
    try:
        os.environ.pop("VIRTUAL_ENV", None)
        # The floor: a plain `uv sync --frozen`, nothing cached, same interpreter as ensure_env.
        plain = _copy_project(base / "plain")
        env = dict(os.environ, UV_CACHE_DIR=str(base / "uv-cache-plain"))
        python = must_run([uv, "python", "find", "--system", "--project", str(plain)], env=env).stdout.strip()
        cold_sync = timed(lambda: must_run([uv, "sync", "--frozen", "--no-install-project", "--python", python,
                                            "--project", str(plain)], cwd=plain, env=env))
        # ailabber: a task's upload, a per-user env cache, and uv's own cache empty too.
        os.environ["UV_CACHE_DIR"] = str(base / "uv-cache-ailabber")
        upload = _copy_project(base / "task" / "files")
        spec = EnvSpec(upload / "pyproject.toml", upload / "uv.lock")
        log = io.StringIO()
        first = ensure_env(spec, base / "env-cache", log, uv=uv)
        second_upload = _copy_project(base / "task2" / "files")        # another task, same lock
        spec2 = EnvSpec(second_upload / "pyproject.toml", second_upload / "uv.lock")
        warm = [ensure_env(spec2, base / "env-cache", log, uv=uv) for _ in range(ctx.n(5, 3))]
        if not first.built or any(w.built for w in warm) or any(w.key != first.key for w in warm):
            raise RuntimeError(f"the cache did not behave: built={first.built}, "
                               f"then {[w.built for w in warm]}\n{log.getvalue()[-1000:]}")
        probe = subprocess.run([str(warm[-1].venv / "bin" / "python"), "-c", "import numpy"],
                               capture_output=True, text=True, check=False)
        if probe.returncode != 0:
            raise RuntimeError(f"the cached environment cannot import numpy: {probe.stderr.strip()}")
        # Context: uv sync again in a fresh directory, with uv's own cache already warm.
        again = _copy_project(base / "plain-again")
        warm_uv = timed(lambda: must_run([uv, "sync", "--frozen", "--no-install-project", "--python", python,
                                          "--project", str(again)], cwd=again, env=env))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(base, ignore_errors=True)
    value = sorted(w.seconds for w in warm)[len(warm) // 2]
    r = ratio(value, cold_sync)
    return [Row(*FIGURE, value=value, floor=cold_sync, ratio=r, met=r is not None and r <= 0.1,
                floor_what="`uv sync --frozen` in a fresh directory, empty uv cache (numpy downloaded)",
                notes=(f"median of {len(warm)} calls of remoted.envs.ensure_env for a second task with the same "
                       f"lock; the first (cold, built) took {first.seconds:.2f} s; `uv sync --frozen` with uv's "
                       f"cache already warm takes {warm_uv:.2f} s"))]
