"""One student cannot fill the shared root: per-user caps on disk use, log bytes and
uploads in flight, sparse files that stay sparse, and output stored once.

Real daemons (``Pipeline``), real rsync, real files; every cap is checked where it is
enforced and by the words the student reads.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ailabber.daemonkit.remoted_settings import load_remoted_settings
from ailabber.daemonkit.yamlfile import SettingsError
from ailabber.model import ids
from ailabber.storage.spool import MANIFEST, UPLOAD_MEMBERS
from ailabber.storage.upload_limits import LIMITS_FILE
from spoold.transport import RsyncTransport
from testbed.pipeline import Pipeline, _me, wait_until

MB = 1000 * 1000


@pytest.fixture
def make_pipeline(tmp_path: Path) -> Iterator[Callable[..., Pipeline]]:
    made: list[Pipeline] = []

    def make(**limits: Any) -> Pipeline:
        p = Pipeline(tmp_path, remoted_extra={"limits": limits})
        p.start_all()
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop_all()


def area(p: Pipeline) -> Path:
    return p.root / "users" / _me()


def client_limits(p: Pipeline, pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The limits.json spoold pulled into the spool, once ``pred`` holds for it.  remoted
    publishes it on every pass; spoold pulls it about once a minute, and at its next pass
    after a SIGHUP (sent only once spoold runs: its handler is installed by then)."""
    def read(path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and pred(data) else None

    wait_until(lambda: read(area(p) / LIMITS_FILE), "remoted to publish limits.json")
    wait_until(lambda: json.loads(p.cli("whoami", "--json", check=True).stdout)["spoold_running"], "spoold")
    last_hup = 0.0

    def pulled() -> dict[str, Any] | None:
        nonlocal last_hup
        data = read(p.home / "spool" / LIMITS_FILE)
        if data is None and time.monotonic() - last_hup > 2:
            p.procs["spoold"].send_signal(signal.SIGHUP)
            last_hup = time.monotonic()
        return data

    return wait_until(pulled, "spoold to pull the cluster's limits.json")


def random_project(p: Pipeline, name: str, nbytes: int, commands: list[str] | None = None) -> Path:
    d = p.project(commands or ["true"], name=name)
    (d / "data.bin").write_bytes(os.urandom(nbytes))
    return d


def remote_status(p: Pipeline, task_id: str) -> dict[str, Any] | None:
    try:
        return dict(json.loads((area(p) / "outbox" / task_id / "status.json").read_text()))
    except (OSError, ValueError):
        return None


def blocks(path: Path) -> int:
    return os.stat(path).st_blocks * 512


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize("limits, field", [
    ({"max_disk_bytes": "lots"}, "limits.max_disk_bytes"),
    ({"max_log_bytes": -1}, "limits.max_log_bytes"),
    ({"max_incoming_uploads": 0}, "limits.max_incoming_uploads"),
    ({"max_incoming_uploads": "5"}, "limits.max_incoming_uploads"),
])
def test_bad_caps_are_refused_in_one_line_naming_the_field(tmp_path: Path, limits: dict[str, Any],
                                                           field: str) -> None:
    cfg = tmp_path / "remoted.yaml"
    cfg.write_text(json.dumps({"root": str(tmp_path / "r"), "limits": limits}))
    with pytest.raises(SettingsError) as exc:
        load_remoted_settings(cfg)
    assert f"{cfg}: {field}: must be" in str(exc.value) and "\n" not in str(exc.value)


def test_caps_have_course_defaults_and_null_means_none(tmp_path: Path) -> None:
    cfg = tmp_path / "remoted.yaml"
    cfg.write_text(json.dumps({"root": str(tmp_path / "r")}))
    lim = load_remoted_settings(cfg).limits
    assert (lim.max_disk_bytes, lim.max_log_bytes, lim.max_incoming_uploads) == (20 * 1024**3, 100 * 1024**2, 20)
    cfg.write_text(json.dumps({"root": str(tmp_path / "r"), "limits": {"max_disk_bytes": None,
                                                                      "max_log_bytes": "2M"}}))
    lim = load_remoted_settings(cfg).limits
    assert (lim.max_disk_bytes, lim.max_log_bytes) == (None, 2 * 1024**2)


# --------------------------------------------------------------------------- disk quota


def test_whoami_shows_the_caps_and_the_quota_used(make_pipeline: Callable[..., Pipeline]) -> None:
    p = make_pipeline(max_disk_bytes="50M", max_log_bytes="1M", max_incoming_uploads=3)
    data = client_limits(p, lambda d: d.get("max_disk_bytes") == 50 * 1024**2 and d.get("disk_used_bytes") is not None)
    assert data["max_log_bytes"] == 1024**2 and data["max_incoming_uploads"] == 3
    human = p.cli("whoami", check=True).stdout
    assert "used of 52.4 MB" in human, human
    assert "1.0 MB per task" in human and "at most 3" in human, human
    as_json = json.loads(p.cli("whoami", "--json", check=True).stdout)
    assert as_json["limits"]["max_disk_bytes"] == 50 * 1024**2


def test_quota_is_enforced_by_submit_spoold_and_remoted(make_pipeline: Callable[..., Pipeline]) -> None:
    p = make_pipeline(max_disk_bytes="3M")
    first = p.submit(random_project(p, "first", int(1.5 * MB)))
    assert p.wait_terminal(first)["state"] == "completed"
    client_limits(p, lambda d: (d.get("disk_used_bytes") or 0) >= 1.5 * MB)

    # submit: refused before anything is written, with the numbers.
    big = random_project(p, "big", 2 * MB)
    r = p.cli("submit", cwd=big)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "over your quota of 3.1 MB" in r.stderr and "you already keep" in r.stderr, r.stderr

    # spoold: a task submitted while the client did not know the usage is not sent.
    spool_limits = p.home / "spool" / LIMITS_FILE
    p.kill("spoold", signal.SIGTERM)
    spool_limits.unlink()
    task_id = p.submit(big)
    p.start("spoold")
    st = p.wait_terminal(task_id)
    assert (st["state"], st["reason"]) == ("failed", "too_large"), st
    assert "over your quota of 3.1 MB" in st["message"], st
    assert not (area(p) / "tasks" / task_id).exists()

    # remoted: a client that ignores the limits has its upload refused and removed.
    p.kill("spoold", signal.SIGTERM)
    spool_limits.unlink()
    sneaky = p.submit(big)
    new = p.home / "spool" / "new"
    RsyncTransport(str(area(p))).push_tasks([sneaky], new, UPLOAD_MEMBERS, MANIFEST)
    st = wait_until(lambda: (s := remote_status(p, sneaky)) and s["state"] == "failed" and s,
                    "remoted to refuse the upload")
    assert st["reason"] == "rejected", st
    assert "over your quota of 3.1 MB" in st["message"] and "you already keep" in st["message"], st
    assert not (area(p) / "incoming" / "tmp" / sneaky).exists()
    assert not (area(p) / "tasks" / sneaky).exists()


# --------------------------------------------------------------------------- uploads in flight


def test_uploads_in_flight_beyond_the_cap_are_removed_oldest_first(make_pipeline: Callable[..., Pipeline]) -> None:
    p = make_pipeline(max_incoming_uploads=3)
    tmp = area(p) / "incoming" / "tmp"
    wait_until(lambda: tmp.is_dir(), "spoold to prepare the area")
    # Fresh uploads go only beyond five times the cap (a first batch may be bigger than
    # the cap, and its markers follow its files); stale ones beyond the cap (unit test below).
    planted = sorted(ids.new_task_id() for _ in range(17))
    for name in planted:         # uploads that never get a marker, made as rsync makes them
        stage = tmp.parent / f".stage-{name}"
        (stage / "files").mkdir(parents=True)
        (stage / "files" / "blob").write_bytes(b"x" * 4096)
        os.rename(stage, tmp / name)
    wait_until(lambda: sorted(os.listdir(tmp)) == planted[2:], "remoted to trim the uploads in flight")
    assert "more than 3 uploads in flight" in p.daemon_logs()
    # A well-behaved client is not affected: spoold sends at most 3 at a time.
    p.kill("spoold", signal.SIGTERM)
    shutil.rmtree(tmp)
    tasks = [p.submit(p.project(["echo hi"], name=f"burst{i}")) for i in range(7)]
    p.start("spoold")
    for t in tasks:
        assert p.wait_terminal(t)["state"] == "completed"


def test_only_uploads_idle_past_the_grace_are_surplus(tmp_path: Path) -> None:
    from ailabber.storage.safedir import SafeDir
    from remoted.quota import IN_FLIGHT_GRACE, surplus_in_flight

    (tmp_path / "tmp").mkdir()
    (tmp_path / "commit").mkdir()
    names = [ids.new_task_id() for _ in range(6)]
    for name in names:
        (tmp_path / "tmp" / name).mkdir()
        time.sleep(0.01)                        # distinct ctimes, oldest first
    (tmp_path / "commit" / f"{names[0]}.json").write_text("{}")     # committed: never surplus
    with SafeDir.open(tmp_path / "tmp") as t, SafeDir.open(tmp_path / "commit") as c:
        assert surplus_in_flight(t, c, 2) == []                                    # all fresh
        later = time.time() + IN_FLIGHT_GRACE + 1
        assert surplus_in_flight(t, c, 2, now=later) == names[1:4]                 # 5 waiting, keep 2
        assert surplus_in_flight(t, c, None, now=later) == []


# --------------------------------------------------------------------------- logs


def test_log_cap_truncates_with_a_marker_and_the_task_completes(make_pipeline: Callable[..., Pipeline]) -> None:
    p = make_pipeline(max_log_bytes=100_000)
    client_limits(p, lambda d: d.get("max_log_bytes") == 100_000)
    cmds = ["head -c 3000000 /dev/zero | tr '\\0' a; echo", "echo after-$((40+2)) >&2",
            "mkdir -p output; echo done > output/done.txt"]
    task_id = p.submit(p.project(cmds, name="flood", results=["output"]))
    st = p.wait_terminal(task_id)
    assert st["state"] == "completed", st
    logs = area(p) / "outbox" / task_id / "logs"
    out = (logs / "output.log").read_bytes()
    assert b"[ailabber] output truncated after 100000 bytes (limit 100000 bytes of log per task)" in out
    assert len(out) < 100_000 + 4096            # the cap plus ailabber's own lines
    assert b"after-42" not in out                # nothing of the task's output past the cap
    assert b"task completed" in out
    assert (p.remote_task(task_id) / "files" / "output" / "done.txt").read_text() == "done\n"
    shown = p.cli("logs", task_id, check=True).stdout
    assert "output truncated after 100000 bytes" in shown
    assert "output truncated" in p.cli("logs", "--stream", "stdout", task_id, check=True).stdout


def test_output_is_stored_once_and_each_stream_still_shows(make_pipeline: Callable[..., Pipeline]) -> None:
    p = make_pipeline()
    cmd = ("for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.2; done; "
           "head -c 200000 /dev/zero | tr '\\0' o; echo")
    task_id = p.submit(p.project([cmd], name="streams"))
    follow = p.cli("logs", "-f", "--stream", "stderr", task_id, timeout=90)
    assert follow.returncode == 0 and "err1\nerr2\nerr3\n" in follow.stdout, follow
    assert p.wait_terminal(task_id)["state"] == "completed"
    for logs in (area(p) / "outbox" / task_id / "logs", p.home / "spool" / "outbox" / task_id / "logs"):
        names = set(os.listdir(logs))
        assert "stdout.log" not in names and "stderr.log" not in names, names
        stored = sum((logs / n).stat().st_size for n in names)
        assert 200_000 < stored < 200_000 * 1.1, (logs, stored)   # once, plus a small index
    out = p.cli("logs", task_id, check=True).stdout
    assert out.index("out1") < out.index("err1") < out.index("out2") < out.index("err3")
    stdout = p.cli("logs", "--stream", "stdout", task_id, check=True).stdout
    stderr = p.cli("logs", "--stream", "stderr", task_id, check=True).stdout
    assert stdout.startswith("out1\nout2\nout3\n") and "err" not in stdout and "[ailabber]" not in stdout
    assert stderr == "err1\nerr2\nerr3\n"


# --------------------------------------------------------------------------- sparse files


def test_a_sparse_gigabyte_stays_sparse_end_to_end(make_pipeline: Callable[..., Pipeline]) -> None:
    p = make_pipeline()
    proj = p.project(["test $(stat -c %s sparse.bin) = 1073741824", "tail -c 4 sparse.bin | grep -q end"],
                     name="sparse")
    with open(proj / "sparse.bin", "wb") as fh:
        fh.truncate(1024**3 - 4)
        fh.seek(0, os.SEEK_END)
        fh.write(b"end\n")
    assert blocks(proj / "sparse.bin") < MB          # the test's own premise
    task_id = p.submit(proj)
    spool_copy = p.home / "spool" / "new" / task_id / "files" / "sparse.bin"
    local = [spool_copy] + [p.home / "spool" / s / task_id / "files" / "sparse.bin" for s in ("synced", "done")]
    copy = wait_until(lambda: next((c for c in local if c.exists()), None), "the spool copy")
    assert blocks(copy) < MB, blocks(copy)
    st = p.wait_terminal(task_id)
    assert st["state"] == "completed", st
    remote = p.remote_task(task_id) / "files" / "sparse.bin"
    assert remote.stat().st_size == 1024**3
    assert blocks(remote) < MB, blocks(remote)
    assert blocks(p.home / "spool" / "done" / task_id / "files" / "sparse.bin") < MB
