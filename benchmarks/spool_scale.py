"""Figure 8: a spool (and a remote root) holding 10,000 finished tasks.

The tasks are written directly in the layout ``ailabber/storage/spool.py`` and
``ailabber/storage/statusfile.py`` define (``done/<id>/`` with ``status.json``, ``events.jsonl``
and ``meta.json``: what the CLI and spoold read of a finished task; its snapshot is not
read again, and creating files is the slow part), with ids from ``ailabber.model.ids.new_task_id`` and statuses built by
``ailabber.model.task.transition``, so every one of them reads back as a valid completed task.
remoted's side gets 10,000 done records (``state/done/<user>/<id>.json``).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from ailabber.model import ids
from ailabber.model.task import TaskStatus, now_iso, transition
from benchmarks.common import AILABBER, PY, Ctx, Row, median, ratio, timed
from remoted.records import FINISHED, TaskRecord

N_TASKS = 10_000
LIST = ("`ailabber list`, 10,000 tasks in the spool", "s", "<= 0.5 s")
STATUS = ("`ailabber status ID`, 10,000 tasks in the spool", "s", "<= 0.15 s")
SPOOLD_START = ("spoold start-up + first pass, 10,000 tasks", "s", "<= 3 s")
REMOTED_START = ("remoted start-up + first pass, 10,000 done records", "s", "<= 3 s")
FIGURES = (LIST, STATUS, SPOOLD_START, REMOTED_START)
USER = pwd.getpwuid(os.getuid()).pw_name   # spoold writes under users/<its own account>
FIRST_PASS = re.compile(r"pass took")


STEPS: tuple[tuple[str, str | None, dict[str, Any]], ...] = (
    ("pending", "waiting_for_upload", {"upload_bytes_total": 2048, "name": "sweep", "time_limit_s": 3600,
                                       "first_command": "python train.py --epochs 20"}),
    ("pending", "queued", {"upload_bytes_sent": 2300}),
    ("pending", "launching", {"job_id": "local-4242"}),
    ("running", None, {}),
    ("completed", None, {"exit_code": 0}),
)


def _task_files(task_id: str, t: float) -> tuple[TaskStatus, dict[str, bytes]]:
    """A finished task's status, history and metadata, one second per step."""
    st = TaskStatus(id=task_id, owner=USER, submitted_at=now_iso(t))
    events = []
    for i, (state, reason, fields) in enumerate(STEPS):
        st, ev = transition(st, state, reason, now=t + i, **fields)
        events.append(ev)
    meta = {"id": task_id, "owner": USER, "uid": os.getuid(), "host": "bench", "submitted_at": st.submitted_at,
            "client_version": "0.1.0", "config_file": "/bench/task_config.toml", "upload_root": "/bench",
            "workdir": ".", "logs": [], "results": [], "file_count": 1, "total_bytes": 2048}
    return st, {
        "status.json": (json.dumps(st.to_dict(), indent=2, sort_keys=True) + "\n").encode(),
        "events.jsonl": "".join(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n"
                                for e in events).encode(),
        "meta.json": json.dumps(meta, indent=2, sort_keys=True).encode(),
    }


def populate(spool: Path, root: Path, n: int) -> list[str]:
    """``n`` completed tasks, one millisecond apart, in the local spool and on remoted's side."""
    for stage in ("tmp", "new", "synced", "done", "requests", "outbox"):
        (spool / stage).mkdir(parents=True, exist_ok=True, mode=0o700)
    done_records = root / "state" / "done" / USER
    for d in (done_records, root / "state" / "active"):
        d.mkdir(parents=True, exist_ok=True)
    t0 = time.time() - n / 1000 - 3600
    out = []
    for i in range(n):
        t = t0 + i / 1000
        task_id = ids.new_task_id(t)
        status, files = _task_files(task_id, t)
        task_dir = spool / "done" / task_id
        task_dir.mkdir()
        for name, body in files.items():
            (task_dir / name).write_bytes(body)
        rec = TaskRecord(id=task_id, user=USER, status=status, phase=FINISHED, order=i)
        (done_records / f"{task_id}.json").write_text(json.dumps(rec.to_dict(), indent=2, sort_keys=True) + "\n")
        out.append(task_id)
    return out


def _cli(env: dict[str, str], *args: str) -> str:
    r = subprocess.run([*AILABBER, *args], env=env, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"ailabber {' '.join(args)} exited {r.returncode}: {r.stderr.strip()[-400:]}")
    return r.stdout


def _start_to_first_pass(argv: list[str], env: dict[str, str], log: Path) -> float:
    """From exec to the daemon's first "pass took" line (its --verbose log); then SIGTERM."""
    log.write_bytes(b"")
    with open(log, "ab") as fh:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh)
        try:
            deadline = time.monotonic() + 60
            while not FIRST_PASS.search(log.read_text(errors="replace")):
                if p.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{argv[2]} did not finish a pass: {log.read_text(errors='replace')[-800:]}")
                time.sleep(0.005)
            elapsed = time.perf_counter() - t0
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(30)
    return elapsed


READ_ALL = ("import json, os, sys\n"
            "d = sys.argv[1]\n"
            "rows = [json.load(open(os.path.join(d, i, 'status.json'))) for i in sorted(os.listdir(d))]\n"
            "print(len(rows))\n")


def run(ctx: Ctx) -> list[Row]:
    base = ctx.scratch / "scale"
    home, root = base / "home", base / "remote"
    home.mkdir(parents=True)
    spool = home / "spool"
    (home / "spoold.yaml").write_text(yaml.safe_dump({"spool": str(spool), "remote": str(root),
                                                      "poll_interval": 0.2, "rescan_interval": 1.0}))
    (base / "remoted.yaml").write_text(yaml.safe_dump({"root": str(root), "scheduler": "local", "gpus": 0,
                                                       "poll_interval": 0.2, "rescan_interval": 1.0}))
    t = time.perf_counter()
    task_ids = populate(spool, root, N_TASKS)
    made = time.perf_counter() - t
    env = dict(os.environ, AILABBER_HOME=str(home))
    env.pop("AILABBER_FSYNC", None)
    reps = ctx.n(7, 3)

    listed = _cli(env, "list", "--json")
    if len(json.loads(listed)) != N_TASKS:
        raise RuntimeError(f"`ailabber list` shows {len(json.loads(listed))} of {N_TASKS} tasks")
    list_t = [timed(lambda: _cli(env, "list")) for _ in range(reps)]
    read_all = [timed(lambda: subprocess.run([PY, "-c", READ_ALL, str(spool / "done")], check=True,
                                             capture_output=True)) for _ in range(reps)]
    target = task_ids[N_TASKS // 2]
    shown = json.loads(_cli(env, "status", "--json", target[-6:]))
    if shown.get("id") != target or shown.get("state") != "completed":
        raise RuntimeError(f"`ailabber status {target[-6:]}` showed {shown}")
    status_t = [timed(lambda: _cli(env, "status", target[-6:])) for _ in range(reps)]
    status_full = [timed(lambda: _cli(env, "status", target)) for _ in range(reps)]
    bare = [timed(lambda: subprocess.run([PY, "-c", "pass"], check=True)) for _ in range(reps)]
    spoold_t = [_start_to_first_pass([PY, "-m", "spoold", "--config", str(home / "spoold.yaml"), "--verbose"],
                                     env, base / "spoold.log") for _ in range(reps)]
    remoted_t = [_start_to_first_pass([PY, "-m", "remoted", "--config", str(base / "remoted.yaml"), "--verbose"],
                                      env, base / "remoted.log") for _ in range(reps)]
    if not (root / "users" / USER / "incoming" / "commit").is_dir():
        raise RuntimeError("spoold's first pass did not prepare the remote area")

    def row(spec: tuple[str, str, str], xs: list[float], floor: float, limit: float, what: str, notes: str) -> Row:
        v = median(xs)
        return Row(*spec, value=v, floor=floor, ratio=ratio(v, floor), met=v <= limit, floor_what=what,
                   notes=f"median of {len(xs)}; {notes}")

    pass_f = median(bare)
    return [
        row(LIST, list_t, median(read_all), 0.5, "a bare Python reading and parsing the 10,000 status.json files",
            f"the 10,000 tasks were written in {made:.1f} s"),
        row(STATUS, status_t, pass_f, 0.15, "`python -c pass`",
            f"by the 6-character suffix; by the full id: {median(status_full) * 1000:.0f} ms"),
        row(SPOOLD_START, spoold_t, pass_f, 3.0, "`python -c pass`",
            "from exec to the end of the first pass (its --verbose 'pass took' line); local transport"),
        row(REMOTED_START, remoted_t, pass_f, 3.0, "`python -c pass`",
            "from exec to the end of the first pass; 10,000 records in state/done; "
            "local scheduler"),
    ]
