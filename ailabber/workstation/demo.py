"""``ailabber demo``: the whole path on this machine, in a throwaway home.

Starts spoold and remoted, submits the bundled training example, waits, fetches, and shows
what came back.  Everything lives in a temporary directory that is removed afterwards
unless ``--keep`` is given.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ailabber.workstation import up


def example_dir() -> Path:
    package = Path(__file__).resolve().parents[1]       # .../ailabber
    for candidate in (package / "examples" / "train", package.parent / "examples" / "train"):
        if (candidate / "task_config.toml").exists():
            return candidate
    raise FileNotFoundError("the bundled example (examples/train) is not installed")


def _cli(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AILABBER_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "ailabber", *args], env=env, cwd=cwd, text=True,
                          capture_output=True)


def run(keep: bool = False, timeout: float = 600) -> int:
    base = Path(tempfile.mkdtemp(prefix="ailabber-demo-"))
    home, project = base / "home", base / "project"
    shutil.copytree(example_dir(), project, ignore=shutil.ignore_patterns(".venv", "logs", "output", "__pycache__"))
    say = lambda msg: print(f"demo: {msg}", flush=True)  # noqa: E731
    say(f"home {home}; project {project}")
    log_file = open(base / "daemons.log", "wb")
    procs = up.start(home=home, scheduler="local", stderr=log_file.fileno())
    try:
        sub = _cli(home, "submit", "--json", cwd=project)
        if sub.returncode != 0:
            sys.stderr.write(sub.stderr)
            return 1
        task_id = json.loads(sub.stdout)["id"]
        say(f"submitted {task_id}; waiting (the first run builds the Python environment with uv)")
        t0 = time.monotonic()
        waited = _cli(home, "wait", task_id, "--timeout", str(timeout))
        say(f"{waited.stdout.strip()} after {time.monotonic() - t0:.1f}s")
        logs = _cli(home, "logs", task_id)
        tail = logs.stdout.strip().splitlines()[-8:]
        say("last lines of its output:\n    " + "\n    ".join(tail))
        dest = Path.cwd() / "ailabber-results" / task_id
        fetched = _cli(home, "fetch", task_id, "--dest", str(dest))
        say(fetched.stdout.strip() or fetched.stderr.strip())
        metrics = dest / "output" / "metrics.json"
        if metrics.exists():
            body = "\n    ".join(metrics.read_text().strip().splitlines())
            say(f"results: {metrics}\n    {body}")
        else:
            say("no metrics.json came back; see the logs above")
        if waited.returncode != 0:
            say(f"daemon log: {base / 'daemons.log'}")
            keep = True
        return waited.returncode
    finally:
        up.stop(procs)
        log_file.close()
        if keep:
            say(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
